"""The one primitive behind blue-green rebuilds and `verity replay`: run the projections' own
code into another schema, reading the log up to a position.

A pool whose connections have `search_path` set to that schema (and nothing else) makes every
unqualified table name in the projections, the runner, the tracking and the failure list land
there; the log is read through the caller's reader (the event store stays in `public`). With
no `public` on the path, a table missing from the schema is an error, never a silent write
into the live read models.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import Connection
from psycopg_pool import ConnectionPool

from projections.base import topics_of
from projections.gc_pause import fewer_collections
from projections.notifications import event_count
from projections.runner import AnyProjection, NotificationReader, ProjectionRunner, decoded
from storage.read_model_schema import check_schema_name, defer_indexes, restore_index

log = logging.getLogger(__name__)

WRITERS = 4
"""Read models writing the same page at once (each on its own connection of the pool)."""

Page = tuple[list[list[tuple[Any, Any]]], int]
"""Per read model of the build, its (stored notification, decoded event or Undecodable)
pairs of the page; and the position the page reaches."""

PROGRESS_INTERVAL = 0.25
"""Seconds between progress reports (each may become a WebSocket message)."""


def schema_pool(database_url: str, schema: str, size: int) -> ConnectionPool[Any]:
    """Connections that see only `schema` (and the system catalogs).

    Their commits do not wait for the WAL to reach the disk (`synchronous_commit = off`): a
    build can be redone from the log, and nothing reads its schema as the truth before a
    commit that does wait (a blue-green swap, the comment that ends a replay), which makes
    every earlier commit durable with it. A crash before that loses at most the last moment's
    batches, with their tracking rows, never the order."""
    options = f"-c search_path={check_schema_name(schema)} -c synchronous_commit=off"
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
    """The given projections, written into `pool`'s schema, read from `reader`.

    The log is read once for all of them: one query per page for every topic any of them
    takes, each event decoded once, and the page handed to every read model that takes some
    of its events, side by side (one's round trips overlap another's Python work), while the
    next page is read and decoded. (One reader per read model scanned the whole log once each,
    and decoded frame batches twice whenever two readers drifted apart.)"""

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
        self.decode = decode
        self.batch_size = batch_size
        self.runners = [ProjectionRunner(p, pool, reader, decode, batch_size) for p in projections]
        self.topics = sorted({t for p in projections for t in topics_of(p)})
        self._takers: dict[str, list[int]] = {t: [] for t in self.topics}
        """Which read models (by index in `runners`) take each topic."""
        for i, runner in enumerate(self.runners):
            for topic in runner.topic_set:
                self._takers[topic].append(i)
        self._processed = 0
        self._lock = threading.Lock()

    @property
    def position(self) -> int:
        return min((r.position for r in self.runners), default=0)

    def total(self, log: Connection[Any], until: int) -> int:
        """Events of these read models' types up to `until`, counted on `log` (a connection
        that sees the event store; this build's own pool does not)."""
        return event_count(log, self.topics, until)

    def run(
        self,
        until: int,
        progress: Callable[[Progress], None] | None = None,
        total: int = 0,
    ) -> int:
        """Bring every read model to `until`; returns the events applied. `progress` is called
        every PROGRESS_INTERVAL and at the end; an exception it raises stops the build."""
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

        with fewer_collections():
            applied = self._pages(until, step)
        for runner in self.runners:
            runner.skip_to(until)
        if progress is not None:
            progress(self.progress(total, until, time.monotonic() - started))
        return applied

    def fill(
        self,
        until: int,
        progress: Callable[[Progress], None] | None = None,
        total: int = 0,
    ) -> int:
        """`run` into a schema made empty for this build: the indexes that only serve reads,
        and the primary keys of tables only ever appended to, are built once the events are in
        (storage/read_model_schema.py). A key that cannot be built (the log holds a row twice:
        the live runner records the second as a failure) has its read model rebuilt the
        ordinary way, key first, so the result is the live runner's."""
        if self.position > 0:
            return self.run(until, progress, total)
        tables = [t for r in self.runners for t in r.projection.tables]
        appended = {t for r in self.runners for t in getattr(r.projection, "appended", ())}
        with self.pool.connection() as conn:
            deferred = defer_indexes(conn, tables, appended)
        applied = self.run(until, progress, total)
        for index in deferred:
            try:
                with self.pool.connection() as conn, conn.transaction():
                    restore_index(conn, index)
            except psycopg.errors.UniqueViolation as exc:
                runner = next(r for r in self.runners if index.table in r.projection.tables)
                log.warning("%s: %s; rebuilding it with the key in place", runner.name, exc)
                runner.reset()
                with self.pool.connection() as conn, conn.transaction():
                    restore_index(conn, index)
                runner.catch_up(until)
        return applied

    def _pages(self, until: int, step: Callable[[int], None]) -> int:
        """Page after page from the least position up to `until`: the next page is read and
        decoded while the read models write this one."""
        position = self.position
        if position >= until or not self.runners:
            return 0
        applied = 0
        workers = min(len(self.runners), WRITERS) + 1
        with ThreadPoolExecutor(workers, "schema-build") as threads:
            ahead: Future[Page] = threads.submit(self._page, position, until)
            while position < until:
                pages, end = ahead.result()
                if end < until:
                    ahead = threads.submit(self._page, end, until)
                writes = []
                for runner, events in zip(self.runners, pages, strict=True):
                    if events:
                        writes.append(threads.submit(runner.apply_page, events, end))
                    else:
                        runner.apply_page(events, end)
                for write in writes:
                    done = write.result()
                    applied += done
                    step(done)
                position = end
        return applied

    def _page(self, position: int, until: int) -> Page:
        """The decoded events after `position` up to where the page ends, already sorted out
        into each read model's own (in log order)."""
        page = self.reader.select_notifications(
            position, self.batch_size, stop=until, topics=self.topics, inclusive_of_start=False
        )
        full = len(page) == self.batch_size or getattr(page, "truncated", False)
        end = page[-1].id if full and page else until
        decode, takers = self.decode, self._takers
        pages: list[list[tuple[Any, Any]]] = [[] for _ in self.runners]
        for n in page:
            pair = (n, decoded(decode, n))
            for i in takers[n.topic]:
                pages[i].append(pair)
        return pages, end

    def progress(self, total: int, until: int, elapsed: float) -> Progress:
        processed = self._processed
        return Progress(processed, max(total, processed), self.position, until, elapsed)
