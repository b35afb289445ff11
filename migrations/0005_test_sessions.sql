-- verity:repeatable
-- Read models of test sessions and the detections devices reported in them. Disposable:
-- dropped, they come back here and are rebuilt from the events.
CREATE TABLE IF NOT EXISTS rm_test_sessions (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    project_id uuid NOT NULL,
    video_id uuid NOT NULL,
    status text NOT NULL,
    tolerance_ms integer NOT NULL,
    iou_threshold double precision NOT NULL,
    device_id text,
    description text,
    error text,
    started_at timestamptz,
    completed_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    version integer NOT NULL,
    frame_count bigint NOT NULL DEFAULT 0,
    detection_count bigint NOT NULL DEFAULT 0,
    class_counts jsonb NOT NULL DEFAULT '{}',
    first_detection_at timestamptz,
    last_detection_at timestamptz,
    last_frame_timestamp double precision
);
CREATE INDEX IF NOT EXISTS rm_test_sessions_project_idx
    ON rm_test_sessions (project_id, created_at, id);
CREATE INDEX IF NOT EXISTS rm_test_sessions_video_idx ON rm_test_sessions (video_id);

-- One row per detected object; append-only, so a single index serves every query.
CREATE TABLE IF NOT EXISTS rm_detections (
    session_id uuid NOT NULL,
    timestamp double precision NOT NULL,
    frame_id uuid NOT NULL,
    idx integer NOT NULL,
    device_id text NOT NULL,
    seq bigint NOT NULL,
    frame_number integer,
    captured_at timestamptz,
    received_at timestamptz NOT NULL,
    class_label text NOT NULL,
    confidence double precision,
    box_x double precision,
    box_y double precision,
    box_width double precision,
    box_height double precision,
    track_id text,
    model_version text,
    PRIMARY KEY (session_id, timestamp, frame_id, idx)
);
-- A detection's id is derived from (frame_id, idx) when it is read (domain.detections.
-- detection_id): computing it for every row while projecting was a seventh of the server's
-- ingest work. Tables made before that drop the column.
ALTER TABLE rm_detections DROP COLUMN IF EXISTS id;

-- Status names rows got before pause and resume were moves of their own
-- (domain.test_sessions.LEGACY_STATUS): a session ready to start reads `pending`, a paused one
-- `paused`. Idempotent, like the rest of this file.
UPDATE rm_test_sessions SET status = 'pending' WHERE status = 'created';
UPDATE rm_test_sessions SET status = 'paused' WHERE status = 'stopped';
