-- verity:repeatable
-- Events a read model could not apply, skipped so that one bad event never stops the read
-- side. Part of the read models' state: written in the same transaction as their rows and
-- tracking position, cleared with them by a rebuild (which records again whatever still
-- fails), re-tried by `verity rebuild --retry-failures`.
CREATE TABLE IF NOT EXISTS projection_failures (
    projection text NOT NULL,
    position bigint NOT NULL,
    topic text NOT NULL,
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    -- The read-model row the event changes; later events of that row are held back (and
    -- recorded here with `held_by`) until it applies, so a retry replays them in order.
    row_key uuid NOT NULL,
    held_by bigint,
    error text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, position)
);
CREATE INDEX IF NOT EXISTS projection_failures_row_idx ON projection_failures (projection, row_key);
