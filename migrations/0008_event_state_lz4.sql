-- Stored event state is compressed with lz4 instead of PostgreSQL's default pglz. A batch of
-- frames is ~130 kB of JSON: pglz spent more CPU compressing it once and decompressing it for
-- every reader (relay, read models) than the rest of PostgreSQL's share of ingest. Existing
-- rows keep their compression; only new values use lz4. A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE verity_events ALTER COLUMN state SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 unavailable (%), event state stays pglz-compressed', SQLERRM;
END $$;
