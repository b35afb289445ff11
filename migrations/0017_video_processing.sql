-- verity:repeatable
-- Video processing (issue 16): the lifecycle's failure reason and the quality assessment on the
-- videos read model; ground truth facts are read from rm_annotations, not stored here.
ALTER TABLE rm_videos ADD COLUMN IF NOT EXISTS processing_error text;
ALTER TABLE rm_videos ADD COLUMN IF NOT EXISTS quality_score double precision;
ALTER TABLE rm_videos ADD COLUMN IF NOT EXISTS quality text;
ALTER TABLE rm_videos DROP COLUMN IF EXISTS ground_truth_generated;

-- A video's detector candidates: whether it has any, and bulk review by frame range.
CREATE INDEX IF NOT EXISTS rm_annotations_candidates_idx
    ON rm_annotations (video_id, frame_number) WHERE NOT deleted AND source = 'detector';
