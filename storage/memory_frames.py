"""The in-memory frame store, for handler tests on the library's in-memory event store."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from commands.application import Position, Verity
from commands.frame_store import FramesStoredBefore, SessionsClosed
from domain.detections import FrameBatch
from domain.test_sessions import TestSession


class InMemoryFrameStore:
    """The same contract as PostgresFrameStore, kept by one process (and one thread at a time)."""

    def __init__(self, app: Verity) -> None:
        self._app = app
        self._receipts: set[UUID] = set()

    def record(self, events: Sequence[FrameBatch.Recorded]) -> Position | None:
        ids = {f.id for e in events for f in e.frames}
        before = ids & self._receipts
        if before:
            raise FramesStoredBefore(before)
        closed = {
            e.session_id
            for e in events
            if not self._app.load(TestSession, e.session_id, "Test session").accepts_detections
        }
        if closed:
            raise SessionsClosed(closed)
        positions = self._app.recorder.insert_events(
            [self._app.mapper.to_stored_event(e) for e in events]
        )
        self._receipts.update(ids)
        return max(positions) if positions else None
