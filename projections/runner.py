"""Batched projection runner: many events per transaction, rows and tracking committed together.

The library's stock runner commits once per event; replaying 100k events that way takes
minutes. Here a batch of events is read with one query, turned into statements, consecutive
statements of the same shape are sent with one executemany, and the tracking row moves in the
same transaction, so a crash at any point leaves rows and position consistent.

An event the read model cannot apply (see projections/failures.py) does not stop it: when a
batch fails, its bad events are isolated (projections/isolation.py), recorded in
`projection_failures` in the same transaction, and skipped.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from psycopg import Connection
from psycopg_pool import ConnectionPool

from projections.base import Projection, Statement, topics_of
from projections.failures import (
    clear_failures,
    describe,
    failed_page,
    is_transient,
    lock_tracking,
    record_failures,
)
from projections.isolation import Item, Write, apply_isolated
from projections.rows import BatchProjection, RowProjection, apply_rows

log = logging.getLogger(__name__)

RATE_WINDOW = 10.0
"""Seconds over which `events_per_second` counts."""

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


class Undecodable(NamedTuple):
    """A stored event that could not be decoded: why (recorded as its failure)."""

    error: str


def decoded(decode: Callable[[Any], Any], notification: Any) -> Any:
    """The event, or Undecodable (an outage while decoding propagates)."""
    try:
        return decode(notification)
    except Exception as exc:  # the stored event's fault, not the database's
        if is_transient(exc):
            raise
        return Undecodable(describe(exc))


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


def start_tracking(conn: Connection[Any], name: str) -> int:
    """`ensure_tracking` for a projection: a new tracking row (its read model starts from
    nothing) also forgets failures recorded against an earlier one."""
    conn.execute(
        "WITH new AS (INSERT INTO tracking (name, position) VALUES (%(n)s, 0)"
        " ON CONFLICT (name) DO NOTHING RETURNING name)"
        " DELETE FROM projection_failures WHERE projection IN (SELECT name FROM new)",
        {"n": name},
    )
    return ensure_tracking(conn, name)


def writer(projection: AnyProjection) -> Write:
    """How `projection` writes a batch of events inside the runner's transaction."""
    if isinstance(projection, BatchProjection):
        return projection.write_batch
    if isinstance(projection, RowProjection):
        rows = projection

        def write_rows(conn: Connection[Any], events: Sequence[Any]) -> None:
            apply_rows(conn, rows, events)

        return write_rows
    statements = projection

    def write_statements(conn: Connection[Any], events: Sequence[Any]) -> None:
        execute_grouped(conn, [s for e in events for s in statements.handle(e)])

    return write_statements


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
        self._write = writer(projection)
        self._key = projection.key if isinstance(projection, RowProjection) else None
        """Which read-model row an event changes (default: its aggregate's)."""
        with pool.connection() as conn:
            self.position = start_tracking(conn, projection.name)
        self._skip_recorded = 0.0
        self._recent: deque[tuple[float, int]] = deque(maxlen=4096)
        """(when, how many) per committed batch, for `events_per_second`."""
        self._persisted = self.position
        """The tracking row's value; `position` may run ahead of it past events this
        projection ignores (no transaction just to say "nothing here")."""

    @property
    def name(self) -> str:
        return self.projection.name

    def step(self, head: int) -> int:
        """Process at most one batch up to `head`; returns how many events it took
        (applied, or recorded as failures and skipped)."""
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
        items = [self._item(n) for n in notifications]
        try:
            self._commit(items, new_position)
        except LostRace:
            with self.pool.connection() as conn:
                self.position = self._persisted = ensure_tracking(conn, self.name)
            return 0
        self._recent.append((time.monotonic(), len(items)))
        return len(items)

    def events_per_second(self, window: float = RATE_WINDOW) -> float:
        """Events applied per second over the last `window` seconds."""
        since = time.monotonic() - window
        return sum(n for at, n in list(self._recent) if at >= since) / window

    def _item(self, notification: Any) -> Item:
        return self.item_of(notification, decoded(self.decode, notification))

    def item_of(self, notification: Any, event: Any) -> Item:
        """The decoded event (or Undecodable) as an item of a batch: a failure, never retried
        forever, if it cannot be read or its row not found."""
        n = notification
        if isinstance(event, Undecodable):
            error = event.error
        else:
            try:
                key: UUID = self._key(event) if self._key else n.originator_id
            except Exception as exc:  # the stored event's fault, not the database's
                if is_transient(exc):
                    raise
                error = describe(exc)
            else:
                return Item(n.id, n.topic, n.originator_id, n.originator_version, key, event)
        oid = n.originator_id
        return Item(n.id, n.topic, oid, n.originator_version, oid, error=error)

    def apply_page(self, page: Sequence[tuple[Any, Any]], end: int) -> int:
        """Apply this projection's events of a page read for several projections: (stored
        notification, decoded event or Undecodable) pairs in log order, of its topics only,
        the page reaching up to `end`. Returns how many events it took, as `step` does."""
        if end <= self.position:
            return 0
        after = self.position
        items = [self.item_of(n, e) for n, e in page if n.id > after]
        if not items:
            self.position = end
            return 0
        try:
            self._commit(items, end)
        except LostRace:  # someone else moved the row: read on from where it says, alone
            with self.pool.connection() as conn:
                self.position = self._persisted = ensure_tracking(conn, self.name)
            return self.catch_up(end)
        self._recent.append((time.monotonic(), len(items)))
        return len(items)

    def _commit(self, items: Sequence[Item], new_position: int) -> None:
        """Rows, failures and tracking in one transaction. The batch is first written whole;
        only if that fails (and not for an outage) are its bad events isolated and skipped."""
        with self.pool.connection() as conn:
            try:
                self._transaction(conn, items, new_position, isolate=False)
            except LostRace:
                raise
            except Exception as exc:  # an outage propagates; a bad event is isolated below
                if is_transient(exc):
                    raise
                log.warning(
                    "projection %s: batch %s..%s failed (%s); isolating what cannot be applied",
                    self.name,
                    items[0].position,
                    items[-1].position,
                    describe(exc),
                )
                self._transaction(conn, items, new_position, isolate=True)
        self.position = self._persisted = new_position

    def _transaction(
        self, conn: Connection[Any], items: Sequence[Item], new_position: int, *, isolate: bool
    ) -> None:
        with conn.transaction():
            position, held = lock_tracking(conn, self.name)
            if position != self._persisted:
                raise LostRace
            if isolate or held or any(item.error is not None for item in items):
                failures = apply_isolated(conn, items, self._write, held)
                record_failures(conn, self.name, failures)
                for f in failures:
                    log.error(
                        "projection %s skipped the event at position %s (%s): %s",
                        self.name,
                        f.position,
                        f.topic,
                        f.error,
                    )
            else:
                self._write(conn, [item.event for item in items])
            conn.execute(
                "UPDATE tracking SET position = %s, updated_at = now() WHERE name = %s",
                (new_position, self.name),
            )

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
            clear_failures(conn, self.name)  # the catch-up records again what still fails
            conn.execute("UPDATE tracking SET position = 0 WHERE name = %s", (self.name,))
        self.position = self._persisted = 0

    def retry_failures(self, progress: Callable[[int], None] | None = None) -> tuple[int, int]:
        """Apply again the events recorded as failures (after a fix); (cleared, still failing).

        Page by page in log order, each page in one transaction with the tracking row locked
        (so a live runner waits): the records are deleted, the events applied with the same
        isolation, and those that still fail recorded again. A row whose first failure still
        fails keeps its later events held back."""
        held: dict[UUID, int] = {}
        after = cleared = failing = 0
        while True:
            with self.pool.connection() as conn, conn.transaction():
                lock_tracking(conn, self.name)
                page = failed_page(conn, self.name, after, self.batch_size)
                if not page:
                    break
                failures = apply_isolated(conn, [self._item(n) for n in page], self._write, held)
                record_failures(conn, self.name, failures)
            after = page[-1].id
            cleared += len(page) - len(failures)
            failing += len(failures)
            if progress is not None:
                progress(len(page))
        return cleared, failing
