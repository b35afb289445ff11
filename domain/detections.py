"""What a device saw in the frames of a test session, stored once per (device, session, seq).

Every frame has one id, derived from `<deviceId>:<sessionId>:<seq>`. The ingest stores the
frames of one session that arrived together as ONE `FrameBatch.Recorded` event (up to
`MAX_FRAMES_PER_EVENT`), and claims each frame's id in the `frame_receipts` table in the same
transaction, so a repeat of a message is never stored twice, however late it arrives and
whichever worker takes it. One event per frame (`DeviceFrame`) cost about 400 us of Python per
frame across store, relay and read models; one per batch shares that cost across the batch.
`DeviceFrame` stays registered: events stored before batching load and project as before.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, SafeUUID

import msgspec
from eventsourcing.domain import event

from domain.events import VerityAggregate

MAX_FRAMES_PER_EVENT = 200
"""About 125 kB of JSON at 5 detections a frame: well inside NATS's 1 MB message limit when the
relay publishes the event."""

_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_5 = (5 << 76) | (0x8000 << 48)


def fast_uuid5(namespace: UUID, name: str) -> UUID:
    """`uuid.uuid5(namespace, name)`, equal bit for bit, at a quarter of the cost.

    The standard constructor validates its arguments in Python; on the ingest path it is called
    for every frame and object, so the checks (always true here) are skipped.
    """
    digest = hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest()
    value = (int.from_bytes(digest[:16]) & _VERSION_MASK) | _VERSION_5
    made = object.__new__(UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", SafeUUID.unknown)
    return made


def frame_id(device_id: str, session_id: UUID | str, seq: int) -> UUID:
    """The one id a frame message can ever be stored under."""
    return fast_uuid5(NAMESPACE_URL, f"verity:frame:{device_id}:{session_id}:{seq}")


class Box(msgspec.Struct, frozen=True, kw_only=True, array_like=True, gc=False):
    """(x, y, width, height) in pixels, top-left origin; stored compactly as an array."""

    x: float
    y: float
    width: float
    height: float


class BoxLike(Protocol):
    """A box as the wire or the store holds it."""

    @property
    def x(self) -> float: ...
    @property
    def y(self) -> float: ...
    @property
    def width(self) -> float: ...
    @property
    def height(self) -> float: ...


def box_outside_frame(box: BoxLike, width: int, height: int) -> str | None:
    """Why `box` shares no point with a `width` x `height` frame, or None if it does.

    A box may reach past an edge (an object the frame cuts, a detector that does not clip);
    one wholly beside the frame is not something seen in this video.
    """
    if box.x > width or box.x + box.width < 0:
        return f"spans x {box.x:g} to {box.x + box.width:g}, outside the video's width {width}"
    if box.y > height or box.y + box.height < 0:
        return f"spans y {box.y:g} to {box.y + box.height:g}, outside the video's height {height}"
    return None


class Detection(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    class_label: str
    confidence: float | None = None
    box: Box | None = None
    track_id: str | None = None


class DeviceFrame(VerityAggregate):
    """One frame's detections as reported by a device (or posted over HTTP)."""

    class Recorded(VerityAggregate.Created):
        session_id: UUID
        device_id: str
        seq: int
        video_time: float
        """Seconds from the start of the video (the wire format's `timestamp`)."""
        received_at: datetime
        detections: tuple[Detection, ...] = ()
        frame_number: int | None = None
        captured_at: datetime | None = None
        model_version: str | None = None

    @event(Recorded)
    def __init__(
        self,
        session_id: UUID,
        device_id: str,
        seq: int,
        video_time: float,
        received_at: datetime,
        detections: tuple[Detection, ...] = (),
        frame_number: int | None = None,
        captured_at: datetime | None = None,
        model_version: str | None = None,
    ) -> None:
        self.session_id = session_id
        self.device_id = device_id
        self.seq = seq
        self.video_time = video_time
        self.received_at = received_at
        self.detections = detections
        self.frame_number = frame_number
        self.captured_at = captured_at
        self.model_version = model_version


class RecordedFrame(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One frame inside a `FrameBatch.Recorded` event."""

    id: UUID
    """`frame_id(device_id, session_id, seq)`, or a fresh id for an HTTP single detection."""
    device_id: str
    seq: int
    video_time: float
    """Seconds from the start of the video (the wire format's `timestamp`)."""
    detections: tuple[Detection, ...] = ()
    frame_number: int | None = None
    captured_at: datetime | None = None
    model_version: str | None = None


class FrameBatch(VerityAggregate):
    """Frames of one session stored by one ingest transaction; never changed afterwards."""

    class Recorded(VerityAggregate.Created):
        session_id: UUID
        received_at: datetime
        frames: tuple[RecordedFrame, ...] = ()

    @event(Recorded)
    def __init__(
        self, session_id: UUID, received_at: datetime, frames: tuple[RecordedFrame, ...] = ()
    ) -> None:
        self.session_id = session_id
        self.received_at = received_at
        self.frames = frames


FRAME_EVENTS: tuple[type[Any], ...] = (DeviceFrame.Recorded, FrameBatch.Recorded)
"""Every event type that carries frames, old and new."""


def frames_of(event: Any) -> tuple[RecordedFrame, ...]:
    """The frames an event carries, whether one per event (before batching) or a batch."""
    if isinstance(event, FrameBatch.Recorded):
        return event.frames
    return (
        RecordedFrame(
            id=event.originator_id,
            device_id=event.device_id,
            seq=event.seq,
            video_time=event.video_time,
            detections=event.detections,
            frame_number=event.frame_number,
            captured_at=event.captured_at,
            model_version=event.model_version,
        ),
    )


def detection_id(frame: UUID, index: int) -> UUID:
    """The id of the `index`-th object of a stored frame (stable across rebuilds)."""
    return fast_uuid5(frame, str(index))
