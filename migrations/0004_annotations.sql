-- verity:repeatable
-- Read models of annotations, annotation sessions and annotation import jobs. Disposable:
-- drop them (and their tracking rows) and they are rebuilt from the events.
CREATE TABLE IF NOT EXISTS rm_annotations (
    id uuid PRIMARY KEY,
    video_id uuid NOT NULL,
    version integer NOT NULL,
    frame_number integer NOT NULL,
    "timestamp" double precision NOT NULL,
    end_timestamp double precision,
    vru_type text NOT NULL,
    x double precision,
    y double precision,
    width double precision,
    height double precision,
    occluded boolean NOT NULL,
    truncated boolean NOT NULL,
    difficult boolean NOT NULL,
    validated boolean NOT NULL,
    deleted boolean NOT NULL,
    source text NOT NULL,
    detection_id text,
    annotator text,
    notes text,
    confidence double precision,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    created_by text NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_annotations_video_idx
    ON rm_annotations (video_id, frame_number, id) WHERE NOT deleted;
CREATE INDEX IF NOT EXISTS rm_annotations_detection_idx
    ON rm_annotations (detection_id, "timestamp") WHERE NOT deleted AND detection_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS rm_annotation_sessions (
    id uuid PRIMARY KEY,
    video_id uuid NOT NULL,
    project_id uuid NOT NULL,
    annotator_id text,
    status text NOT NULL,
    current_frame integer NOT NULL,
    total_frames integer,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_annotation_sessions_video_idx ON rm_annotation_sessions (video_id);

CREATE TABLE IF NOT EXISTS rm_annotation_imports (
    id uuid PRIMARY KEY,
    video_id uuid NOT NULL,
    format text NOT NULL,
    filename text NOT NULL,
    status text NOT NULL,
    total integer NOT NULL,
    imported integer NOT NULL,
    rejected integer NOT NULL,
    error text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    version integer NOT NULL
);
