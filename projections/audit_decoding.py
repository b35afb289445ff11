"""Stored events and aggregate states as an auditor reads them: plain JSON, camelCase, bounded.

Pure: no SQL. The events come decoded by the application's mapper (upcasters included), so
the audit log shows every event in its current schema, whatever version was stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache
from typing import Any

import msgspec
from eventsourcing.utils import get_topic

from domain.casing import camel_keys, to_camel, to_snake
from domain.catalogue import aggregate_classes
from domain.detections import FRAME_EVENTS, frames_of
from domain.events import VerityAggregate
from domain.limits import MAX_AUDIT_LIST_ITEMS, MAX_AUDIT_PAYLOAD_BYTES

_SKIP = frozenset({"originator_id", "originator_version", "timestamp", "meta", "originator_topic"})
_encoder = msgspec.json.Encoder(decimal_format="string")
_EVENT = VerityAggregate.Event


class AuditEvent(msgspec.Struct, kw_only=True, rename="camel"):
    """One stored event, decoded."""

    position: int
    topic: str
    """The stored event class (`domain.videos:Video.Uploaded`)."""
    aggregate_type: str
    """snake_case, as in NATS subjects and WebSocket messages (`test_session`)."""
    type: str
    """snake_case event name within its aggregate (`metadata_extracted`)."""
    aggregate_id: str
    version: int
    time: str
    actor: str
    correlation_id: str | None
    causation_id: str | None
    payload: dict[str, Any]
    summarised: bool = False
    """True when `payload` is a summary (frame batches, payloads over 64 KiB), not the fields."""


def _plain(value: Any) -> Any:
    return camel_keys(msgspec.to_builtins(value, enc_hook=str))


REDACTED = "[redacted]"


def _is_secret(name: str) -> bool:
    """Credential digests (a device's bcrypt `password_hash`, an API token's `digest`) are
    recorded so a server can check them, and never shown: an offline guess needs only them."""
    return "password" in name or "secret" in name or name == "digest"


def _fields(owner: Any, skip: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    return {
        to_camel(k): REDACTED if _is_secret(k) else _plain(v)
        for k, v in vars(owner).items()
        if k not in skip and not k.startswith("_")
    }


def _frames_summary(event: Any) -> dict[str, Any]:
    frames = frames_of(event)
    seqs = [f.seq for f in frames]
    numbers = [f.frame_number for f in frames if f.frame_number is not None]
    return {
        "sessionId": str(event.session_id),
        "receivedAt": event.received_at.isoformat(),
        "frames": len(frames),
        "detections": sum(len(f.detections) for f in frames),
        "devices": sorted({f.device_id for f in frames}),
        "seqRange": [min(seqs), max(seqs)] if seqs else None,
        "frameNumberRange": [min(numbers), max(numbers)] if numbers else None,
    }


def payload_of(event: Any) -> tuple[dict[str, Any], bool]:
    """The event's own fields as JSON (camelCase), and whether they were summarised.

    Frame events are summarised (frames, detections, devices, seq range): one batch holds
    thousands of boxes, which belong to the detections API. Any other payload over
    MAX_AUDIT_PAYLOAD_BYTES becomes its size, its field names and its SHA-256."""
    if isinstance(event, FRAME_EVENTS):
        return _frames_summary(event), True
    payload = _fields(event, _SKIP)
    encoded = _encoder.encode(payload)
    if len(encoded) <= MAX_AUDIT_PAYLOAD_BYTES:
        return payload, False
    summary = {
        "bytes": len(encoded),
        "fields": sorted(payload),
        "sha256": hashlib.sha256(encoded).hexdigest(),
    }
    return summary, True


def _names(event_class: type[Any]) -> tuple[str, str]:
    aggregate, _, kind = event_class.__qualname__.rpartition(".")
    return to_snake(aggregate.rsplit(".", 1)[-1]), to_snake(kind)


def aggregate_type_of(event: Any) -> str:
    return _names(type(event))[0]


def audit_event(event: Any, position: int) -> AuditEvent:
    aggregate, kind = _names(type(event))
    meta = event.meta
    payload, summarised = payload_of(event)
    return AuditEvent(
        position=position,
        topic=get_topic(type(event)),
        aggregate_type=aggregate,
        type=kind,
        aggregate_id=str(event.originator_id),
        version=event.originator_version,
        time=event.timestamp.isoformat(),
        actor=meta.actor,
        correlation_id=str(meta.correlation_id) if meta.correlation_id else None,
        causation_id=str(meta.causation_id) if meta.causation_id else None,
        payload=payload,
        summarised=summarised,
    )


def _key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


@cache
def aggregate_topics() -> dict[str, tuple[str, ...]]:
    """Every aggregate type (snake_case) with the topics of its event classes: the classes
    the aggregate holds (the library re-creates nested event classes on each aggregate, so
    the aggregate's own attributes are the ones whose topics are stored)."""
    topics: dict[str, tuple[str, ...]] = {}
    for cls in aggregate_classes():
        found = [
            get_topic(value)
            for name, value in vars(cls).items()
            if name != "Event" and isinstance(value, type) and issubclass(value, _EVENT)
        ]
        topics[to_snake(cls.__name__)] = tuple(sorted(found))
    return dict(sorted(topics.items()))


def aggregate_type_named(text: str) -> str | None:
    """`test_session`, `TestSession` or `test-session` -> `test_session`; None if unknown."""
    wanted = _key(text)
    return next((name for name in aggregate_topics() if _key(name) == wanted), None)


def topics_named(text: str) -> tuple[str, ...]:
    """Topics an event-type filter names: a topic, `Video.Uploaded`, `video.uploaded`, or a
    short name alone (`uploaded`, every aggregate's event of that name)."""
    every = [t for topics in aggregate_topics().values() for t in topics]
    if text in every:
        return (text,)
    aggregate, dot, kind = text.rpartition(".")
    found = []
    for topic in every:
        qualname = topic.rpartition(":")[2]
        owner, _, name = qualname.rpartition(".")
        if _key(name) != _key(kind):
            continue
        if not dot or _key(owner) == _key(aggregate):
            found.append(topic)
    return tuple(found)


def aggregate_state(aggregate: VerityAggregate) -> dict[str, Any]:
    """The aggregate's own fields (its public attributes) as JSON with camelCase keys."""
    return _fields(aggregate)


def _digest(value: Any) -> str:
    return hashlib.sha256(_encoder.encode(value)).hexdigest()[:16]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested JSON as {path: leaf}: `box.x`, `models[0].name`. A list longer than
    MAX_AUDIT_LIST_ITEMS is one leaf, `{"items": n, "sha256": ...}`: a changed item still shows
    as a change, without thousands of paths."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        if len(value) > MAX_AUDIT_LIST_ITEMS:
            return {prefix: {"items": len(value), "sha256": _digest(value)}}
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


class FieldChange(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    before: Any
    after: Any
    """None where the path was absent (a field that appeared or went away)."""


def field_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[FieldChange]:
    """Path by path, what differs from `before` (None: nothing existed) to `after`."""
    old = flatten(before) if before is not None else {}
    new = flatten(after)
    paths: Iterable[str] = dict.fromkeys([*old, *new])
    return [
        FieldChange(path=p, before=old.get(p), after=new.get(p))
        for p in paths
        if p not in old or p not in new or old[p] != new[p]
    ]
