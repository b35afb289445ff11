"""Annotations: a human (or imported, or detector) box on one frame of a video; the ground truth.

Every change is its own event carrying only the fields that changed, so the history of a box is
complete and attributable. `source` is set once at creation and survives every edit.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.domain import event

from domain.errors import Conflict, InvalidValue, NotFound, check_text
from domain.events import VerityAggregate
from domain.vru import VruType

EDGE_TOLERANCE = 1e-6
"""Pixels a box may overhang the frame by float rounding (normalised formats) before refusal."""


class Source(StrEnum):
    MANUAL = "manual"
    IMPORTED = "imported"
    DETECTOR = "detector"


class BoundingBox(msgspec.Struct, frozen=True):
    """Pixels, top-left origin."""

    x: float
    y: float
    width: float
    height: float


class AnnotationState(msgspec.Struct, frozen=True, kw_only=True):
    """An annotation at one version: what evaluations and exports read."""

    id: UUID
    video_id: UUID
    version: int
    frame_number: int
    timestamp: float
    end_timestamp: float | None
    vru_type: str
    box: BoundingBox | None
    occluded: bool
    truncated: bool
    difficult: bool
    validated: bool
    deleted: bool
    source: str
    detection_id: str | None
    annotator: str | None
    notes: str | None
    confidence: float | None = None


class AnnotationDraft(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a new annotation needs; checked by `check_draft` before it becomes an event."""

    frame_number: int
    timestamp: float
    vru_type: VruType
    box: BoundingBox | None
    end_timestamp: float | None = None
    occluded: bool = False
    truncated: bool = False
    difficult: bool = False
    validated: bool = False
    source: Source = Source.MANUAL
    detection_id: str | None = None
    annotator: str | None = None
    notes: str | None = None
    confidence: float | None = None


class AnnotationChanges(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The fields one event changed; an unset field was not touched.

    `validated` and `deleted` are only set by a revert; edits change them through their own events.
    """

    frame_number: int | msgspec.UnsetType = msgspec.UNSET
    timestamp: float | msgspec.UnsetType = msgspec.UNSET
    end_timestamp: float | msgspec.UnsetType | None = msgspec.UNSET
    vru_type: VruType | msgspec.UnsetType = msgspec.UNSET
    box: BoundingBox | msgspec.UnsetType | None = msgspec.UNSET
    occluded: bool | msgspec.UnsetType = msgspec.UNSET
    truncated: bool | msgspec.UnsetType = msgspec.UNSET
    difficult: bool | msgspec.UnsetType = msgspec.UNSET
    detection_id: str | msgspec.UnsetType | None = msgspec.UNSET
    annotator: str | msgspec.UnsetType | None = msgspec.UNSET
    notes: str | msgspec.UnsetType | None = msgspec.UNSET
    confidence: float | msgspec.UnsetType | None = msgspec.UNSET
    validated: bool | msgspec.UnsetType = msgspec.UNSET
    deleted: bool | msgspec.UnsetType = msgspec.UNSET

    def as_dict(self) -> dict[str, Any]:
        return {
            f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not msgspec.UNSET
        }


FLAG_FIELDS = frozenset({"occluded", "truncated", "difficult"})
EDITABLE_FIELDS = tuple(
    f for f in AnnotationChanges.__struct_fields__ if f not in {"validated", "deleted"}
)


def _finite_non_negative(field: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise InvalidValue(field, f"{field}: must be a finite number >= 0, got {value}")


def check_box(box: BoundingBox, frame_size: tuple[int, int] | None, field: str = "box") -> None:
    """Positive size, non-negative origin, and inside the frame when its size is known."""
    for name in ("x", "y", "width", "height"):
        value = getattr(box, name)
        if not math.isfinite(value):
            raise InvalidValue(f"{field}.{name}", f"{field}.{name}: must be a finite number")
    if box.width <= 0 or box.height <= 0:
        raise InvalidValue(
            f"{field}.width" if box.width <= 0 else f"{field}.height",
            f"{field}: width and height must be > 0, got {box.width}x{box.height}",
        )
    if box.x < -EDGE_TOLERANCE or box.y < -EDGE_TOLERANCE:
        raise InvalidValue(
            f"{field}.x" if box.x < 0 else f"{field}.y",
            f"{field}: x and y must be >= 0, got ({box.x}, {box.y})",
        )
    if frame_size is not None:
        width, height = frame_size
        if box.x + box.width > width + EDGE_TOLERANCE:
            raise InvalidValue(
                f"{field}.width",
                f"{field}: x + width = {box.x + box.width} lies outside the {width}px wide frame",
            )
        if box.y + box.height > height + EDGE_TOLERANCE:
            raise InvalidValue(
                f"{field}.height",
                f"{field}: y + height = {box.y + box.height} lies outside the {height}px high "
                "frame",
            )


def _check_fields(
    values: dict[str, Any], frame_size: tuple[int, int] | None, frame_count: int | None
) -> None:
    if "frame_number" in values and values["frame_number"] < 0:
        raise InvalidValue(
            "frame_number", f"frame_number: must be >= 0, got {values['frame_number']}"
        )
    if frame_count and values.get("frame_number", 0) >= frame_count:
        raise InvalidValue(
            "frame_number",
            f"frame_number: {values['frame_number']} is beyond the video's {frame_count} frames"
            f" (0 to {frame_count - 1})",
        )
    for name in ("timestamp", "end_timestamp"):
        if values.get(name) is not None:
            _finite_non_negative(name, values[name])
    if values.get("box") is not None:
        check_box(values["box"], frame_size)
    confidence = values.get("confidence")
    if confidence is not None and not 0 <= confidence <= 1:
        raise InvalidValue("confidence", f"confidence: must be between 0 and 1, got {confidence}")
    for name in ("detection_id", "annotator", "notes"):
        check_text(name, values.get(name))


def check_draft(
    draft: AnnotationDraft, frame_size: tuple[int, int] | None, frame_count: int | None = None
) -> None:
    """Refuse a bad value, naming its field; the box and frame are checked against the video's
    size and length when those are known."""
    values = {f: getattr(draft, f) for f in draft.__struct_fields__}
    _check_fields(values, frame_size, frame_count)
    if draft.end_timestamp is not None and draft.end_timestamp < draft.timestamp:
        raise InvalidValue(
            "end_timestamp",
            f"end_timestamp: {draft.end_timestamp} is before timestamp {draft.timestamp}",
        )


class Annotation(VerityAggregate):
    """One box on one frame. Events also carry `video_id`, so live updates reach its room."""

    class Created(VerityAggregate.Created):
        """`seconds` is the annotation's time in the video (`timestamp` is the event's own)."""

        video_id: UUID
        frame_number: int
        seconds: float
        vru_type: VruType
        box: BoundingBox | None
        end_timestamp: float | None = None
        occluded: bool = False
        truncated: bool = False
        difficult: bool = False
        validated: bool = False
        source: Source = Source.MANUAL
        detection_id: str | None = None
        annotator: str | None = None
        notes: str | None = None
        confidence: float | None = None

    class BoxMoved(VerityAggregate.Event):
        video_id: UUID
        box: BoundingBox | None

    class ClassChanged(VerityAggregate.Event):
        video_id: UUID
        vru_type: VruType

    class FlagsChanged(VerityAggregate.Event):
        video_id: UUID
        changes: AnnotationChanges

    class Changed(VerityAggregate.Event):
        video_id: UUID
        changes: AnnotationChanges

    class Validated(VerityAggregate.Event):
        video_id: UUID
        validated: bool = True

    class Unvalidated(VerityAggregate.Event):
        video_id: UUID
        validated: bool = False

    class Deleted(VerityAggregate.Event):
        video_id: UUID
        reason: str = ""

    class Restored(VerityAggregate.Event):
        video_id: UUID

    class Reverted(VerityAggregate.Event):
        """The state of `to_version` brought back; `changes` is what that changed."""

        video_id: UUID
        to_version: int
        changes: AnnotationChanges

    @event(Created)
    def __init__(
        self,
        video_id: UUID,
        frame_number: int,
        seconds: float,
        vru_type: VruType,
        box: BoundingBox | None,
        end_timestamp: float | None = None,
        occluded: bool = False,
        truncated: bool = False,
        difficult: bool = False,
        validated: bool = False,
        source: Source = Source.MANUAL,
        detection_id: str | None = None,
        annotator: str | None = None,
        notes: str | None = None,
        confidence: float | None = None,
    ) -> None:
        self.video_id = video_id
        self.frame_number = frame_number
        self.timestamp = seconds
        self.vru_type = vru_type
        self.box = box
        self.end_timestamp = end_timestamp
        self.occluded = occluded
        self.truncated = truncated
        self.difficult = difficult
        self.validated = validated
        self.source = source
        self.detection_id = detection_id
        self.annotator = annotator
        self.notes = notes
        self.confidence = confidence
        self.deleted = False

    @classmethod
    def create(
        cls, video_id: UUID, draft: AnnotationDraft, ident: UUID | None = None
    ) -> Annotation:
        """A new annotation from a draft already checked with `check_draft`."""
        fields = {f: getattr(draft, f) for f in draft.__struct_fields__}
        fields["seconds"] = fields.pop("timestamp")
        annotation: Annotation = cls._create(cls.Created, id=ident, video_id=video_id, **fields)
        return annotation

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        kwargs.setdefault("video_id", self.video_id)
        super().trigger_event(event_class, **kwargs)

    def state(self) -> AnnotationState:
        return AnnotationState(
            id=self.id,
            video_id=self.video_id,
            version=self.version,
            frame_number=self.frame_number,
            timestamp=self.timestamp,
            end_timestamp=self.end_timestamp,
            vru_type=self.vru_type.value,
            box=self.box,
            occluded=self.occluded,
            truncated=self.truncated,
            difficult=self.difficult,
            validated=self.validated,
            deleted=self.deleted,
            source=self.source.value,
            detection_id=self.detection_id,
            annotator=self.annotator,
            notes=self.notes,
            confidence=self.confidence,
        )

    def ensure_exists(self) -> None:
        if self.deleted:
            raise NotFound("Annotation", self.id, f"Annotation {self.id} was deleted")

    def update(
        self,
        requested: AnnotationChanges,
        frame_size: tuple[int, int] | None,
        frame_count: int | None = None,
    ) -> bool:
        """Record only the fields whose value really changes; returns whether anything did."""
        self.ensure_exists()
        asked = requested.as_dict()
        if "validated" in asked or "deleted" in asked:
            raise InvalidValue("changes", "validated and deleted change through their own actions")
        _check_fields(asked, frame_size, frame_count)
        changed = {k: v for k, v in asked.items() if getattr(self, k) != v}
        end = changed.get("end_timestamp", self.end_timestamp)
        start = changed.get("timestamp", self.timestamp)
        if end is not None and end < start:
            raise InvalidValue("end_timestamp", f"end_timestamp: {end} is before timestamp {start}")
        if not changed:
            return False
        keys = set(changed)
        if keys == {"box"}:
            self._box_moved(box=changed["box"])
        elif keys == {"vru_type"}:
            self._class_changed(vru_type=changed["vru_type"])
        elif keys <= FLAG_FIELDS:
            self._flags_changed(changes=AnnotationChanges(**changed))
        else:
            self._changed(changes=AnnotationChanges(**changed))
        return True

    @event(BoxMoved)
    def _box_moved(self, box: BoundingBox | None) -> None:
        self.box = box

    @event(ClassChanged)
    def _class_changed(self, vru_type: VruType) -> None:
        self.vru_type = vru_type

    @event(FlagsChanged)
    def _flags_changed(self, changes: AnnotationChanges) -> None:
        self._apply(changes)

    @event(Changed)
    def _changed(self, changes: AnnotationChanges) -> None:
        self._apply(changes)

    def _apply(self, changes: AnnotationChanges) -> None:
        for field, value in changes.as_dict().items():
            setattr(self, field, value)

    def validate(self, validated: bool) -> bool:
        """Set the validated flag; returns whether it changed."""
        self.ensure_exists()
        if self.validated == validated:
            return False
        if validated:
            self._validated()
        else:
            self._unvalidated()
        return True

    @event(Validated)
    def _validated(self) -> None:
        self.validated = True

    @event(Unvalidated)
    def _unvalidated(self) -> None:
        self.validated = False

    def delete(self, reason: str = "") -> None:
        """Soft delete: the annotation leaves every read of current state; history keeps it."""
        self.ensure_exists()
        self._deleted(reason=reason)

    @event(Deleted)
    def _deleted(self, reason: str) -> None:
        self.deleted = True

    def restore(self) -> None:
        if not self.deleted:
            raise Conflict(f"Annotation {self.id} is not deleted")
        self._restored()

    @event(Restored)
    def _restored(self) -> None:
        self.deleted = False

    def revert_to(self, past: AnnotationState) -> None:
        """Bring back the state of an earlier version as a new event; history is kept."""
        if not 1 <= past.version <= self.version:
            raise InvalidValue(
                "version", f"version: must be between 1 and {self.version}, got {past.version}"
            )
        current = self.state()
        changed: dict[str, Any] = {}
        for field in (*EDITABLE_FIELDS, "validated", "deleted"):
            value = getattr(past, field)
            if field == "vru_type":
                value = VruType(value)
            if getattr(current, field) != value:
                changed[field] = value
        self._reverted(to_version=past.version, changes=AnnotationChanges(**changed))

    @event(Reverted)
    def _reverted(self, to_version: int, changes: AnnotationChanges) -> None:
        self._apply(changes)
