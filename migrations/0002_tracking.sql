-- Where each projection and each relay has got to in the global order of events.
CREATE TABLE IF NOT EXISTS tracking (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
