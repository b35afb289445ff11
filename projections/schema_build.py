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
import multiprocessing
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import (
    FIRST_EXCEPTION,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass
from queue import Empty
from typing import Any

import psycopg
from psycopg import Connection
from psycopg_pool import ConnectionPool

from projections.base import topics_of
from projections.gc_pause import fewer_collections
from projections.notifications import EVENTS_TABLE, NotificationLog, event_count
from projections.runner import AnyProjection, NotificationReader, ProjectionRunner, decoded
from storage.read_model_schema import check_schema_name, defer_indexes, restore_index

log = logging.getLogger(__name__)

WRITERS = 4
"""Read models writing the same page at once (each on its own connection of the pool)."""

Page = tuple[list[list[tuple[Any, Any]]], int]
"""Per read model of the build, its (stored notification, decoded event or Undecodable)
pairs of the page; and the position the page reaches."""

SPLIT_MIN_EVENTS = 50_000
"""Fewer events than this are built in the calling process: starting others costs more."""

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


def topic_groups(
    projections: Sequence[AnyProjection], counts: Mapping[str, int], parts: int
) -> list[list[AnyProjection]]:
    """At most `parts` groups of read models, no topic read by two groups (so every event is
    read and decoded by one process only), balanced by the events each group reads."""
    components: list[tuple[set[str], list[AnyProjection]]] = []
    for p in projections:
        topics, members = set(topics_of(p)), [p]
        for component in [c for c in components if c[0] & topics]:
            components.remove(component)
            topics |= component[0]
            members = component[1] + members
        components.append((topics, members))
    weight = {id(c): sum(counts.get(t, 0) for t in c[0]) for c in components}
    bins: list[tuple[int, list[AnyProjection]]] = [(0, []) for _ in range(max(1, parts))]
    for c in sorted(components, key=lambda c: -weight[id(c)]):
        load, members = min(bins, key=lambda b: b[0])
        bins.remove((load, members))
        bins.append((load + weight[id(c)], members + c[1]))
    order = {id(p): i for i, p in enumerate(projections)}
    return [sorted(m, key=lambda p: order[id(p)]) for _, m in bins if m]


_progress_queue: Any = None


def _remember_queue(queue: Any) -> None:
    global _progress_queue  # noqa: PLW0603 - one per worker process, set as it starts
    _progress_queue = queue


def _build_part(
    database_url: str,
    schema: str,
    projections: Sequence[AnyProjection],
    decode: Callable[[Any], Any],
    until: int,
    batch_size: int,
) -> int:
    """One process's share of a split build (its own connections, reader and decoder)."""
    queue, part = _progress_queue, projections[0].name

    def report(p: Progress) -> None:
        if queue is not None:
            queue.put((part, p.processed))

    return _fill_here(database_url, schema, projections, decode, until, batch_size, report)


def _fill_here(
    database_url: str,
    schema: str,
    projections: Sequence[AnyProjection],
    decode: Callable[[Any], Any],
    until: int,
    batch_size: int,
    progress: Callable[[Progress], None] | None,
    total: int = 0,
) -> int:
    """`SchemaBuild.fill` in this process, with its own log reader and schema pool."""
    with (
        ConnectionPool(database_url, min_size=1, max_size=2, open=True) as log_pool,
        schema_pool(database_url, schema, WRITERS + 1) as pool,
    ):
        build = SchemaBuild(projections, pool, NotificationLog(log_pool), decode, batch_size)
        return build.fill(until, progress, total)


def build_in_processes(
    database_url: str,
    schema: str,
    projections: Sequence[AnyProjection],
    decode: Callable[[Any], Any],
    until: int,
    batch_size: int,
    processes: int,
    progress: Callable[[Progress], None] | None = None,
    total: int = 0,
) -> int:
    """`SchemaBuild.fill` of `projections` into the empty `schema`, split over up to
    `processes` processes by `topic_groups` (one Python process decodes and writes on about
    one core; PostgreSQL works beside it). `decode` must pickle (a mapper's method does).
    Returns the events applied; `progress` gets the sum of the parts' reports."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT topic, count(*) FROM {EVENTS_TABLE} WHERE notification_id <= %s"
            " GROUP BY topic",
            (until,),
        ).fetchall()
    counts = {str(t): int(n) for t, n in rows}
    groups = topic_groups(projections, counts, processes)
    if len(groups) < 2 or sum(counts.values()) < SPLIT_MIN_EVENTS:
        return _fill_here(
            database_url, schema, projections, decode, until, batch_size, progress, total
        )
    started = time.monotonic()
    # Forked: a part starts at once with every module loaded (spawned or from a fork server,
    # it was measured 1-5 s slower per build). It uses none of the threads or connections it
    # inherits (only their memory): its own pools, reader and writer threads.
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    done: dict[str, int] = {}

    def report() -> None:
        while True:
            try:
                part, processed = queue.get_nowait()
            except Empty:
                return
            done[part] = processed

    with ProcessPoolExecutor(
        len(groups), mp_context=context, initializer=_remember_queue, initargs=(queue,)
    ) as workers:
        parts = [
            workers.submit(_build_part, database_url, schema, g, decode, until, batch_size)
            for g in groups
        ]
        while not all(p.done() for p in parts):
            wait(parts, timeout=PROGRESS_INTERVAL, return_when=FIRST_EXCEPTION)
            report()
            if progress is not None:
                processed = sum(done.values())
                elapsed = time.monotonic() - started
                progress(Progress(processed, max(total, processed), 0, until, elapsed))
        applied = sum(p.result() for p in parts)
    if progress is not None:
        elapsed = time.monotonic() - started
        progress(Progress(applied, max(total, applied), until, until, elapsed))
    return applied
