"""Verity JSON: every field an annotation has (also reads the original backend's json export)."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.annotations import AnnotationDraft, AnnotationState, BoundingBox, Source
from domain.errors import InvalidValue
from formats.common import (
    FormatError,
    Location,
    Parsed,
    VideoInfo,
    checked,
    class_of,
    expand,
    seconds_of,
)
from formats.documents import decode_json

MEDIA_TYPE = "application/json"
EXTENSION = "json"


class BoxRow(msgspec.Struct, kw_only=True):
    x: float
    y: float
    width: float
    height: float
    confidence: float | None = None


class JsonRow(msgspec.Struct, kw_only=True):
    frame_number: int
    vru_type: str
    timestamp: float | None = None
    end_timestamp: float | None = None
    bounding_box: BoxRow | None = None
    occluded: bool = False
    truncated: bool = False
    difficult: bool = False
    validated: bool = False
    source: Source = Source.IMPORTED
    detection_id: str | None = None
    annotator: str | None = None
    notes: str | None = None
    confidence: float | None = None


class JsonOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=False):
    frame_number: int
    timestamp: float
    end_timestamp: float | None
    vru_type: str
    bounding_box: dict[str, float] | None
    occluded: bool
    truncated: bool
    difficult: bool
    validated: bool
    source: str
    detection_id: str | None
    annotator: str | None
    notes: str | None
    confidence: float | None
    keyframe: bool


_encoder = msgspec.json.Encoder()
_ROW_KEYS = {
    **{
        f.encode_name: f.name
        for f in msgspec.structs.fields(JsonOut)
        if f.name in JsonRow.__struct_fields__
    },
    **{name: name for name in JsonRow.__struct_fields__},
}
"""A row's keys in either spelling (camelCase as exported, snake_case as the original backend
wrote) -> JsonRow's field names; the camel names are msgspec's own renaming of JsonOut."""


def _row_fields(value: dict[Any, Any]) -> dict[str, Any]:
    """The row's known fields by JsonRow's names; a snake_case key wins over its camel twin."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _ROW_KEYS.get(key)
        if name is not None and (name not in out or key == name):
            out[name] = item
    return out


def export(states: list[AnnotationState], video: VideoInfo, interpolate: bool) -> bytes:
    rows = [
        JsonOut(
            frame_number=s.frame_number,
            timestamp=s.timestamp,
            end_timestamp=s.end_timestamp,
            vru_type=s.vru_type,
            bounding_box=None if s.box is None else msgspec.structs.asdict(s.box),
            occluded=s.occluded,
            truncated=s.truncated,
            difficult=s.difficult,
            validated=s.validated,
            source=s.source,
            detection_id=s.detection_id,
            annotator=s.annotator,
            notes=s.notes,
            confidence=s.confidence,
            keyframe=keyframe,
        )
        for s, keyframe in expand(states, interpolate)
    ]
    document = {
        "format": "verity-annotations",
        "version": 1,
        "video": {
            "width": video.width,
            "height": video.height,
            "fps": video.fps,
        },
        "annotations": rows,
    }
    return msgspec.json.format(_encoder.encode(document), indent=1)


def _row(value: Any, video: VideoInfo) -> AnnotationDraft:
    if not isinstance(value, dict):
        raise InvalidValue("row", "row: expected a JSON object")
    try:
        row = msgspec.convert(_row_fields(value), JsonRow)
    except msgspec.ValidationError as err:
        text = str(err)
        field = text.rsplit("`$.", 1)[-1].rstrip("`") if "`$." in text else "row"
        if text.startswith("Object missing required field"):
            field = text.split("`")[1]
        raise InvalidValue(field, f"{field}: {text.split(' - at ', maxsplit=1)[0]}") from None
    b = row.bounding_box
    return checked(
        AnnotationDraft(
            frame_number=row.frame_number,
            timestamp=row.timestamp
            if row.timestamp is not None
            else seconds_of(row.frame_number, video),
            vru_type=class_of(row.vru_type),
            box=None if b is None else BoundingBox(b.x, b.y, b.width, b.height),
            end_timestamp=row.end_timestamp,
            occluded=row.occluded,
            truncated=row.truncated,
            difficult=row.difficult,
            validated=row.validated,
            source=row.source,
            detection_id=row.detection_id,
            annotator=row.annotator,
            notes=row.notes,
            confidence=row.confidence
            if row.confidence is not None
            else (b.confidence if b else None),
        ),
        video,
    )


def parse(data: bytes, video: VideoInfo) -> Parsed:
    document = decode_json(data)
    rows = document.get("annotations") if isinstance(document, dict) else document
    if not isinstance(rows, list):
        raise FormatError('file: expected a list of annotations or {"annotations": [...]}')
    parsed = Parsed()
    for i, value in enumerate(rows):
        parsed.add(Location(row=i), lambda value=value: _row(value, video))
    return parsed
