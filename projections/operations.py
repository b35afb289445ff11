"""What an operator asks of the read models beyond their positions: are their tables there,
is one being rebuilt (by any process), and how old is the oldest event one has not applied."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from projections.notifications import notification_from
from projections.runner import ProjectionRunner
from storage.read_model_schema import REBUILD_LOCK_CLASS


async def missing_tables(
    conn: AsyncConnection[Any], read_models: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Per read model with a table absent from `public`, the tables absent."""
    pairs = [(name, table) for name, tables in read_models.items() for table in tables]
    cur = await conn.execute(
        "SELECT n, t FROM unnest(%s::text[], %s::text[]) AS m(n, t)"
        " WHERE to_regclass('public.' || quote_ident(t)) IS NULL",
        ([n for n, _ in pairs], [t for _, t in pairs]),
    )
    missing: dict[str, list[str]] = {}
    for name, table in await cur.fetchall():
        missing.setdefault(str(name), []).append(str(table))
    return missing


async def rebuilding(conn: AsyncConnection[Any], names: Sequence[str]) -> set[str]:
    """The read models whose rebuild lock some session (any process) holds now."""
    cur = await conn.execute(
        "SELECT n FROM unnest(%s::text[]) AS n WHERE EXISTS (SELECT 1 FROM pg_locks"
        " WHERE locktype = 'advisory' AND granted AND classid = %s::oid"
        " AND objid = hashtext(n)::oid AND objsubid = 2)",
        (list(names), REBUILD_LOCK_CLASS),
    )
    return {str(n) for (n,) in await cur.fetchall()}


def unapplied_since(runner: ProjectionRunner) -> datetime | None:
    """When the oldest event past the runner's position was recorded (None: none is)."""
    with runner.pool.connection() as conn:
        stored = notification_from(conn, runner.position + 1)
    if stored is None:
        return None
    at: datetime = runner.decode(stored).timestamp
    return at
