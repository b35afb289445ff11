-- Which event store this database is: one UUID, made when the database is first migrated.
-- The relay names every message `<store id>:<position>`, so two databases publishing into one
-- NATS (staging and a test database, a fresh database after a reset) never send the same
-- Nats-Msg-Id, and it records the id in the events stream's description to notice a stream
-- that another store feeds. A copy of a database (pg_dump, a restore) keeps the id; to run the
-- copy beside its original on one NATS prefix, give it a new one:
--     UPDATE store_identity SET id = gen_random_uuid();
CREATE TABLE IF NOT EXISTS store_identity (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id uuid NOT NULL,
    made_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO store_identity (id) VALUES (gen_random_uuid()) ON CONFLICT DO NOTHING;
