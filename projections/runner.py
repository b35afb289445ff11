"""Batched projection runner: many events per transaction, rows and tracking committed together.

The library's stock runner commits once per event; replaying 100k events that way takes
minutes. Here a batch of events is read with one query, turned into statements, consecutive
statements of the same shape are sent with one executemany, and the tracking row moves in the
same transaction, so a crash at any point leaves rows and position consistent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby
from typing import Any, Protocol

from psycopg import Connection
from psycopg_pool import ConnectionPool

from projections.base import Projection, Statement, topics_of
from projections.rows import BatchProjection, RowProjection, apply_rows

log = logging.getLogger(__name__)

SKIP_RECORD_INTERVAL = 0.2
"""Seconds between tracking-row writes that only say "nothing for us up to here"."""

AnyProjection = Projection | RowProjection | BatchProjection
"""Statements per event, rows folded per batch, or a batch written by the projection itself."""


class Notification(Protocol):
    id: int


class NotificationReader(Protocol):
    def max_notification_id(self) -> int | None: ...

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Any]: ...


class LostRace(Exception):
    """Another runner moved this projection's position while we worked; re-read and retry."""


def ensure_tracking(conn: Connection[Any], name: str) -> int:
    conn.execute(
        "INSERT INTO tracking (name, position) VALUES (%s, 0) ON CONFLICT (name) DO NOTHING",
        (name,),
    )
    row = conn.execute("SELECT position FROM tracking WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def execute_grouped(conn: Connection[Any], statements: Iterable[Statement]) -> None:
    """One pipeline for the whole batch: no round trip per statement group."""
    with conn.pipeline(), conn.cursor() as cur:
        for sql, group in groupby(statements, key=lambda s: s[0]):
            cur.executemany(sql, [params for _, params in group])


class ProjectionRunner:
    def __init__(
        self,
        projection: AnyProjection,
        pool: ConnectionPool[Any],
        reader: NotificationReader,
        decode: Callable[[Any], Any],
        batch_size: int = 1000,
    ) -> None:
        self.projection = projection
        self.pool = pool
        self.reader = reader
        self.decode = decode
        self.batch_size = batch_size
        self.topics = topics_of(projection)
        self.topic_set = frozenset(self.topics)
        with pool.connection() as conn:
            self.position = ensure_tracking(conn, projection.name)
        self._skip_recorded = 0.0
        self._persisted = self.position
        """The tracking row's value; `position` may run ahead of it past events this
        projection ignores (no transaction just to say "nothing here")."""

    @property
    def name(self) -> str:
        return self.projection.name

    def step(self, head: int) -> int:
        """Process at most one batch up to `head`; returns how many events it applied."""
        notifications = self.reader.select_notifications(
            self.position,
            self.batch_size,
            stop=head,
            topics=self.topics,
            inclusive_of_start=False,
        )
        full = len(notifications) == self.batch_size or getattr(notifications, "truncated", False)
        new_position = notifications[-1].id if full else head
        if new_position <= self.position:
            return 0
        if not notifications:
            self.position = new_position
            return 0
        events = [self.decode(n) for n in notifications]
        projection = self.projection
        if isinstance(projection, BatchProjection):

            def write(conn: Connection[Any]) -> None:
                projection.write_batch(conn, events)

        elif isinstance(projection, RowProjection):

            def write(conn: Connection[Any]) -> None:
                apply_rows(conn, projection, events)

        else:
            statements = [s for e in events for s in projection.handle(e)]

            def write(conn: Connection[Any]) -> None:
                execute_grouped(conn, statements)

        try:
            self._commit(write, new_position)
        except LostRace:
            with self.pool.connection() as conn:
                self.position = self._persisted = ensure_tracking(conn, self.name)
            return 0
        return len(events)

    def _commit(self, write: Callable[[Connection[Any]], None], new_position: int) -> None:
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT position FROM tracking WHERE name = %s FOR UPDATE", (self.name,)
            ).fetchone()
            if row is None or row[0] != self._persisted:
                raise LostRace
            write(conn)
            conn.execute(
                "UPDATE tracking SET position = %s, updated_at = now() WHERE name = %s",
                (new_position, self.name),
            )
        self.position = self._persisted = new_position

    def catch_up(
        self, head: int | None = None, progress: Callable[[int], None] | None = None
    ) -> int:
        """Apply everything up to `head` (default: the current end of the log)."""
        head = self.reader.max_notification_id() or 0 if head is None else head
        total = 0
        while self.position < head:
            applied = self.step(head)
            total += applied
            if progress is not None:
                progress(applied)
        self._record_skip()
        return total

    def skip_to(self, head: int) -> None:
        """The log up to `head` is known to hold no event of this projection's types."""
        self.position = max(self.position, head)
        self._record_skip()

    def _record_skip(self) -> None:
        """Write down, at most a few times a second, that the log up to `position` holds
        nothing more for this projection (other processes read the tracking row)."""
        now = time.monotonic()
        if self.position <= self._persisted or now - self._skip_recorded < SKIP_RECORD_INTERVAL:
            return
        self._skip_recorded = now
        with self.pool.connection() as conn:
            moved = conn.execute(
                "UPDATE tracking SET position = %s, updated_at = now()"
                " WHERE name = %s AND position = %s",
                (self.position, self.name, self._persisted),
            ).rowcount
        if moved:
            self._persisted = self.position
        else:  # another runner moved it: follow the row
            with self.pool.connection() as conn:
                self.position = self._persisted = ensure_tracking(conn, self.name)

    def reset(self) -> None:
        """Empty the read model and rewind to the start; the next catch-up rebuilds it."""
        with self.pool.connection() as conn, conn.transaction():
            ensure_tracking(conn, self.name)
            conn.execute("SELECT position FROM tracking WHERE name = %s FOR UPDATE", (self.name,))
            conn.execute("TRUNCATE " + ", ".join(self.projection.tables))
            conn.execute("UPDATE tracking SET position = 0 WHERE name = %s", (self.name,))
        self.position = self._persisted = 0
