-- Tamper evidence: a SHA-256 hash chain over the event log, kept in the append's transaction.
--
--   record_hash(e) = sha256(record_hash(previous event) || record(e))     (genesis: 32 zero bytes)
--
-- record(e) is the event's stored row in PostgreSQL's binary COPY field format, five fields,
-- each a 4-byte big-endian length (-1: NULL, no data) followed by the value's binary form:
--   notification_id (int8, 8 bytes BE) · originator_id (uuid, 16 bytes) ·
--   originator_version (int8, 8 bytes BE) · topic (UTF-8 text) · state (the exact bytea)
-- so a verifier reads `COPY (SELECT ...) TO STDOUT (FORMAT binary)` and hashes the bytes as
-- they come, and an export carries enough to recompute every hash (storage/event_chain.py,
-- formats/event_chain.py). "Previous" is the stored event with the next lower position:
-- positions may have gaps (a rolled-back insert spends its sequence numbers), the chain has none.
--
-- Every insert is chained by the trigger, whoever issues it: the eventsourcing recorder, the
-- frame store's verity_record_frames (0009) or a bulk COPY. A statement trigger takes the
-- table's EXCLUSIVE lock before any row gets its position (the lock both the library and 0009
-- already take first, so for them it is a no-op): positions are then issued and committed in
-- one order, and the newest row a row trigger sees is its predecessor. An insert whose position
-- is not above the newest stored one is refused instead of forking the chain.
--
-- The log is append-only (0001 refuses UPDATE and DELETE); TRUNCATE is refused here too, since
-- a truncated log would start a new chain from genesis.
LOCK TABLE verity_events IN EXCLUSIVE MODE;

ALTER TABLE verity_events ADD COLUMN IF NOT EXISTS record_hash bytea;

-- The record is written out in the trigger and the backfill below rather than called as a SQL
-- function: PostgreSQL did not inline such a function there, and calling it cost ~120 us per
-- event (more than the rest of an insert of a small event).

CREATE OR REPLACE FUNCTION verity_events_lock_for_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE verity_events IN EXCLUSIVE MODE;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION verity_events_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prev_position int8;
    prev_hash bytea;
BEGIN
    SELECT notification_id, record_hash INTO prev_position, prev_hash
        FROM verity_events ORDER BY notification_id DESC LIMIT 1;
    IF prev_position IS NOT NULL AND NEW.notification_id <= prev_position THEN
        RAISE EXCEPTION 'verity_events: position % is not after the chain head %',
            NEW.notification_id, prev_position USING ERRCODE = 'VC001';
    END IF;
    NEW.record_hash := sha256(
        coalesce(prev_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
        || int4send(8) || int8send(NEW.notification_id)
        || int4send(16) || uuid_send(NEW.originator_id)
        || int4send(8) || int8send(NEW.originator_version)
        || CASE WHEN NEW.topic IS NULL THEN int4send(-1)
                ELSE int4send(octet_length(convert_to(NEW.topic, 'UTF8')))
                     || convert_to(NEW.topic, 'UTF8')
           END
        || CASE WHEN NEW.state IS NULL THEN int4send(-1)
                ELSE int4send(octet_length(NEW.state)) || NEW.state
           END);
    RETURN NEW;
END $$;

-- Backfill: chain the events stored before this migration, in position order.
DO $$
DECLARE
    prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    ev record;
BEGIN
    CREATE TEMP TABLE verity_chain_backfill (position int8 PRIMARY KEY, hash bytea NOT NULL)
        ON COMMIT DROP;
    FOR ev IN SELECT notification_id, originator_id, originator_version, topic, state
              FROM verity_events WHERE record_hash IS NULL ORDER BY notification_id LOOP
        prev := sha256(prev
            || int4send(8) || int8send(ev.notification_id)
            || int4send(16) || uuid_send(ev.originator_id)
            || int4send(8) || int8send(ev.originator_version)
            || CASE WHEN ev.topic IS NULL THEN int4send(-1)
                    ELSE int4send(octet_length(convert_to(ev.topic, 'UTF8')))
                         || convert_to(ev.topic, 'UTF8')
               END
            || CASE WHEN ev.state IS NULL THEN int4send(-1)
                    ELSE int4send(octet_length(ev.state)) || ev.state
               END);
        INSERT INTO verity_chain_backfill VALUES (ev.notification_id, prev);
    END LOOP;
    ALTER TABLE verity_events DISABLE TRIGGER verity_events_immutable;
    UPDATE verity_events SET record_hash = b.hash
        FROM verity_chain_backfill AS b WHERE notification_id = b.position;
    ALTER TABLE verity_events ENABLE TRIGGER verity_events_immutable;
END $$;

ALTER TABLE verity_events ALTER COLUMN record_hash SET NOT NULL;

DROP TRIGGER IF EXISTS verity_events_lock_for_chain ON verity_events;
CREATE TRIGGER verity_events_lock_for_chain
    BEFORE INSERT ON verity_events
    FOR EACH STATEMENT EXECUTE FUNCTION verity_events_lock_for_chain();

DROP TRIGGER IF EXISTS verity_events_chain ON verity_events;
CREATE TRIGGER verity_events_chain
    BEFORE INSERT ON verity_events
    FOR EACH ROW EXECUTE FUNCTION verity_events_chain();

DROP TRIGGER IF EXISTS verity_events_no_truncate ON verity_events;
CREATE TRIGGER verity_events_no_truncate
    BEFORE TRUNCATE ON verity_events
    FOR EACH STATEMENT EXECUTE FUNCTION verity_events_are_immutable();
