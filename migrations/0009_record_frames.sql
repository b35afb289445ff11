-- One ingest transaction in one statement: claim every frame id, take the event store's write
-- lock, insert the frame-batch events and check that none of their sessions was closed
-- meanwhile. Sent as a single call on an autocommit connection, the lock is held only while
-- PostgreSQL itself works: the client's round trips (5 before, each waiting for a Python
-- thread to be scheduled on a busy host) are no longer inside it.
--
-- Errors, each rolling back the whole call (nothing is stored):
--   VF001  a frame id was already claimed (a repeat): the caller stores the batch the slow way,
--          which finds out which frames are new;
--   VF002  a session was completed or failed; DETAIL lists the session ids, comma-separated.
CREATE OR REPLACE FUNCTION verity_record_frames(
    frame_ids uuid[],
    owners uuid[],
    event_ids uuid[],
    versions int8[],
    topics text[],
    states bytea[],
    sessions uuid[],
    closing_topics text[],
    lock_wait text
) RETURNS int8[]
LANGUAGE plpgsql AS $$
DECLARE
    claimed int8;
    positions int8[];
    closed uuid[];
BEGIN
    INSERT INTO frame_receipts (frame_id, event_id)
        SELECT f, e FROM unnest(frame_ids, owners) AS claims(f, e) ORDER BY f
        ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS claimed = ROW_COUNT;
    IF claimed < cardinality(frame_ids) THEN
        RAISE EXCEPTION '% of % frames were stored before', cardinality(frame_ids) - claimed,
            cardinality(frame_ids) USING ERRCODE = 'VF001';
    END IF;
    -- The same lock the eventsourcing library takes for every insert: notification ids are
    -- then committed in the order they were issued, so tailing readers never skip one.
    PERFORM set_config('lock_timeout', lock_wait, true);
    LOCK TABLE verity_events IN EXCLUSIVE MODE;
    PERFORM pg_notify('verity_events', '');
    WITH inserted AS (
        INSERT INTO verity_events (originator_id, originator_version, topic, state)
            SELECT * FROM unnest(event_ids, versions, topics, states)
            RETURNING notification_id
    )
    SELECT array_agg(notification_id) INTO positions FROM inserted;
    -- Under the lock every earlier write is committed: a session closed by one of them is seen.
    SELECT array_agg(DISTINCT originator_id) INTO closed FROM verity_events
        WHERE originator_id = ANY(sessions) AND topic = ANY(closing_topics);
    IF closed IS NOT NULL THEN
        RAISE EXCEPTION 'sessions closed meanwhile' USING ERRCODE = 'VF002',
            DETAIL = array_to_string(closed, ',');
    END IF;
    RETURN positions;
END $$;
