"""Test sessions: one run of a device (or model) over a video, judged against ground truth."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.errors import Conflict, InvalidValue
from domain.events import VerityAggregate

DEFAULT_TOLERANCE_MS = 100
DEFAULT_IOU_THRESHOLD = 0.5


class SessionStatus(StrEnum):
    PENDING = "pending"
    """Created, ready to start (read models written before this name said `created`)."""
    RUNNING = "running"
    PAUSED = "paused"
    """Detections still accepted; resume continues the run (once named `stopped`)."""
    COMPLETED = "completed"
    FAILED = "failed"
    DELETED = "deleted"
    """Hidden from lists, closed to detections; its events and evaluations stay readable."""


class Move(StrEnum):
    """What a user or worker can do to a session; each is one command and one event."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    """The frontend's Stop: the run is over, the session completes and is evaluated."""
    COMPLETE = "complete"
    FAIL = "fail"
    DELETE = "delete"


_LIVE = frozenset({SessionStatus.RUNNING, SessionStatus.PAUSED})
_OPEN = frozenset({SessionStatus.PENDING, *_LIVE})

TRANSITIONS: dict[Move, tuple[frozenset[SessionStatus], SessionStatus]] = {
    Move.START: (frozenset({SessionStatus.PENDING}), SessionStatus.RUNNING),
    Move.PAUSE: (frozenset({SessionStatus.RUNNING}), SessionStatus.PAUSED),
    Move.RESUME: (frozenset({SessionStatus.PAUSED}), SessionStatus.RUNNING),
    Move.STOP: (_LIVE, SessionStatus.COMPLETED),
    Move.COMPLETE: (_OPEN, SessionStatus.COMPLETED),
    Move.FAIL: (_OPEN, SessionStatus.FAILED),
    Move.DELETE: (
        frozenset(SessionStatus) - {SessionStatus.DELETED},
        SessionStatus.DELETED,
    ),
}
"""The session lifecycle, the one table of it: move -> (statuses it applies in, status after).
Any other move answers Conflict naming the current status."""

CLOSED = frozenset(SessionStatus) - _OPEN
"""Closed to detections: completed, failed, deleted (only delete moves a session on from them)."""

LEGACY_STATUS = {"created": SessionStatus.PENDING, "stopped": SessionStatus.PAUSED}
"""Status names read models stored before pause/resume were their own moves."""


def check_settings(tolerance_ms: int, iou_threshold: float) -> None:
    if tolerance_ms < 0:
        raise InvalidValue("toleranceMs", "toleranceMs: must be zero or more milliseconds")
    if not 0.0 <= iou_threshold <= 1.0:
        raise InvalidValue("iouThreshold", "iouThreshold: must be between 0 and 1")


class TestSession(VerityAggregate):
    """pending -> running <-> paused -> completed | failed (TRANSITIONS); completion, by Stop or
    complete, triggers the evaluation."""

    __test__ = False  # not a pytest test class, despite the name

    class Created(VerityAggregate.Created):
        name: str
        project_id: UUID
        video_id: UUID
        tolerance_ms: int = DEFAULT_TOLERANCE_MS
        iou_threshold: float = DEFAULT_IOU_THRESHOLD
        device_id: str | None = None
        description: str | None = None

    class Started(VerityAggregate.Event):
        pass

    class Paused(VerityAggregate.Event):
        reason: str = ""

    class Resumed(VerityAggregate.Event):
        pass

    class Stopped(VerityAggregate.Event):
        """Stored before pause was its own move: meant "paused" (a later `Started` resumed).
        Nothing records it now; kept so the sessions that have one load and project."""

        reason: str = ""

    class Completed(VerityAggregate.Event):
        """The run is over; the evaluation reacts to this event."""

        reason: str = ""
        """Why it ended: `stopped` when the frontend's Stop ended it, empty for complete."""

    class Failed(VerityAggregate.Event):
        error: str = ""

    class Deleted(VerityAggregate.Event):
        """Event-sourced deletion: nothing is erased, the session leaves the lists."""

    @event(Created)
    def __init__(
        self,
        name: str,
        project_id: UUID,
        video_id: UUID,
        tolerance_ms: int = DEFAULT_TOLERANCE_MS,
        iou_threshold: float = DEFAULT_IOU_THRESHOLD,
        device_id: str | None = None,
        description: str | None = None,
    ) -> None:
        self.name = name
        self.project_id = project_id
        self.video_id = video_id
        self.tolerance_ms = tolerance_ms
        self.iou_threshold = iou_threshold
        self.device_id = device_id
        self.description = description
        self.status = SessionStatus.PENDING

    @property
    def accepts_detections(self) -> bool:
        return self.status not in CLOSED

    def _check(self, move: Move) -> None:
        allowed, _ = TRANSITIONS[move]
        if self.status not in allowed:
            msg = f"Cannot {move.value} test session {self.id}: it is {self.status.value}"
            raise Conflict(msg)

    def start(self) -> None:
        self._check(Move.START)
        self._started()

    @event(Started)
    def _started(self) -> None:
        self.status = TRANSITIONS[Move.START][1]

    def pause(self, reason: str = "") -> None:
        self._check(Move.PAUSE)
        self._paused(reason=reason)

    @event(Paused)
    def _paused(self, reason: str) -> None:
        self.status = TRANSITIONS[Move.PAUSE][1]

    def resume(self) -> None:
        self._check(Move.RESUME)
        self._resumed()

    @event(Resumed)
    def _resumed(self) -> None:
        self.status = TRANSITIONS[Move.RESUME][1]

    @event(Stopped)
    def _stopped(self, reason: str) -> None:
        self.status = TRANSITIONS[Move.PAUSE][1]

    def stop(self) -> None:
        self._check(Move.STOP)
        self._completed(reason="stopped")

    def complete(self) -> None:
        self._check(Move.COMPLETE)
        self._completed(reason="")

    @event(Completed)
    def _completed(self, reason: str) -> None:
        self.status = TRANSITIONS[Move.COMPLETE][1]

    def fail(self, error: str = "") -> None:
        self._check(Move.FAIL)
        self._failed(error=error)

    @event(Failed)
    def _failed(self, error: str) -> None:
        self.status = TRANSITIONS[Move.FAIL][1]

    def delete(self) -> None:
        self._check(Move.DELETE)
        self._deleted()

    @event(Deleted)
    def _deleted(self) -> None:
        self.status = TRANSITIONS[Move.DELETE][1]


STATUS_AFTER: dict[str, SessionStatus] = {
    "Created": SessionStatus.PENDING,
    "Started": TRANSITIONS[Move.START][1],
    "Paused": TRANSITIONS[Move.PAUSE][1],
    "Resumed": TRANSITIONS[Move.RESUME][1],
    "Stopped": TRANSITIONS[Move.PAUSE][1],
    "Completed": TRANSITIONS[Move.COMPLETE][1],
    "Failed": TRANSITIONS[Move.FAIL][1],
    "Deleted": TRANSITIONS[Move.DELETE][1],
}
"""The status each event (by class name) leaves a session in, for the read side."""
