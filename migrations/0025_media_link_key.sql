-- The key that signs media links (api/media_links.py): short-lived URLs to stored videos for
-- players that cannot send a token. Kept in the database because it is the one thing every API
-- process of a deployment shares, so each verifies the links the others made. The first API
-- process to need it inserts 32 random bytes (Python's `secrets`); the others read that row.
-- To invalidate every link at once: DELETE FROM media_link_key; then restart the API processes
-- (each holds the key in memory once read).
CREATE TABLE IF NOT EXISTS media_link_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key bytea NOT NULL CHECK (length(key) >= 32),
    made_at timestamptz NOT NULL DEFAULT now()
);
