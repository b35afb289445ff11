"""Waking on the event store's commits: its recorder NOTIFYs the events table's channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

CHANNEL = "verity_events"
"""The recorder notifies on its events table's name."""


class Commits:
    """A listening connection's notifications, one wait at a time."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def wait(self, seconds: float) -> None:
        """Return at the next commit, or after `seconds` without one."""
        async for _ in self._conn.notifies(timeout=seconds, stop_after=1):
            break


@asynccontextmanager
async def listen_for_commits(url: str) -> AsyncIterator[Commits]:
    """A connection of its own (a pooled one would hand its notifications to others)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'LISTEN "{CHANNEL}"')
        yield Commits(conn)
