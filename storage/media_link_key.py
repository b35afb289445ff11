"""The key media links are signed with (migration 0025): made once, shared by all API processes."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection


async def media_link_key(conn: AsyncConnection[Any], candidate: bytes) -> bytes:
    """The stored key; `candidate` becomes it when there is none yet (the first caller wins a
    race, and every caller gets the winner's)."""
    await conn.execute(
        "INSERT INTO media_link_key (key) VALUES (%s) ON CONFLICT DO NOTHING", (candidate,)
    )
    cur = await conn.execute("SELECT key FROM media_link_key")
    row = await cur.fetchone()
    if row is None:  # only if someone deleted it between the two statements
        msg = "media_link_key is empty; try again"
        raise RuntimeError(msg)
    return bytes(row[0])
