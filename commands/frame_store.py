"""What recording frames needs from storage: one atomic call per batch of frame-batch events.

The write side owns this interface; storage/ implements it (PostgreSQL in production, memory
for unit tests) and the composition root picks one. A call stores all of its events or none:
each frame id is claimed exactly once across every writer, and no event lands after its
session was completed or failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol
from uuid import UUID

from commands.application import Position
from domain.detections import FrameBatch


class FramesStoredBefore(Exception):
    """Some frames were stored before (by any writer, committed): the call stored nothing."""

    def __init__(self, frame_ids: Iterable[UUID]) -> None:
        self.frame_ids = frozenset(frame_ids)
        super().__init__(f"{len(self.frame_ids)} frames were stored before")


class SessionsClosed(Exception):
    """Sessions were completed or failed before the events could be stored: nothing stored."""

    def __init__(self, sessions: Iterable[UUID]) -> None:
        self.sessions = frozenset(sessions)
        super().__init__(f"sessions closed meanwhile: {sorted(map(str, self.sessions))}")


class FrameStore(Protocol):
    def record(self, events: Sequence[FrameBatch.Recorded]) -> Position | None:
        """Store the `FrameBatch.Recorded` events in one transaction, claiming the id of every
        frame they carry; the last event's position (None for no events).

        Raises FramesStoredBefore naming every frame of the call whose claim is committed
        (waiting for competing uncommitted claims first), or SessionsClosed naming the events'
        sessions that have a completion or failure in the store when the events would go in."""
        ...
