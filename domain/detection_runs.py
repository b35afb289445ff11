"""Detection runs: a registered model over a video, by a detector worker, resumable.

requested -> running (-> progressed ...) -> completed | failed(reason, frame) | cancelled.
`next_frame` is where a worker picks the run up again: everything before it is stored. Results
go through ids derived from the run, frame and index, so frames a crashed worker stored after
its last progress event are recognised when the next worker stores them again.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import NAMESPACE_URL, UUID

import msgspec
from eventsourcing.domain import event

from domain.detections import fast_uuid5
from domain.detector_models import DEFAULT_CONFIDENCE, DEFAULT_NMS_IOU
from domain.errors import Conflict
from domain.events import VerityAggregate


class RunMode(StrEnum):
    TEST_SESSION = "test_session"
    """Detections become a test session's detections, the model acting as the device."""
    GROUND_TRUTH = "ground_truth"
    """Detections become unvalidated annotation candidates (source `detector`)."""


class RunStatus(StrEnum):
    REQUESTED = "requested"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class RunParameters(msgspec.Struct, frozen=True, kw_only=True):
    """How the detector runs; ranges are checked at the edge (domain.limits)."""

    confidence: float = DEFAULT_CONFIDENCE
    nms_iou: float = DEFAULT_NMS_IOU
    target_classes: tuple[str, ...] = ()
    """VRU classes kept; empty: every class the model's map names."""
    frame_stride: int = 1
    batch_size: int = 8
    tracking: bool = False
    device: str = "auto"


def device_id_of(run_id: UUID) -> str:
    """The device id a run's frames carry in test-session mode (no `:`, as device ids)."""
    return f"model-{run_id}"


def candidate_id(run_id: UUID, frame_number: int, index: int) -> UUID:
    """The id of the `index`-th candidate annotation a run found on a frame."""
    return fast_uuid5(NAMESPACE_URL, f"verity:candidate:{run_id}:{frame_number}:{index}")


def track_key(run_id: UUID, track_id: int) -> str:
    """An annotation's `detection_id` for a tracker's object: its boxes form one track."""
    return f"run-{str(run_id)[:8]}-{track_id}"


class DetectionRun(VerityAggregate):
    class Requested(VerityAggregate.Created):
        model_id: UUID
        model_name: str
        video_id: UUID
        mode: RunMode
        parameters: RunParameters
        total_frames: int
        session_id: UUID | None = None

    class Started(VerityAggregate.Event):
        worker: str
        resumed_from: int = 0

    class Progressed(VerityAggregate.Event):
        next_frame: int
        frames_done: int
        detections: int
        frames_per_second: float

    class Completed(VerityAggregate.Event):
        frames_done: int
        detections: int

    class Failed(VerityAggregate.Event):
        reason: str
        frame: int | None = None

    class Cancelled(VerityAggregate.Event):
        reason: str = ""

    @event(Requested)
    def __init__(
        self,
        model_id: UUID,
        model_name: str,
        video_id: UUID,
        mode: RunMode,
        parameters: RunParameters,
        total_frames: int,
        session_id: UUID | None = None,
    ) -> None:
        self.model_id = model_id
        self.model_name = model_name
        self.video_id = video_id
        self.mode = mode
        self.parameters = parameters
        self.total_frames = total_frames
        self.session_id = session_id
        self.status = RunStatus.REQUESTED
        self.next_frame = 0
        self.frames_done = 0
        self.detections = 0
        self.reason = ""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def _ensure_open(self, verb: str) -> None:
        if self.finished:
            raise Conflict(f"Cannot {verb} detection run {self.id}: it is {self.status.value}")

    def start(self, worker: str) -> None:
        """A worker takes the run (again, after a crash: from `next_frame`)."""
        self._ensure_open("start")
        self._started(worker=worker, resumed_from=self.next_frame)

    @event(Started)
    def _started(self, worker: str, resumed_from: int) -> None:
        self.status = RunStatus.RUNNING

    def progress(
        self, next_frame: int, frames_done: int, detections: int, frames_per_second: float
    ) -> None:
        self._ensure_open("record progress of")
        self._progressed(
            next_frame=next_frame,
            frames_done=frames_done,
            detections=detections,
            frames_per_second=frames_per_second,
        )

    @event(Progressed)
    def _progressed(
        self, next_frame: int, frames_done: int, detections: int, frames_per_second: float
    ) -> None:
        self.next_frame = next_frame
        self.frames_done = frames_done
        self.detections = detections

    def complete(self, frames_done: int, detections: int) -> None:
        self._ensure_open("complete")
        self._completed(frames_done=frames_done, detections=detections)

    @event(Completed)
    def _completed(self, frames_done: int, detections: int) -> None:
        self.frames_done = frames_done
        self.detections = detections
        self.status = RunStatus.COMPLETED

    def fail(self, reason: str, frame: int | None = None) -> None:
        self._ensure_open("fail")
        self._failed(reason=reason, frame=frame)

    @event(Failed)
    def _failed(self, reason: str, frame: int | None) -> None:
        self.reason = reason
        self.status = RunStatus.FAILED

    def cancel(self, reason: str = "") -> None:
        self._ensure_open("cancel")
        self._cancelled(reason=reason)

    @event(Cancelled)
    def _cancelled(self, reason: str) -> None:
        self.reason = reason
        self.status = RunStatus.CANCELLED
