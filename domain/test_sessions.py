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
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"


CLOSED = frozenset({SessionStatus.COMPLETED, SessionStatus.FAILED})
"""Terminal states: nothing moves a session out of them and no detection is accepted."""

# status -> the statuses it may move to
_NEXT: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.CREATED: frozenset(
        {SessionStatus.RUNNING, SessionStatus.COMPLETED, SessionStatus.FAILED}
    ),
    SessionStatus.RUNNING: frozenset(
        {SessionStatus.STOPPED, SessionStatus.COMPLETED, SessionStatus.FAILED}
    ),
    SessionStatus.STOPPED: frozenset(
        {SessionStatus.RUNNING, SessionStatus.COMPLETED, SessionStatus.FAILED}
    ),
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.FAILED: frozenset(),
}


def check_settings(tolerance_ms: int, iou_threshold: float) -> None:
    if tolerance_ms < 0:
        raise InvalidValue("toleranceMs", "toleranceMs: must be zero or more milliseconds")
    if not 0.0 <= iou_threshold <= 1.0:
        raise InvalidValue("iouThreshold", "iouThreshold: must be between 0 and 1")


class TestSession(VerityAggregate):
    """Created -> running <-> stopped -> completed | failed; completion triggers evaluation."""

    __test__ = False  # not a pytest test class, despite the name

    class Created(VerityAggregate.Created):
        name: str
        project_id: UUID
        video_id: UUID
        tolerance_ms: int = DEFAULT_TOLERANCE_MS
        iou_threshold: float = DEFAULT_IOU_THRESHOLD
        device_id: str | None = None
        description: str | None = None
        allowed_device_ids: tuple[str, ...] = ()
        """Devices whose frames it takes; empty: any device."""

    class AllowedDevicesChanged(VerityAggregate.Event):
        allowed_device_ids: tuple[str, ...]

    class Started(VerityAggregate.Event):
        pass

    class Stopped(VerityAggregate.Event):
        reason: str = ""

    class Completed(VerityAggregate.Event):
        """The run is over; the evaluation reacts to this event."""

    class Failed(VerityAggregate.Event):
        error: str = ""

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
        allowed_device_ids: tuple[str, ...] = (),
    ) -> None:
        self.allowed_device_ids = allowed_device_ids
        self.name = name
        self.project_id = project_id
        self.video_id = video_id
        self.tolerance_ms = tolerance_ms
        self.iou_threshold = iou_threshold
        self.device_id = device_id
        self.description = description
        self.status = SessionStatus.CREATED

    @property
    def accepts_detections(self) -> bool:
        return self.status not in CLOSED

    def allow_devices(self, device_ids: tuple[str, ...]) -> bool:
        """Take frames only from these devices (empty: from any); whether anything changed."""
        if not self.accepts_detections:
            msg = f"Cannot change the devices of test session {self.id}: it is {self.status.value}"
            raise Conflict(msg)
        if device_ids == self.allowed_device_ids:
            return False
        self._devices_allowed(allowed_device_ids=device_ids)
        return True

    @event(AllowedDevicesChanged)
    def _devices_allowed(self, allowed_device_ids: tuple[str, ...]) -> None:
        self.allowed_device_ids = allowed_device_ids

    def _move(self, to: SessionStatus) -> None:
        if to not in _NEXT[self.status]:
            verb = {
                SessionStatus.RUNNING: "start",
                SessionStatus.STOPPED: "stop",
                SessionStatus.COMPLETED: "complete",
                SessionStatus.FAILED: "fail",
            }.get(to, to.value)
            msg = f"Cannot {verb} test session {self.id}: it is {self.status.value}"
            raise Conflict(msg)

    def start(self) -> None:
        self._move(SessionStatus.RUNNING)
        self._started()

    @event(Started)
    def _started(self) -> None:
        self.status = SessionStatus.RUNNING

    def stop(self, reason: str = "") -> None:
        self._move(SessionStatus.STOPPED)
        self._stopped(reason=reason)

    @event(Stopped)
    def _stopped(self, reason: str) -> None:
        self.status = SessionStatus.STOPPED

    def complete(self) -> None:
        self._move(SessionStatus.COMPLETED)
        self._completed()

    @event(Completed)
    def _completed(self) -> None:
        self.status = SessionStatus.COMPLETED

    def fail(self, error: str = "") -> None:
        self._move(SessionStatus.FAILED)
        self._failed(error=error)

    @event(Failed)
    def _failed(self, error: str) -> None:
        self.status = SessionStatus.FAILED
