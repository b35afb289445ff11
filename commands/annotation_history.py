"""An annotation's full history, replayed from the event store.

This is an audit read and deliberately goes to the events themselves, not a read model: the
answer is the stored facts, with nothing in between that could have lost a change.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from commands.application import Verity
from domain.annotations import Annotation, AnnotationState
from domain.errors import NotFound

_DIFF_FIELDS = tuple(f for f in AnnotationState.__struct_fields__ if f not in {"id", "version"})


class FieldChange(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    old: Any
    new: Any


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    event_type: str
    at: datetime
    actor: str
    correlation_id: UUID | None
    changes: tuple[FieldChange, ...]
    state: AnnotationState


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value) if value is not None else None


def diff(before: AnnotationState | None, after: AnnotationState) -> tuple[FieldChange, ...]:
    """Field-level changes from `before` (None: nothing existed) to `after`."""
    out = []
    for field in _DIFF_FIELDS:
        new = getattr(after, field)
        old = getattr(before, field) if before is not None else None
        if before is None or old != new:
            out.append(FieldChange(field=field, old=_plain(old), new=_plain(new)))
    return tuple(out)


def annotation_history(app: Verity, annotation_id: UUID) -> list[HistoryEntry]:
    """Every version, oldest first: when, who, which event, what changed, the state after."""
    events: list[Any] = list(app.events.get(annotation_id))
    if not events or not isinstance(events[0], Annotation.Created):
        raise NotFound("Annotation", annotation_id, "Annotation not found")
    aggregate: Any = None
    before: AnnotationState | None = None
    entries: list[HistoryEntry] = []
    for e in events:
        aggregate = e.mutate(aggregate)
        after: AnnotationState = aggregate.state()
        entries.append(
            HistoryEntry(
                version=e.originator_version,
                event_type=_snake(type(e).__name__),
                at=e.timestamp,
                actor=e.meta.actor,
                correlation_id=e.meta.correlation_id,
                changes=diff(before, after),
                state=after,
            )
        )
        before = after
    return entries


def state_as_of(entries: list[HistoryEntry], at: datetime) -> HistoryEntry | None:
    """The last version stored at or before `at`; None if the annotation did not exist yet."""
    found = None
    for entry in entries:
        if entry.at <= at:
            found = entry
    return found
