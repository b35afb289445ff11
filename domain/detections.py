"""What a device saw in one frame of a test session, stored once per (device, session, seq).

Each frame message becomes one tiny aggregate whose id is derived from
`<deviceId>:<sessionId>:<seq>`. The event store's primary key then makes a repeat of the same
message impossible to store twice, however late it arrives and whichever worker takes it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
from eventsourcing.domain import event

from domain.events import VerityAggregate

VRU_CLASSES = (
    "pedestrian",
    "cyclist",
    "motorcyclist",
    "wheelchair_user",
    "scooter_rider",
    "animal",
    "other",
)
_ALIASES = {"wheelchair": "wheelchair_user", "scooter": "scooter_rider"}


def canonical_class(label: str) -> str | None:
    """The canonical VRU class for `label` (aliases accepted), or None if it is not one."""
    value = label.strip().lower()
    value = _ALIASES.get(value, value)
    return value if value in VRU_CLASSES else None


def frame_id(device_id: str, session_id: UUID, seq: int) -> UUID:
    """The one id a frame message can ever be stored under."""
    return uuid5(NAMESPACE_URL, f"verity:frame:{device_id}:{session_id}:{seq}")


class Box(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """(x, y, width, height) in pixels, top-left origin; stored compactly as an array."""

    x: float
    y: float
    width: float
    height: float


class Detection(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
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


def detection_id(frame: UUID, index: int) -> UUID:
    """The id of the `index`-th object of a stored frame (stable across rebuilds)."""
    return uuid5(frame, str(index))
