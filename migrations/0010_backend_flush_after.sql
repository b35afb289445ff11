-- Backends of this database hand what they write to the disk in 256 kB steps as they go
-- (PostgreSQL's default for backends is 0: leave it to the kernel). Read-model inserts evict
-- dirty buffers by the hundred megabytes under ingest; left to the kernel, they are written in
-- one burst every few seconds, and every commit's WAL flush queues behind that burst: after a
-- 60 s sustained ingest, commits stalled 100-350 ms and p99 publish -> WebSocket latency at
-- 5k frames/s went from ~45 ms to ~200 ms (bench/bench_ingest.py). A role that may not alter
-- the database keeps the server's setting.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET backend_flush_after = %L', current_database(), '256kB');
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot set backend_flush_after on this database (%); the server default stays', SQLERRM;
END $$;
