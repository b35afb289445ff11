-- verity:repeatable
-- Read model of detector models, and the models each project uses. Disposable: rebuilt from
-- the events (rm_projects itself is made by 0003; its `models` column is added here).
CREATE TABLE IF NOT EXISTS rm_detector_models (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    version text NOT NULL,
    framework text NOT NULL,
    sha256 text NOT NULL,
    filename text NOT NULL,
    original_name text NOT NULL,
    size bigint NOT NULL,
    status text NOT NULL,
    reason text,
    class_names jsonb NOT NULL,
    class_map jsonb NOT NULL,
    input_size integer,
    task text,
    confidence double precision NOT NULL,
    nms_iou double precision NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    version_no integer NOT NULL,
    created_by text NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_detector_models_name_idx ON rm_detector_models (name, created_at);

ALTER TABLE rm_projects ADD COLUMN IF NOT EXISTS models jsonb NOT NULL DEFAULT '[]';
