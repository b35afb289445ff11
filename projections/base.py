"""What a projection is: a named read model that turns events into SQL statements."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.utils import get_topic

Statement = tuple[str, Sequence[Any] | dict[str, Any]]
"""One SQL statement and its parameters; consecutive equal statements are batched."""


class Event(Protocol):
    originator_id: UUID
    originator_version: int


class Projection(Protocol):
    name: str
    """Its tracking name; bump the suffix when its tables change shape."""
    event_classes: tuple[type[Any], ...]
    tables: tuple[str, ...]

    def handle(self, event: Any) -> Iterable[Statement]: ...


class HasEvents(Protocol):
    event_classes: tuple[type[Any], ...]


def topics_of(projection: HasEvents) -> list[str]:
    return [get_topic(cls) for cls in projection.event_classes]
