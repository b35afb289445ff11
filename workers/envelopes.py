"""How a stored event looks on NATS: subject, dedup header and a self-describing envelope."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import msgspec

from domain.catalogue import aggregate_classes
from domain.events import event_id

_SKIP = frozenset({"originator_id", "originator_version", "timestamp", "meta", "originator_topic"})
_CAMEL = re.compile(r"_([a-z0-9])")
_encoder = msgspec.json.Encoder(decimal_format="number")
MSG_ID = "Nats-Msg-Id"


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {camel(k): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def _is_structs(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and isinstance(value[0], msgspec.Struct)


def _data(state: dict[str, Any]) -> dict[str, Any]:
    """The event's fields with camelCase keys. A tuple of Structs (a batch's frames) is left
    for the encoder: it writes what `to_builtins` would (Decimals as numbers), without
    building thousands of dicts first; its keys keep the Struct's spelling, as before."""
    structs = {k: v for k, v in state.items() if _is_structs(v)}
    data: dict[str, Any] = camel_keys(
        msgspec.to_builtins({k: v for k, v in state.items() if k not in structs})
    )
    for key, value in structs.items():
        data[camel(key)] = value
    return data


def aggregate_names() -> list[str]:
    """Every aggregate's subject token ('test_session', 'video', ...), imported or not."""
    return sorted({snake(cls.__name__) for cls in aggregate_classes()})


def names_of(event: Any) -> tuple[str, str]:
    """('video', 'metadata_extracted') for Video.MetadataExtracted."""
    aggregate, _, kind = type(event).__qualname__.rpartition(".")
    return snake(aggregate.rsplit(".", 1)[-1]), snake(kind)


class Envelope(msgspec.Struct, kw_only=True, rename="camel"):
    position: int
    id: str
    aggregate: str
    aggregate_id: str
    version: int
    type: str
    occurred_at: str
    actor: str
    correlation_id: str | None
    causation_id: str | None
    data: dict[str, Any]


def envelope(event: Any, position: int) -> Envelope:
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


def encode(env: Envelope) -> bytes:
    return _encoder.encode(env)


def subject_of(env: Envelope, subject_prefix: str) -> str:
    return f"{subject_prefix}.{env.aggregate}.{env.type}"


def msg_id(store: UUID, position: int) -> str:
    """Unique per store, not just per position: two databases on one NATS (staging and a test
    database, a fresh one after a reset) must not drop each other's events as duplicates."""
    return f"{store}:{position}"


def envelope_of(
    event: Any, position: int, subject_prefix: str, store: UUID
) -> tuple[str, dict[str, str], bytes]:
    """(subject, headers, payload) for one stored event."""
    env = envelope(event, position)
    return subject_of(env, subject_prefix), {MSG_ID: msg_id(store, position)}, encode(env)
