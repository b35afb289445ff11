"""Running a command handler on behalf of someone, for some reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from commands.application import Verity
from domain.events import EventMeta, recorded_as

C = TypeVar("C")
R = TypeVar("R")


def run_as(meta: EventMeta, handler: Callable[[C, Verity], R], cmd: C, app: Verity) -> R:
    """Call `handler(cmd, app)` so that every event it triggers records `meta`."""
    with recorded_as(meta):
        return handler(cmd, app)
