"""Events a read model could not apply: told apart from outages, recorded, listed.

A read model that stops at an event it cannot apply stops the whole read side for good:
commands wait for it, and a rebuild stops at the same event. So an event whose application
fails deterministically (a value the column cannot hold, a broken constraint, an event this
code cannot decode, an exception in the projection's own code) is recorded here and skipped.
An outage (connection lost, serialization failure, the server shutting down, a missing table)
is not the event's fault: skipping would lose events that apply fine a moment later, so those
are raised and the runner retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
import psycopg
from psycopg import AsyncConnection, Connection
from psycopg_pool import PoolTimeout

from projections.notifications import EVENTS_TABLE, StoredNotification

DETERMINISTIC_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
"""Data exceptions (a value out of a column's range, NUL in text), integrity violations, and
limits exceeded by a value (an index row too large): the same event fails the same way again."""

MAX_ERROR = 2000
"""Characters of an error message kept (the message may quote the offending value)."""


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same events later may succeed (so they must not be skipped)."""
    if isinstance(exc, PoolTimeout | OSError | MemoryError):
        return True
    if isinstance(exc, psycopg.Error):
        if exc.sqlstate:
            return exc.sqlstate[:2] not in DETERMINISTIC_SQLSTATE_CLASSES
        # Raised by psycopg itself: a value it cannot send is the data's fault, anything
        # else (a closed connection, a broken pipeline) the connection's.
        return not isinstance(exc, psycopg.DataError | psycopg.IntegrityError)
    return False  # raised by decoding or by the projection's code for this event


def describe(exc: BaseException) -> str:
    """One line for the record: type and message, no NUL (text columns refuse it), bounded."""
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "\\x00")
    return text[:MAX_ERROR]


class Failure(NamedTuple):
    """One event not applied: its own error, or held back behind an earlier failure of its row."""

    position: int
    topic: str
    originator_id: UUID
    originator_version: int
    row_key: UUID
    error: str
    held_by: int | None = None


def record_failures(conn: Connection[Any], projection: str, failures: Sequence[Failure]) -> None:
    """Inside the runner's transaction, with the rows and the tracking position."""
    if not failures:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO projection_failures (projection, position, topic, originator_id,"
            " originator_version, row_key, error, held_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (projection, position) DO UPDATE SET error = EXCLUDED.error,"
            " held_by = EXCLUDED.held_by, row_key = EXCLUDED.row_key, failed_at = now()",
            [(projection, *f[:5], f.error, f.held_by) for f in failures],
        )


def lock_tracking(conn: Connection[Any], projection: str) -> tuple[int, dict[UUID, int]]:
    """Lock the projection's tracking row; its position and the rows held back by failures
    (row key -> the position of the first failure), in one round trip."""
    row = conn.execute(
        "SELECT position, (SELECT json_object_agg(row_key, first) FROM"
        " (SELECT row_key, min(position) AS first FROM projection_failures"
        "  WHERE projection = %(name)s GROUP BY row_key) AS held)"
        " FROM tracking WHERE name = %(name)s FOR UPDATE",
        {"name": projection},
        prepare=True,
    ).fetchone()
    if row is None:
        return -1, {}
    held = {UUID(k): int(v) for k, v in (row[1] or {}).items()}
    return int(row[0]), held


def clear_failures(conn: Connection[Any], projection: str) -> None:
    conn.execute("DELETE FROM projection_failures WHERE projection = %s", (projection,))


def failed_page(
    conn: Connection[Any], projection: str, after: int, limit: int
) -> list[StoredNotification]:
    """The stored events of the projection's failures after `after`, in log order; deleted
    from the record (a retry records again those that still fail, in the same transaction)."""
    rows = conn.execute(
        "WITH page AS (DELETE FROM projection_failures WHERE projection = %s AND position IN"
        " (SELECT position FROM projection_failures WHERE projection = %s AND position > %s"
        "  ORDER BY position LIMIT %s) RETURNING position)"
        " SELECT notification_id, originator_id, originator_version, topic, state"
        f" FROM {EVENTS_TABLE} WHERE notification_id IN (SELECT position FROM page)"
        " ORDER BY notification_id",
        (projection, projection, after, limit),
    ).fetchall()
    return [StoredNotification._make(r) for r in rows]


# --- queries -------------------------------------------------------------------------------


class FailureRow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    projection: str
    position: int
    topic: str
    originator_id: UUID
    originator_version: int
    held_by: int | None
    error: str
    failed_at: datetime


class ProjectionFailures(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One read model's failures: how many, and the newest of them."""

    count: int
    newest: list[FailureRow]


_COLUMNS = "projection, position, topic, originator_id, originator_version, held_by, error"


async def failure_summary(
    conn: AsyncConnection[Any], newest: int = 3
) -> dict[str, ProjectionFailures]:
    """Per read model with failures: their count and the `newest` latest, newest first."""
    cur = await conn.execute(
        f"SELECT total, {_COLUMNS}, failed_at FROM (SELECT *,"
        " count(*) OVER (PARTITION BY projection) AS total,"
        " row_number() OVER (PARTITION BY projection ORDER BY position DESC) AS n"
        " FROM projection_failures) AS f WHERE n <= %s ORDER BY projection, position DESC",
        (newest,),
    )
    summary: dict[str, ProjectionFailures] = {}
    for total, *rest in await cur.fetchall():
        row = _failure_row(rest)
        entry = summary.setdefault(row.projection, ProjectionFailures(count=total, newest=[]))
        entry.newest.append(row)
    return summary


async def list_failures(
    conn: AsyncConnection[Any], projection: str | None, skip: int, limit: int
) -> list[FailureRow]:
    """Failures in log order, optionally of one read model."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS}, failed_at FROM projection_failures"
        " WHERE %(p)s::text IS NULL OR projection = %(p)s"
        " ORDER BY position, projection OFFSET %(skip)s LIMIT %(limit)s",
        {"p": projection, "skip": skip, "limit": limit},
    )
    return [_failure_row(r) for r in await cur.fetchall()]


def failure_count(conn: Connection[Any], projection: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM projection_failures WHERE projection = %s", (projection,)
    ).fetchone()
    return int(row[0]) if row else 0


def failures_of(conn: Connection[Any], projection: str | None, limit: int) -> list[FailureRow]:
    """The same list for the command line."""
    cur = conn.execute(
        f"SELECT {_COLUMNS}, failed_at FROM projection_failures"
        " WHERE %(p)s::text IS NULL OR projection = %(p)s"
        " ORDER BY projection, position LIMIT %(limit)s",
        {"p": projection, "limit": limit},
    )
    return [_failure_row(r) for r in cur.fetchall()]


def _failure_row(r: Sequence[Any]) -> FailureRow:
    return FailureRow(
        projection=r[0],
        position=r[1],
        topic=r[2],
        originator_id=r[3],
        originator_version=r[4],
        held_by=r[5],
        error=r[6],
        failed_at=r[7],
    )
