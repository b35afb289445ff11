"""The device wire format: one JSON message per frame, as msgspec Structs.

Devices publish to `<prefix>.detections.<sessionId>` with header
`Nats-Msg-Id: <deviceId>:<sessionId>:<seq>`; the HTTP batch form takes the same body.
camelCase is the documented spelling and is decoded by one prebuilt typed decoder; snake_case
(or a mix) falls back to a key-normalising path, so both are accepted. The JSON Schema
(`verity device-schema`) is generated from these Structs.
"""

from __future__ import annotations

import re
import types
import typing
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from domain.detections import VRU_CLASSES, Box, Detection, canonical_class

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Confidence = Annotated[float, msgspec.Meta(ge=0, le=1)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\x00:]+$")]
MAX_DETECTIONS = 1000

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])([A-Z])")


class BoxIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    x: float
    y: float
    width: NonNegative
    height: NonNegative


class DetectionIn(
    msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True, gc=False
):
    """One object seen in the frame; `box` and `trackId` are optional."""

    class_label: Label
    confidence: Confidence | None = None
    box: BoxIn | None = None
    track_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None

    def __post_init__(self) -> None:
        label = canonical_class(self.class_label)
        if label is None:
            msg = f"classLabel {self.class_label!r} is not one of {', '.join(VRU_CLASSES)}"
            raise ValueError(msg)
        self.class_label = label

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
    seq: Annotated[int, msgspec.Meta(ge=0)]
    """Increases per device and session; (deviceId, sessionId, seq) identifies the message."""
    timestamp: NonNegative
    """Seconds from the start of the video."""
    frame_number: Annotated[int, msgspec.Meta(ge=0)] | None = None
    captured_at: datetime | None = None
    model_version: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    detections: Annotated[list[DetectionIn], msgspec.Meta(max_length=MAX_DETECTIONS)] = []

    @property
    def msg_id(self) -> str:
        return f"{self.device_id}:{self.session_id}:{self.seq}"


class InvalidMessage(Exception):
    """A message that can never be stored: the reason goes to the dead-letter headers."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
                field = by_name.get(_CAMEL_BOUNDARY.sub(lambda m: "_" + m.group(1).lower(), key))
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
    """The typed message, or InvalidMessage('undecodable' | 'invalid', what is wrong)."""
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError:
        raw = _raw.decode(data)  # it parsed as JSON a moment ago
        try:
            return msgspec.convert(_camel_keys(raw, FrameMessage), FrameMessage)
        except msgspec.ValidationError as err:
            raise InvalidMessage("invalid", str(err)) from None
    except msgspec.DecodeError as err:
        raise InvalidMessage("undecodable", str(err)) from None


def frame_schema() -> dict[str, Any]:
    """JSON Schema of one frame message, generated from the Structs above."""
    schema: dict[str, Any] = msgspec.json.schema(FrameMessage)
    schema["$comment"] = (
        "Subject <prefix>.detections.<sessionId>; header Nats-Msg-Id ="
        " <deviceId>:<sessionId>:<seq>. snake_case keys are accepted as well."
    )
    return schema
