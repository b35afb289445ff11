-- verity:repeatable
-- Read models of evaluations and project criteria. Disposable: rebuilt from the events.
CREATE TABLE IF NOT EXISTS rm_project_criteria (
    project_id uuid PRIMARY KEY,
    id uuid NOT NULL,
    min_precision double precision,
    min_recall double precision,
    min_f1_score double precision,
    max_latency_ms double precision,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    version integer NOT NULL
);

CREATE TABLE IF NOT EXISTS rm_evaluations (
    id uuid PRIMARY KEY,
    session_id uuid NOT NULL,
    project_id uuid,
    video_id uuid,
    trigger text NOT NULL,
    based_on uuid,
    status text NOT NULL,
    config jsonb NOT NULL,
    gt_position bigint NOT NULL,
    gt_annotations integer NOT NULL,
    gt_pin jsonb NOT NULL,
    detections_count integer NOT NULL,
    created_at timestamptz NOT NULL,
    recorded_at timestamptz,
    tp integer,
    fp integer,
    fn integer,
    precision double precision,
    recall double precision,
    f1 double precision,
    accuracy double precision,
    ap double precision,
    ap50 double precision,
    ap75 double precision,
    latency_p95_ms double precision,
    outcome text,
    report jsonb,
    verdict jsonb,
    criteria jsonb,
    version integer NOT NULL
);
ALTER TABLE rm_evaluations ADD COLUMN IF NOT EXISTS failure text;
CREATE INDEX IF NOT EXISTS rm_evaluations_session_idx
    ON rm_evaluations (session_id, created_at DESC, id);
CREATE INDEX IF NOT EXISTS rm_evaluations_created_idx ON rm_evaluations (created_at);

CREATE TABLE IF NOT EXISTS rm_evaluation_comparisons (
    evaluation_id uuid NOT NULL,
    seq integer NOT NULL,
    status text NOT NULL,
    frame integer NOT NULL,
    time_s double precision,
    gt_ref text,
    gt_label text,
    det_ref text,
    det_label text,
    confidence double precision,
    iou double precision,
    offset_ms double precision,
    PRIMARY KEY (evaluation_id, seq)
);
CREATE INDEX IF NOT EXISTS rm_evaluation_comparisons_status_idx
    ON rm_evaluation_comparisons (evaluation_id, status, seq);
-- A detection's outcome, shown with it in the detection lists.
CREATE INDEX IF NOT EXISTS rm_evaluation_comparisons_det_idx
    ON rm_evaluation_comparisons (evaluation_id, det_ref);
