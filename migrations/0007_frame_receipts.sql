-- Write side of device ingest: every frame id ever stored, claimed in the same transaction as
-- the FrameBatch.Recorded event that carries the frame. Its primary key is what makes a repeated
-- frame message (same device, session and seq) impossible to store twice, now that one event
-- carries many frames. Derivable from the events (an auditor can check it: every id here is in
-- exactly one stored frame event), but not a read model: never dropped, never rebuilt.
CREATE TABLE IF NOT EXISTS frame_receipts (
    frame_id uuid PRIMARY KEY,
    event_id uuid NOT NULL
);
-- Append-only, like the event store it guards.
CREATE OR REPLACE FUNCTION frame_receipts_are_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'frame_receipts is append-only (% refused)', TG_OP;
END $$;
DROP TRIGGER IF EXISTS frame_receipts_immutable ON frame_receipts;
CREATE TRIGGER frame_receipts_immutable
    BEFORE UPDATE OR DELETE ON frame_receipts
    FOR EACH ROW EXECUTE FUNCTION frame_receipts_are_immutable();
-- Frames stored one event each (before batching) were guarded by the events' own primary key:
-- claim their ids too, so a late repeat of one of them is still recognised.
INSERT INTO frame_receipts (frame_id, event_id)
    SELECT originator_id, originator_id FROM verity_events
    WHERE topic = 'domain.detections:DeviceFrame.Recorded' AND originator_version = 1
    ON CONFLICT DO NOTHING;
