-- verity:repeatable
-- Read model of registered devices (their NATS users), and the devices each test session
-- allows. Disposable: rebuilt from the events (rm_test_sessions itself is made by 0005; its
-- `allowed_device_ids` column is added here, empty = any device).
CREATE TABLE IF NOT EXISTS rm_devices (
    id uuid PRIMARY KEY,
    device_id text NOT NULL UNIQUE,
    status text NOT NULL,
    password_hash text NOT NULL,
    disabled_reason text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    created_by text NOT NULL,
    version integer NOT NULL
);

ALTER TABLE rm_test_sessions ADD COLUMN IF NOT EXISTS allowed_device_ids text[] NOT NULL
    DEFAULT '{}';
