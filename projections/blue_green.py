"""Blue-green rebuild of one read model: the live tables keep serving while new ones fill.

1. An advisory lock per read model (any process): a second rebuild of it is refused.
2. A shadow schema `verity_rebuild_<name>` gets every read-model table, empty
   (storage/read_model_schema.py), and the projection's own code fills it from the log up to
   the head it saw at the start (projections/schema_build.py). Meanwhile the live runner keeps
   the live tables current.
3. The tail stored meanwhile is applied to the shadow, in rounds, until it is short.
4. One transaction: it locks the live tracking row (the live runner waits), applies the last
   tail up to the head it then sees, drops the live tables, moves the shadow's into `public`
   and sets the tracking position and failures to the shadow's. Readers see the old tables
   until it commits, then the new ones; never none.

Anything that stops it before that commit (an error, a crash, a kill) leaves the live read
model as it was; the shadow schema is dropped here, or by the next rebuild.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from projections.runner import AnyProjection, NotificationReader
from projections.schema_build import Progress, SchemaBuild, schema_pool
from storage.read_model_schema import (
    create_read_model_schema,
    drop_schema,
    lock_live_tracking,
    swap_in,
    try_rebuild_lock,
)

TAIL_ROUNDS = 5
"""Catch-up rounds on the tail before the swap takes the lock anyway."""


class RebuildBusy(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is being rebuilt already")
        self.name = name


@dataclass(frozen=True)
class Rebuilt:
    name: str
    position: int
    """The live read model's position once swapped in."""
    events: int
    seconds: float
    swap_seconds: float
    """How long the swap held the live tracking row (the live runner waited)."""


def shadow_schema(name: str) -> str:
    return f"verity_rebuild_{name}"


def rebuild_blue_green(
    database_url: str,
    projection: AnyProjection,
    reader: NotificationReader,
    decode: Callable[[Any], Any],
    batch_size: int,
    progress: Callable[[Progress], None] | None = None,
) -> Rebuilt:
    """Rebuild `projection`'s read model without taking it away; RebuildBusy if another
    rebuild of it runs (in this process or any other)."""
    name, shadow = projection.name, shadow_schema(projection.name)
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        if not try_rebuild_lock(conn, name):
            raise RebuildBusy(name)
        try:
            create_read_model_schema(conn, shadow, f"blue-green rebuild of {name} (in progress)")
            with schema_pool(database_url, shadow, 2) as pool:
                build = SchemaBuild([projection], pool, reader, decode, batch_size)
                head = reader.max_notification_id() or 0
                total = build.total(conn, head)
                events = build.fill(head, progress, total)
                for _ in range(TAIL_ROUNDS):
                    head = reader.max_notification_id() or 0
                    if head - build.position <= batch_size:
                        break
                    events += build.run(head)
                with conn.transaction():
                    locked = time.monotonic()
                    lock_live_tracking(conn, name)
                    head = reader.max_notification_id() or 0
                    events += build.run(head)
                    swap_in(conn, shadow, name, projection.tables, build.position)
                    swapped = time.monotonic() - locked
        except BaseException:
            with contextlib.suppress(psycopg.Error):  # connection gone: the next one drops it
                drop_schema(conn, shadow)
            raise
    return Rebuilt(name, build.position, events, time.monotonic() - started, swapped)
