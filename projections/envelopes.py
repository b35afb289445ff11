"""A stored event as readers outside the process see it: the relay's self-describing envelope.

Here, on the read side, because it is a view of the notification log (like the projections'
own reading of it) and the innermost layer both the relay (workers/) and the WebSocket fan-out
(api/) import; the evaluator decodes the same Struct. One shape, two variants: the full
envelope with `data`, and a reference — `data` left out, `reference: true` — for an event the
broker will not carry; its reader builds the full one from the store (`stored_envelope`).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec

from commands.application import Verity
from domain.casing import camel_keys, to_camel, to_snake
from domain.catalogue import aggregate_classes
from domain.events import event_id

D = TypeVar("D")
_SKIP = frozenset({"originator_id", "originator_version", "timestamp", "meta", "originator_topic"})
_encoder = msgspec.json.Encoder(decimal_format="number")


class Envelope(msgspec.Struct, Generic[D], kw_only=True, rename="camel", omit_defaults=True):
    """`data` holds the event's fields under camelCase keys; Structs inside it (a batch's
    frames, a frame's detections) keep their stored snake_case spelling."""

    position: int
    """The event's global position in the store."""
    id: str
    aggregate: str
    aggregate_id: str
    version: int
    type: str
    occurred_at: str
    actor: str
    correlation_id: str | None
    causation_id: str | None
    data: D | None = None
    """None on a reference only."""
    reference: bool = False
    truncated: bool = False
    """On a reference: `data` is left out; read the event at `position` from the store."""
    size: int | None = None
    """On a reference: bytes of the full envelope."""
    reason: str | None = None
    """On a reference: why the broker refused the full envelope."""


AnyEnvelope = Envelope[dict[str, Any]]
"""What the WebSocket fan-out reads: any event's data as a document."""


class DetectionData(msgspec.Struct, gc=False):
    """A detection inside a frame event's data (a stored Struct: snake_case keys)."""

    class_label: str
    confidence: float | None = None
    box: tuple[float, float, float, float] | None = None


class FrameData(msgspec.Struct, rename="camel"):
    """The parts of `device_frame.recorded` data that readers use."""

    session_id: UUID
    video_time: float
    frame_number: int | None = None
    detections: list[DetectionData] = msgspec.field(default_factory=list)


class BatchFrame(msgspec.Struct, gc=False):
    """A frame inside `frame_batch.recorded` data (a stored Struct: snake_case keys)."""

    video_time: float
    frame_number: int | None = None
    detections: list[DetectionData] = msgspec.field(default_factory=list)


class BatchData(msgspec.Struct, rename="camel"):
    """The parts of `frame_batch.recorded` data that readers use."""

    session_id: UUID
    frames: list[BatchFrame] = msgspec.field(default_factory=list)


def _is_structs(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and isinstance(value[0], msgspec.Struct)


def _data(state: dict[str, Any]) -> dict[str, Any]:
    """The event's fields with camelCase keys. A tuple of Structs (a batch's frames) is left
    for the encoder: it writes what `to_builtins` would (Decimals as numbers), without
    building thousands of dicts first; its keys keep the Struct's spelling."""
    data: dict[str, Any] = {}
    for key, value in state.items():
        data[to_camel(key)] = (
            value if _is_structs(value) else camel_keys(msgspec.to_builtins(value))
        )
    return data


def aggregate_names() -> list[str]:
    """Every aggregate's subject token ('test_session', 'video', ...), imported or not."""
    return sorted({to_snake(cls.__name__) for cls in aggregate_classes()})


def names_of(event: Any) -> tuple[str, str]:
    """('video', 'metadata_extracted') for Video.MetadataExtracted."""
    aggregate, _, kind = type(event).__qualname__.rpartition(".")
    return to_snake(aggregate.rsplit(".", 1)[-1]), to_snake(kind)


def envelope(event: Any, position: int) -> Envelope[dict[str, Any]]:
    """The envelope of one stored event at its global position."""
    aggregate, kind = names_of(event)
    state = {k: v for k, v in vars(event).items() if k not in _SKIP}
    meta = event.meta
    return Envelope(
        position=position,
        id=str(event_id(event.originator_id, event.originator_version)),
        aggregate=aggregate,
        aggregate_id=str(event.originator_id),
        version=event.originator_version,
        type=kind,
        occurred_at=event.timestamp.isoformat(),
        actor=meta.actor,
        correlation_id=str(meta.correlation_id) if meta.correlation_id else None,
        causation_id=str(meta.causation_id) if meta.causation_id else None,
        data=_data(state),
    )


def reference_of(env: Envelope[Any], size: int, reason: str) -> bytes:
    """`env` without its data, encoded as a reference to the stored event."""
    return encode(
        msgspec.structs.replace(
            env, data=None, reference=True, truncated=True, size=size, reason=reason
        )
    )


def encode(env: Envelope[Any]) -> bytes:
    return _encoder.encode(env)


class NotStored(LookupError):
    """A reference names a position the store does not hold (another store's message)."""


def stored_envelope(app: Verity, position: int) -> bytes:
    """The full envelope of the event stored at `position`, exactly as the relay builds it."""
    found = app.recorder.select_notifications(start=position, limit=1)
    if not found or found[0].id != position:
        msg = f"no stored event at position {position}"
        raise NotStored(msg)
    return encode(envelope(app.mapper.to_domain_event(found[0]), position))


def decoder(data: type[D]) -> msgspec.json.Decoder[Envelope[D]]:
    """A prebuilt decoder of envelopes whose data is read as `data`."""
    return msgspec.json.Decoder(Envelope[data])  # type: ignore[valid-type]
