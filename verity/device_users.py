"""Keeps the embedded NATS server's device users equal to the active devices of the read model.

`verity devices add|rotate|disable` (any process) stores an event; `verity serve`, which owns
the embedded server, sees the devices read model move and rewrites the server's config, which
the server reloads without a restart (a disabled device's connection is closed by it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool

from projections.devices import active_device_users

if TYPE_CHECKING:
    from verity.embedded import EmbeddedNats

log = logging.getLogger(__name__)

CHECK_EVERY = 0.2
"""Seconds between looks at the devices read model's position (in memory, no query)."""
QUERY_AT_LEAST_EVERY = 5.0
"""Seconds between queries while the position stands still (a process without projections)."""


async def sync_device_users(server: EmbeddedNats, pool: AsyncConnectionPool[Any]) -> bool:
    """Write the active devices into the server's config; whether it changed (and reloaded)."""
    async with pool.connection() as conn:
        users = await active_device_users(conn)
    changed = await asyncio.to_thread(server.update_devices, users)
    if changed:
        log.info("NATS device users now: %s", ", ".join(u.device_id for u in users) or "none")
    return changed


async def follow_device_users(
    server: EmbeddedNats,
    pool: AsyncConnectionPool[Any],
    position: Callable[[], int],
    stop: asyncio.Event,
) -> None:
    """Sync on every move of the devices read model (and now and then regardless) until stop."""
    seen: int | None = None
    queried = 0.0
    while not stop.is_set():
        now = position()
        if now != seen or time.monotonic() - queried >= QUERY_AT_LEAST_EVERY:
            try:
                await sync_device_users(server, pool)
            except Exception:  # the database or the server is away: try again soon
                log.exception("could not update the NATS device users; trying again")
            else:
                seen = now
            queried = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHECK_EVERY)
