"""The device wire format: one JSON message per frame, as msgspec Structs.

Devices publish to `<prefix>.detections.<sessionId>` with header
`Nats-Msg-Id: <deviceId>:<sessionId>:<seq>`; the HTTP batch form takes the same body.
camelCase is the documented spelling and is decoded by one prebuilt typed decoder; snake_case
(or a mix) falls back to a key-normalising path, so both are accepted. The JSON Schema
(`verity device-schema`) is generated from these Structs.
"""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from domain.casing import to_snake
from domain.detections import Box, Detection
from domain.limits import (
    MAX_IDENTIFIER,
    MAX_LIST,
    Coordinate,
    Fraction,
    FrameNumber,
    Identifier,
    Label,
    Seconds,
    SequenceNumber,
    Size,
)
from domain.vru import VRU_CLASSES, canonical_class

DeviceId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_IDENTIFIER, pattern=r"^[^\x00-\x1f\x7f:]+$")
]
"""An `Identifier` without `:`, which separates the parts of the message id."""
MAX_DETECTIONS = MAX_LIST


class BoxIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    x: Coordinate
    y: Coordinate
    width: Size
    height: Size


class DetectionIn(
    msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True, gc=False
):
    """One object seen in the frame; `box` and `trackId` are optional."""

    class_label: Label
    confidence: Fraction | None = None
    box: BoxIn | None = None
    track_id: Identifier | None = None

    def __post_init__(self) -> None:
        label = canonical_class(self.class_label)
        if label is None:
            msg = f"classLabel {self.class_label!r} is not one of {', '.join(VRU_CLASSES)}"
            raise ValueError(msg)
        self.class_label = str(label)  # the plain name: `.value` costs ~0.5 us a detection

    def to_domain(self) -> Detection:
        b = self.box
        return Detection(
            class_label=self.class_label,
            confidence=self.confidence,
            box=None if b is None else Box(x=b.x, y=b.y, width=b.width, height=b.height),
            track_id=self.track_id,
        )


class FrameMessage(
    msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True, gc=False
):
    """Everything a device detected in one frame of a test session."""

    device_id: DeviceId
    session_id: UUID
    seq: SequenceNumber
    """Increases per device and session; (deviceId, sessionId, seq) identifies the message."""
    timestamp: Seconds
    """Seconds from the start of the video."""
    frame_number: FrameNumber | None = None
    captured_at: datetime | None = None
    """Kept in UTC; a time without an offset is taken to be UTC."""
    model_version: Identifier | None = None
    detections: Annotated[list[DetectionIn], msgspec.Meta(max_length=MAX_DETECTIONS)] = []

    def __post_init__(self) -> None:
        at = self.captured_at
        if at is not None:
            try:  # a naive time would not go into a `timestamptz` read-model column
                self.captured_at = (
                    at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
                )
            except OverflowError:
                msg = f"capturedAt {at.isoformat()} is not a time in UTC's years 1-9999"
                raise ValueError(msg) from None

    @property
    def msg_id(self) -> str:
        return f"{self.device_id}:{self.session_id}:{self.seq}"


class InvalidMessage(Exception):
    """A message that can never be stored: the reason goes to the dead-letter headers."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What msgspec raises for bytes that are not JSON: malformed, not UTF-8 inside a string,
nested deeper than it recurses."""
_decoder = msgspec.json.Decoder(FrameMessage)
_raw = msgspec.json.Decoder()


def _unwrap(tp: Any) -> Any:
    """`X` for `X | None` and `Annotated[X, ...]`."""
    while typing.get_origin(tp) in (typing.Union, types.UnionType, typing.Annotated):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0]
    return tp


def _camel_keys(value: Any, tp: Any) -> Any:
    """Rename snake_case keys to the camelCase wire names of `tp`, recursively by type."""
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct) and isinstance(value, dict):
        info = msgspec.structs.fields(tp)
        by_name = {f.name: f for f in info} | {f.encode_name: f for f in info}
        out: dict[str, Any] = {}
        for key, item in value.items():
            field = by_name.get(key) if isinstance(key, str) else None
            if field is None and isinstance(key, str):
                field = by_name.get(to_snake(key))
            if field is None:
                out[key] = item  # unknown: let the decoder name it
            elif field.encode_name not in out or key == field.encode_name:
                out[field.encode_name] = _camel_keys(item, field.type)
        return out
    if typing.get_origin(tp) is list and isinstance(value, list):
        (inner,) = typing.get_args(tp)
        return [_camel_keys(v, inner) for v in value]
    return value


def decode_frame(data: bytes) -> FrameMessage:
    """The typed message, or InvalidMessage('undecodable' | 'invalid', what is wrong).

    Total: no other exception leaves it, whatever the bytes, so one bad message can never
    hold up the batch it came in. The typed decoder stops at the first value it does not
    expect, before it has seen whether the rest is JSON at all (`1 x`), so the untyped parse
    that follows decides between undecodable and invalid.
    """
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError:
        pass  # maybe snake_case keys, maybe not JSON after all: the untyped parse says which
    except _UNDECODABLE as err:
        raise InvalidMessage("undecodable", str(err)) from None
    try:
        raw = _raw.decode(data)
    except (*_UNDECODABLE, msgspec.ValidationError) as err:  # e.g. a number beyond float
        raise InvalidMessage("undecodable", str(err)) from None
    try:
        return msgspec.convert(_camel_keys(raw, FrameMessage), FrameMessage)
    except msgspec.ValidationError as err:
        raise InvalidMessage("invalid", str(err)) from None


def frame_schema() -> dict[str, Any]:
    """JSON Schema of one frame message, generated from the Structs above."""
    schema: dict[str, Any] = msgspec.json.schema(FrameMessage)
    schema["$comment"] = (
        "Subject <prefix>.detections.<sessionId>; header Nats-Msg-Id ="
        " <deviceId>:<sessionId>:<seq>. snake_case keys are accepted as well."
    )
    return schema
