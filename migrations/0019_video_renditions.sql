-- verity:repeatable
-- Browser-playable renditions (issue 17): the copy a player is given when the upload's codec or
-- container is not one browsers play; the original stays the video's `originalUrl`.
ALTER TABLE rm_videos ADD COLUMN IF NOT EXISTS rendition_status text;
ALTER TABLE rm_videos ADD COLUMN IF NOT EXISTS rendition_filename text;
ALTER TABLE rm_videos ADD COLUMN IF NOT EXISTS rendition_codec text;
ALTER TABLE rm_videos ADD COLUMN IF NOT EXISTS rendition_size bigint;
ALTER TABLE rm_videos ADD COLUMN IF NOT EXISTS rendition_duration double precision;
ALTER TABLE rm_videos ADD COLUMN IF NOT EXISTS rendition_error text;
