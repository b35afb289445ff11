"""The event log's hash chain in PostgreSQL (migration 0020): its head, and the stored rows
streamed as the chain hashes them (binary COPY, one snapshot, bounded memory)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, Connection, sql

from formats.event_chain import GENESIS, Verified, copy_rows, verify_copy

_HEAD = (
    "SELECT (SELECT count(*) FROM verity_events), h.notification_id, h.record_hash"
    " FROM (SELECT 1) AS one LEFT JOIN (SELECT notification_id, record_hash FROM verity_events"
    " ORDER BY notification_id DESC LIMIT 1) AS h ON true"
)
_BEFORE = (
    "SELECT notification_id, record_hash FROM verity_events WHERE notification_id < %s"
    " ORDER BY notification_id DESC LIMIT 1"
)
_ROWS = (
    "COPY (SELECT notification_id, originator_id, originator_version, topic, state, record_hash"
    " FROM verity_events WHERE notification_id BETWEEN {first} AND {last}"
    " ORDER BY notification_id) TO STDOUT (FORMAT binary)"
)
_LAST = 2**63 - 1


@dataclass(frozen=True)
class ChainHead:
    position: int | None
    """The newest stored event's position; None for an empty log."""
    hash: bytes
    count: int


def chain_head(conn: Connection[Any]) -> ChainHead:
    return _head(conn.execute(_HEAD).fetchone())


async def read_chain_head(conn: AsyncConnection[Any]) -> ChainHead:
    cur = await conn.execute(_HEAD)
    return _head(await cur.fetchone())


def _head(row: Any) -> ChainHead:
    """One statement, one snapshot: the count and the newest event agree."""
    count, position, digest = row
    return ChainHead(position, bytes(digest) if digest is not None else GENESIS, int(count))


def hash_before(conn: Connection[Any], position: int) -> tuple[int | None, bytes]:
    """The stored event just before `position` and its hash (None and genesis at the start)."""
    row = conn.execute(_BEFORE, (position,)).fetchone()
    return (None, GENESIS) if row is None else (int(row[0]), bytes(row[1]))


def stored_rows(
    conn: Connection[Any], first: int = 0, last: int = _LAST
) -> Generator[tuple[int, memoryview, bytes]]:
    """(position, record, stored hash) of every event in [first, last], in position order."""
    statement = _ROWS.format(first=int(first), last=int(last))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        yield from copy_rows(copy)


def verify_stored(
    conn: Connection[Any],
    progress: Callable[[int], object] | None = None,
    first: int = 0,
    last: int = _LAST,
) -> Verified:
    """Recompute the chain over [first, last] from the stored bytes, starting from the stored
    hash of the event before `first`; ChainError at the first bad position. Ranges that
    cover the log, each checked against its predecessor's stored hash, check it all."""
    conn.execute("SET client_encoding TO 'UTF8'")
    _, previous = hash_before(conn, first) if first > 0 else (None, GENESIS)
    with conn.cursor() as cur, cur.copy(_ROWS.format(first=int(first), last=int(last))) as copy:
        return verify_copy(copy, previous, progress)


def position_bounds(conn: Connection[Any]) -> tuple[int, int] | None:
    row = conn.execute("SELECT min(notification_id), max(notification_id) FROM verity_events")
    found = row.fetchone()
    return None if found is None or found[0] is None else (int(found[0]), int(found[1]))


def export_snapshot(conn: Connection[Any]) -> str:
    """This transaction's snapshot, for other connections to read exactly what it reads."""
    row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    assert row is not None
    return str(row[0])


def use_snapshot(conn: Connection[Any], snapshot: str) -> None:
    """Read what the exporting transaction reads (first statement of a repeatable read one)."""
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))


def count_between(conn: Connection[Any], first: int, last: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM verity_events WHERE notification_id BETWEEN %s AND %s",
        (first, last),
    ).fetchone()
    return int(row[0]) if row else 0


def hash_at(conn: Connection[Any], position: int) -> bytes | None:
    row = conn.execute(
        "SELECT record_hash FROM verity_events WHERE notification_id = %s", (position,)
    ).fetchone()
    return None if row is None else bytes(row[0])
