-- The event store, exactly as eventsourcing's PostgreSQL recorder (9.5.6) expects it for the
-- application named "Verity"; the library's own table creation is switched off.
CREATE TABLE IF NOT EXISTS verity_events (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    notification_id bigserial,
    PRIMARY KEY (originator_id, originator_version)
) WITH (
    autovacuum_enabled = true,
    autovacuum_vacuum_threshold = 100000000,
    autovacuum_vacuum_scale_factor = 0.5,
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01
);

CREATE UNIQUE INDEX IF NOT EXISTS verity_events_notification_id_idx
    ON verity_events (notification_id ASC);

DO $$
BEGIN
    CREATE TYPE stored_event_uuid AS (
        originator_id uuid,
        originator_version bigint,
        topic text,
        state bytea
    );
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- History is never rewritten: refuse UPDATE and DELETE on stored events.
CREATE OR REPLACE FUNCTION verity_events_are_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'verity_events is append-only (% refused)', TG_OP;
END $$;

DROP TRIGGER IF EXISTS verity_events_immutable ON verity_events;
CREATE TRIGGER verity_events_immutable
    BEFORE UPDATE OR DELETE ON verity_events
    FOR EACH ROW EXECUTE FUNCTION verity_events_are_immutable();
