"""The event store's notification log, read over the projections' own connection pool.

Runners poll the log all the time; reading it through the event store's pool would make them
queue behind command handlers and the relay for connections. Rows come back as plain tuples,
which the mapper turns into domain events exactly as it does the library's notifications.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

from psycopg import Connection
from psycopg_pool import ConnectionPool

EVENTS_TABLE = "verity_events"
MAX_PAGE_BYTES = 16 * 2**20
"""A page of the log stops after this much stored state (but holds at least one event): frame
batch events are ~125 kB each, and a 5000-event page of them would be 600 MB in memory."""


class StoredNotification(NamedTuple):
    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


class NotificationPage(list[StoredNotification]):
    """Notifications in log order; `truncated` when the byte limit cut the page short, so the
    reader knows that more events up to its `stop` may follow."""

    truncated: bool = False


def event_count(conn: Connection[Any], topics: Sequence[str], until: int | None = None) -> int:
    """Stored events of these topics (up to position `until`): what a rebuild will read."""
    row = conn.execute(
        f"SELECT count(*) FROM {EVENTS_TABLE} WHERE topic = ANY(%s) AND notification_id <= %s",
        (list(topics), 2**63 - 1 if until is None else until),
    ).fetchone()
    return int(row[0]) if row else 0


def notification_from(conn: Connection[Any], position: int) -> StoredNotification | None:
    """The first stored event at or after `position` (None past the end of the log)."""
    row = conn.execute(
        "SELECT notification_id, originator_id, originator_version, topic, state"
        f" FROM {EVENTS_TABLE} WHERE notification_id >= %s ORDER BY notification_id LIMIT 1",
        (position,),
    ).fetchone()
    return None if row is None else StoredNotification._make(row)


class NotificationLog:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def max_notification_id(self) -> int | None:
        with self.pool.connection() as conn:
            row = conn.execute(f"SELECT max(notification_id) FROM {EVENTS_TABLE}").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> NotificationPage:
        """Notifications after `start` (or from it, if inclusive) up to `stop`, in log order."""
        first = start if start is not None else 0
        if start is not None and not inclusive_of_start:
            first += 1
        last = stop if stop is not None else 2**63 - 1
        where = "notification_id BETWEEN %s AND %s"
        params: list[Any] = [first, last]
        if topics:
            where += " AND topic = ANY(%s)"
            params.append(list(topics))
        params += [limit, MAX_PAGE_BYTES]
        with self.pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT notification_id, originator_id, originator_version, topic, state,"
                " upto > %s FROM (SELECT notification_id, originator_id, originator_version,"
                " topic, state, sum(octet_length(state)) OVER (ORDER BY notification_id) AS upto"
                f" FROM {EVENTS_TABLE} WHERE {where} ORDER BY notification_id LIMIT %s) AS page"
                " WHERE upto - octet_length(state) < %s ORDER BY notification_id",
                [MAX_PAGE_BYTES, *params],
                prepare=True,
                binary=True,  # state as it is stored: no hex text to encode and parse back
            )
            rows = cur.fetchall()
        page = NotificationPage(StoredNotification._make(row[:5]) for row in rows)
        page.truncated = bool(rows) and bool(rows[-1][5])
        return page
