"""The one event-sourced Application: one events table, one global order for the product."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper

from commands.codec import MsgspecMapper
from domain.errors import ConcurrentModification, NotFound
from domain.events import VerityAggregate

Position = int
"""A global position in the event store (the notification id of an event)."""

A = TypeVar("A", bound=VerityAggregate)


class Verity(Application[UUID]):
    name = "Verity"

    def construct_mapper(self) -> Mapper[UUID]:
        return MsgspecMapper()

    def load(self, cls: type[A], ident: UUID, kind: str | None = None) -> A:
        """The aggregate, or NotFound naming `kind` when there is none of that type."""
        kind = kind or cls.__name__
        try:
            aggregate: Any = self.repository.get(ident)
        except AggregateNotFoundError:
            raise NotFound(kind, ident) from None
        if not isinstance(aggregate, cls):
            raise NotFound(kind, ident)
        return aggregate

    def exists(self, ident: UUID) -> bool:
        return ident in self.repository

    def commit(self, *aggregates: VerityAggregate) -> Position | None:
        """Store all pending events of `aggregates` atomically; the last event's position.

        None when nothing was pending (the command changed nothing).
        """
        try:
            recordings = self.save(*aggregates)
        except IntegrityError:
            first = aggregates[0]
            raise ConcurrentModification(type(first).__name__, first.id) from None
        if not recordings:
            return None
        return max(r.notification.id for r in recordings)

    def head(self) -> Position:
        return self.recorder.max_notification_id() or 0
