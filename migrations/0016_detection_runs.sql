-- verity:repeatable
-- Read model of detection runs: one row per run with its progress. Disposable.
CREATE TABLE IF NOT EXISTS rm_detection_runs (
    id uuid PRIMARY KEY,
    model_id uuid NOT NULL,
    model_name text NOT NULL,
    video_id uuid NOT NULL,
    mode text NOT NULL,
    session_id uuid,
    parameters jsonb NOT NULL,
    status text NOT NULL,
    total_frames integer NOT NULL,
    planned_frames integer NOT NULL,
    next_frame integer NOT NULL,
    frames_done integer NOT NULL,
    detections integer NOT NULL,
    frames_per_second double precision,
    error text,
    error_frame integer,
    worker text,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz,
    version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_detection_runs_video_idx ON rm_detection_runs (video_id, created_at);
CREATE INDEX IF NOT EXISTS rm_detection_runs_status_idx ON rm_detection_runs (status, created_at);
