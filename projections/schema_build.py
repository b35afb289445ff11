"""The one primitive behind blue-green rebuilds and `verity replay`: run the projections' own
code into another schema, reading the log up to a position.

A pool whose connections have `search_path` set to that schema (and nothing else) makes every
unqualified table name in the projections, the runner, the tracking and the failure list land
there; the log is read through the caller's reader (the event store stays in `public`). With
no `public` on the path, a table missing from the schema is an error, never a silent write
into the live read models.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

from projections.base import topics_of
from projections.notifications import event_count
from projections.runner import AnyProjection, NotificationReader, ProjectionRunner
from projections.shared_decoding import shared_for
from storage.read_model_schema import check_schema_name

SHARED_PAGES = 2
"""Pages of decoded events kept for the other read models of a build (those of the same
events read the same pages at about the same pace). A page holds at most 16 MB of stored
events (projections/notifications.py)."""

PROGRESS_INTERVAL = 0.25
"""Seconds between progress reports (each may become a WebSocket message)."""


def schema_pool(database_url: str, schema: str, size: int) -> ConnectionPool[Any]:
    """Connections that see only `schema` (and the system catalogs)."""
    options = f"-c search_path={check_schema_name(schema)}"
    return ConnectionPool(
        database_url, min_size=1, max_size=size, kwargs={"options": options}, open=True
    )


@dataclass(frozen=True)
class Progress:
    processed: int
    """Events applied (or recorded as failures) so far."""
    total: int
    """Events of these read models' types up to the target position."""
    position: int
    """The least position every read model of the build has reached."""
    until: int
    elapsed: float

    @property
    def events_per_second(self) -> float:
        return self.processed / self.elapsed if self.elapsed > 0 else 0.0


class SchemaBuild:
    """The given projections, written into `pool`'s schema, read from `reader`."""

    def __init__(
        self,
        projections: Sequence[AnyProjection],
        pool: ConnectionPool[Any],
        reader: NotificationReader,
        decode: Callable[[Any], Any],
        batch_size: int,
    ) -> None:
        self.pool = pool
        self.reader = reader
        readers = Counter(t for p in projections for t in set(topics_of(p)))
        common = {t for t, n in readers.items() if n > 1}
        if common:  # read models of the same events decode each one once
            decode = shared_for(common, decode, capacity=SHARED_PAGES * batch_size)
        self.runners = [ProjectionRunner(p, pool, reader, decode, batch_size) for p in projections]
        self._processed = 0
        self._lock = threading.Lock()

    @property
    def position(self) -> int:
        return min((r.position for r in self.runners), default=0)

    def total(self, log: Connection[Any], until: int) -> int:
        """Events of these read models' types up to `until`, counted on `log` (a connection
        that sees the event store; this build's own pool does not)."""
        return event_count(log, sorted({t for r in self.runners for t in r.topics}), until)

    def run(
        self,
        until: int,
        progress: Callable[[Progress], None] | None = None,
        total: int = 0,
    ) -> int:
        """Bring every read model to `until`, side by side (one's round trips overlap another's
        Python work); returns the events applied. `progress` is called every
        PROGRESS_INTERVAL and at the end; an exception it raises stops the build."""
        started = time.monotonic()
        reported = 0.0

        def step(applied: int) -> None:
            nonlocal reported
            with self._lock:
                self._processed += applied
                now = time.monotonic()
                due = progress is not None and now - reported >= PROGRESS_INTERVAL
                if due:
                    reported = now
            if due and progress is not None:
                progress(self.progress(total, until, now - started))

        with ThreadPoolExecutor(max(1, min(len(self.runners), 4)), "schema-build") as threads:
            applied: int = sum(threads.map(lambda r: r.catch_up(until, step), self.runners))
        if progress is not None:
            progress(self.progress(total, until, time.monotonic() - started))
        return applied

    def progress(self, total: int, until: int, elapsed: float) -> Progress:
        processed = self._processed
        return Progress(processed, max(total, processed), self.position, until, elapsed)
