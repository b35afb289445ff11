"""Positions in the `tracking` table outside a projection runner: the relay moves its own, the
evaluator reads how far the read models it evaluates from have come."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, Connection


def save_position(conn: Connection[Any], name: str, position: int) -> None:
    conn.execute(
        "UPDATE tracking SET position = %s, updated_at = now() WHERE name = %s", (position, name)
    )


async def tracked_positions(conn: AsyncConnection[Any], names: Sequence[str]) -> dict[str, int]:
    """Tracked position by name; a name without a row is left out."""
    cur = await conn.execute(
        "SELECT name, position FROM tracking WHERE name = ANY(%s)", (list(names),)
    )
    return {str(n): int(p) for n, p in await cur.fetchall()}
