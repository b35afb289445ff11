"""The PostgreSQL frame store: a batch of frame events is ONE call of `verity_record_frames`.

That function (migration 0009) claims every frame id in `frame_receipts`, takes the event
store's write lock, inserts the events and checks that none of their sessions was closed
meanwhile, in one statement on an autocommit connection: one round trip, and the write lock is
held only while PostgreSQL works. A frame claimed before makes the call store nothing (a
competitor's uncommitted claim makes it wait for that commit first); the committed claims are
then looked up and reported, so the caller can store the rest."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import Mapper
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic
from psycopg import DatabaseError
from psycopg.rows import tuple_row

from commands.application import Position, Verity
from commands.frame_store import FramesStoredBefore, SessionsClosed
from domain.detections import FrameBatch
from domain.test_sessions import TestSession

_RECORD = (
    "SELECT verity_record_frames(%b::uuid[], %b::uuid[], %b::uuid[], %b::int8[], %b::text[],"
    " %b::bytea[], %b::uuid[], %s::text[], %s)"
)
"""Binary arrays carry 125 kB states as they are; the library's insert passes a text-format
array of composites, which psycopg escapes in Python byte by byte."""
_REPEATS = "VF001"
_CLOSED = "VF002"
"""SQLSTATEs raised by verity_record_frames (migration 0009)."""
_STORED_BEFORE = "SELECT frame_id FROM frame_receipts WHERE frame_id = ANY(%b::uuid[])"
_CLOSING_TOPICS = [
    get_topic(e) for e in (TestSession.Completed, TestSession.Failed, TestSession.Deleted)
]


class PostgresFrameStore:
    """Frame batches into the application's own event store (same tables, same pool)."""

    def __init__(self, app: Verity) -> None:
        recorder = app.recorder
        if not isinstance(recorder, PostgresApplicationRecorder):
            msg = f"PostgresFrameStore needs a PostgreSQL event store, not {type(recorder)}"
            raise TypeError(msg)
        self._datastore = recorder.datastore
        self._mapper: Mapper[UUID] = app.mapper

    def record(self, events: Sequence[FrameBatch.Recorded]) -> Position | None:
        if not events:
            return None
        stored = [self._mapper.to_stored_event(e) for e in events]
        frame_ids = [f.id for e in events for f in e.frames]
        args = (
            frame_ids,
            [e.originator_id for e in events for _ in e.frames],
            [s.originator_id for s in stored],
            [s.originator_version for s in stored],
            [s.topic for s in stored],
            [s.state for s in stored],
            list({e.session_id for e in events}),
            _CLOSING_TOPICS,
            f"{self._datastore.lock_timeout}s",
        )
        with (
            self._datastore.get_connection() as conn,  # autocommit: a call is a transaction
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            try:
                row = cur.execute(_RECORD, args).fetchone()
            except DatabaseError as err:
                if err.sqlstate == _REPEATS:
                    before = {r[0] for r in cur.execute(_STORED_BEFORE, (frame_ids,)).fetchall()}
                    if not before:
                        msg = "verity_record_frames reported a repeat, but no frame is stored"
                        raise RuntimeError(msg) from None
                    raise FramesStoredBefore(before) from None
                if err.sqlstate == _CLOSED:
                    detail = err.diag.message_detail or ""
                    raise SessionsClosed(UUID(s) for s in detail.split(",") if s) from None
                raise
        assert row is not None
        position: Position = max(row[0])
        return position
