"""Request and response shapes of the annotation endpoints (contract A1-A8, 3.4, S1-S3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from domain.annotations import (
    AnnotationChanges,
    AnnotationDraft,
    AnnotationState,
    BoundingBox,
    Source,
)
from domain.errors import InvalidValue
from domain.limits import (
    MAX_COUNT,
    Coordinate,
    Count,
    Fraction,
    FrameNumber,
    Identifier,
    Label,
    OptionalName,
    Seconds,
    Size,
    Text,
)
from domain.vru import vru_type_of
from projections.annotations import AnnotationRow

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class BoxIn(msgspec.Struct, kw_only=True):
    x: Coordinate
    y: Coordinate
    width: Size
    height: Size
    label: OptionalName | None = None
    confidence: Fraction | None = None


class AnnotationIn(msgspec.Struct, kw_only=True):
    """A2 body; the frontend sends it snake_case, camelCase works too."""

    frame_number: FrameNumber
    vru_type: Label
    timestamp: Seconds | None = None
    bounding_box: BoxIn | None = None
    end_timestamp: Seconds | None = None
    detection_id: Identifier | None = None
    occluded: bool = False
    truncated: bool = False
    difficult: bool = False
    notes: Text | None = None
    annotator: OptionalName | None = None
    validated: bool = False
    source: Source = Source.MANUAL
    confidence: Fraction | None = None


class AnnotationPatch(msgspec.Struct, kw_only=True):
    """A3 body: every field optional; `expected_version` guards against lost updates."""

    frame_number: FrameNumber | Unset = UNSET
    vru_type: Label | Unset = UNSET
    timestamp: Seconds | Unset = UNSET
    bounding_box: BoxIn | Unset | None = UNSET
    end_timestamp: Seconds | Unset | None = UNSET
    detection_id: Identifier | Unset | None = UNSET
    occluded: bool | Unset = UNSET
    truncated: bool | Unset = UNSET
    difficult: bool | Unset = UNSET
    notes: Text | Unset | None = UNSET
    annotator: OptionalName | Unset | None = UNSET
    validated: bool | Unset = UNSET
    confidence: Fraction | Unset | None = UNSET
    expected_version: Count | None = None


class ValidateIn(msgspec.Struct, kw_only=True):
    validated: bool | None = None
    expected_version: Count | None = None


class RevertIn(msgspec.Struct, kw_only=True):
    version: Count
    expected_version: Count | None = None


class BoxOut(msgspec.Struct, kw_only=True):
    x: float
    y: float
    width: float
    height: float
    label: str
    confidence: float | None


class AnnotationOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: UUID
    video_id: UUID
    detection_id: str | None
    frame_number: int
    timestamp: float
    end_timestamp: float | None
    vru_type: str
    bounding_box: BoxOut | None
    occluded: bool
    truncated: bool
    difficult: bool
    notes: str | None
    annotator: str | None
    validated: bool
    deleted: bool
    source: str
    confidence: float | None
    keyframe: bool
    version: int
    created_at: datetime | None
    updated_at: datetime | None


def box_out(box: BoundingBox | None, label: str, confidence: float | None) -> BoxOut | None:
    if box is None:
        return None
    return BoxOut(
        x=box.x, y=box.y, width=box.width, height=box.height, label=label, confidence=confidence
    )


def annotation_out(
    state: AnnotationState,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
) -> AnnotationOut:
    return AnnotationOut(
        id=state.id,
        video_id=state.video_id,
        detection_id=state.detection_id,
        frame_number=state.frame_number,
        timestamp=state.timestamp,
        end_timestamp=state.end_timestamp,
        vru_type=state.vru_type,
        bounding_box=box_out(state.box, state.vru_type, state.confidence),
        occluded=state.occluded,
        truncated=state.truncated,
        difficult=state.difficult,
        notes=state.notes,
        annotator=state.annotator,
        validated=state.validated,
        deleted=state.deleted,
        source=state.source,
        confidence=state.confidence,
        keyframe=True,
        version=state.version,
        created_at=created_at,
        updated_at=updated_at,
    )


def tuple_out(r: tuple[Any, ...]) -> AnnotationOut:
    """An AnnotationOut from a row of `projections.annotations.annotation_tuples`."""
    (id_, video_id, version, frame, ts, end, vru, x, y, w, h, occluded, truncated, difficult,
     validated, deleted, source, detection_id, annotator, notes, confidence, created_at,
     updated_at, _created_by) = r  # fmt: skip
    box = (
        None if x is None else BoxOut(x=x, y=y, width=w, height=h, label=vru, confidence=confidence)
    )
    return AnnotationOut(
        id=id_,
        video_id=video_id,
        detection_id=detection_id,
        frame_number=frame,
        timestamp=ts,
        end_timestamp=end,
        vru_type=vru,
        bounding_box=box,
        occluded=occluded,
        truncated=truncated,
        difficult=difficult,
        notes=notes,
        annotator=annotator,
        validated=validated,
        deleted=deleted,
        source=source,
        confidence=confidence,
        keyframe=True,
        version=version,
        created_at=created_at,
        updated_at=updated_at,
    )


def row_out(row: AnnotationRow) -> AnnotationOut:
    return annotation_out(row.state(), row.created_at, row.updated_at)


def _box(box: BoxIn | None) -> BoundingBox | None:
    return None if box is None else BoundingBox(box.x, box.y, box.width, box.height)


def _confidence(explicit: float | None, box: BoxIn | None) -> float | None:
    return explicit if explicit is not None else (box.confidence if box is not None else None)


def draft_of(data: AnnotationIn, fps: float | None) -> AnnotationDraft:
    """The domain draft; a missing timestamp is the frame's time when the fps is known."""
    timestamp = data.timestamp
    if timestamp is None:
        timestamp = data.frame_number / fps if fps and data.frame_number >= 0 else 0.0
    return AnnotationDraft(
        frame_number=data.frame_number,
        timestamp=timestamp,
        vru_type=vru_type_of(data.vru_type),
        box=_box(data.bounding_box),
        end_timestamp=data.end_timestamp,
        occluded=data.occluded,
        truncated=data.truncated,
        difficult=data.difficult,
        validated=data.validated,
        source=data.source,
        detection_id=data.detection_id,
        annotator=data.annotator,
        notes=data.notes,
        confidence=_confidence(data.confidence, data.bounding_box),
    )


_PLAIN_PATCH_FIELDS = (
    "frame_number",
    "timestamp",
    "end_timestamp",
    "detection_id",
    "occluded",
    "truncated",
    "difficult",
    "notes",
    "annotator",
    "confidence",
)


def changes_of(data: AnnotationPatch) -> AnnotationChanges:
    given: dict[str, Any] = {
        f: v for f in _PLAIN_PATCH_FIELDS if (v := getattr(data, f)) is not UNSET
    }
    if not isinstance(data.vru_type, Unset):
        given["vru_type"] = vru_type_of(data.vru_type)
    if not isinstance(data.bounding_box, Unset):
        given["box"] = _box(data.bounding_box)
        if data.bounding_box is not None and data.bounding_box.confidence is not None:
            given.setdefault("confidence", data.bounding_box.confidence)
    return AnnotationChanges(**given)


def version_from(if_match: str | None, expected: int | None) -> tuple[int | None, bool]:
    """(expected version, whether it came from If-Match) — If-Match wins when both are sent."""
    if if_match is None or if_match.strip() == "*":
        return expected, False
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit() and int(tag) <= MAX_COUNT):
        raise InvalidValue(
            "If-Match", f'If-Match: expected an annotation ETag such as "3", got {if_match!r}'
        )
    return int(tag), True


def etag(version: int) -> str:
    return f'"{version}"'


class HistoryChange(msgspec.Struct, kw_only=True, rename="camel"):
    field: str
    old: Any
    new: Any


class HistoryEntryOut(msgspec.Struct, kw_only=True, rename="camel"):
    version: int
    event_type: str
    at: datetime
    actor: str
    correlation_id: UUID | None
    changes: list[HistoryChange]
    state: AnnotationOut


class TrackBoxOut(msgspec.Struct, kw_only=True, rename="camel"):
    frame_number: int
    timestamp: float
    bounding_box: BoxOut | None
    keyframe: bool
    annotation_id: UUID
    vru_type: str
    detection_id: str | None
