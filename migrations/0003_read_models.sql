-- verity:repeatable
-- Read models for projects and videos. They are disposable: drop them (and their tracking
-- rows) and the next start re-creates them here and rebuilds their content from the events.
CREATE TABLE IF NOT EXISTS rm_projects (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    description text,
    camera_model text NOT NULL,
    camera_view text NOT NULL,
    lens_type text,
    resolution text,
    frame_rate integer,
    signal_type text NOT NULL,
    status text NOT NULL,
    owner_id text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    version integer NOT NULL,
    created_by text NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_projects_created_at_idx ON rm_projects (created_at, id);

CREATE TABLE IF NOT EXISTS rm_videos (
    id uuid PRIMARY KEY,
    project_id uuid NOT NULL,
    filename text NOT NULL,
    original_name text NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    fps double precision,
    frame_count integer,
    duration double precision,
    width integer,
    height integer,
    codec text,
    status text NOT NULL DEFAULT 'uploaded',
    processing_status text NOT NULL DEFAULT 'pending',
    ground_truth_generated boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_videos_project_idx ON rm_videos (project_id, created_at, id);
