"""The base every Verity aggregate and event builds on: who did it, and why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
from eventsourcing.domain import Aggregate, CanInitAggregate, CanMutateAggregate

ANONYMOUS = "anonymous"


class EventMeta(msgspec.Struct, frozen=True, kw_only=True):
    """Actor, correlation and causation of an event.

    The correlation id ties together everything one request (or device message) caused;
    the causation id names the direct cause (the command, or the event a worker reacted to).
    """

    actor: str = ANONYMOUS
    correlation_id: UUID | None = None
    causation_id: UUID | None = None


_current_meta: ContextVar[EventMeta] = ContextVar(
    "verity_event_meta",
    default=EventMeta(),  # noqa: B039 - frozen Struct, never mutated
)


def current_meta() -> EventMeta:
    return _current_meta.get()


@contextmanager
def recorded_as(meta: EventMeta) -> Iterator[EventMeta]:
    """Every event triggered inside this block carries `meta`."""
    token = _current_meta.set(meta)
    try:
        yield meta
    finally:
        _current_meta.reset(token)


def event_id(originator_id: UUID, originator_version: int) -> UUID:
    """A stable id for one stored event, derived from its place in its aggregate's history."""
    return uuid5(NAMESPACE_URL, f"verity:event:{originator_id}:{originator_version}")


class VerityAggregate(Aggregate):
    """Aggregate whose every event records `meta` at the moment it is decided, never on replay."""

    class Event(Aggregate.Event):
        meta: EventMeta

    class Created(Event, Aggregate.Created):
        pass

    @classmethod
    def _create(
        cls,
        event_class: type[CanInitAggregate[UUID]],
        *,
        id: UUID | None = None,  # noqa: A002 - the library's parameter name
        **kwargs: Any,
    ) -> Any:
        kwargs.setdefault("meta", current_meta())
        return super()._create(event_class, id=id, **kwargs)

    def trigger_event(self, event_class: type[CanMutateAggregate[UUID]], **kwargs: Any) -> None:
        kwargs.setdefault("meta", current_meta())
        super().trigger_event(event_class, **kwargs)
