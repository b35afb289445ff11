"""Relay: publish every stored event to JetStream, in order, from a tracked position.

The position advances only after JetStream acknowledged the batch. On start the relay also
reads the newest message of the stream and resumes after it, so a crash between the acks and
the position update re-emits nothing, even beyond the stream's dedup window.

Rounds start at most once per `min_interval`: under a stream of commits a round publishes
whatever was stored meanwhile instead of a round per commit, each with its read and position
update; after a quiet spell the first notification is relayed at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import psycopg
from nats.js import JetStreamContext
from psycopg_pool import ConnectionPool

from projections.runner import NotificationReader, ensure_tracking
from workers.envelopes import envelope_of
from workers.streams import ensure_stream, last_msg_id

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        js: JetStreamContext,
        reader: NotificationReader,
        decode: Callable[[Any], Any],
        pool: ConnectionPool[Any],
        listen_url: str,
        stream: str,
        subject_prefix: str,
        batch_size: int = 500,
        min_interval: float = 0.02,
    ) -> None:
        self.js = js
        self.reader = reader
        self.decode = decode
        self.pool = pool
        self.listen_url = listen_url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.batch_size = batch_size
        self.min_interval = min_interval
        self.name = f"relay:{stream}"
        self.position = 0
        self.published = 0
        self.last_error: str | None = None

    async def prepare(self) -> None:
        await ensure_stream(self.js, self.stream, [f"{self.subject_prefix}.>"])
        self.position = await anyio.to_thread.run_sync(self._tracked_position)
        newest = await last_msg_id(self.js, self.stream)
        if newest is not None and newest.isdigit() and int(newest) > self.position:
            log.info("relay resumes after stream's newest message %s", newest)
            await anyio.to_thread.run_sync(self._save_position, int(newest))

    def _tracked_position(self) -> int:
        with self.pool.connection() as conn:
            return ensure_tracking(conn, self.name)

    def _save_position(self, position: int) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE tracking SET position = %s, updated_at = now() WHERE name = %s",
                (position, self.name),
            )
        self.position = position

    def _next_batch(self) -> list[Any]:
        notifications = self.reader.select_notifications(
            self.position, self.batch_size, inclusive_of_start=False
        )
        return list(notifications)

    async def publish_pending(self) -> int:
        """Publish everything after our position; returns how many events went out."""
        total = 0
        while batch := await anyio.to_thread.run_sync(self._next_batch):
            acks = []
            for n in batch:
                subject, headers, payload = envelope_of(self.decode(n), n.id, self.subject_prefix)
                acks.append(await self.js.publish_async(subject, payload, headers=headers))
            await asyncio.gather(*acks)
            await anyio.to_thread.run_sync(self._save_position, batch[-1].id)
            total += len(batch)
            self.published += len(batch)
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set; wakes on the event store's NOTIFY, polls once a second."""
        await self.prepare()
        backoff = 0.1
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.listen_url, autocommit=True
                ) as conn:
                    await conn.execute('LISTEN "verity_events"')
                    started = 0.0
                    while not stop.is_set():
                        await asyncio.sleep(started + self.min_interval - time.monotonic())
                        started = time.monotonic()
                        await self.publish_pending()
                        self.last_error = None
                        backoff = 0.1
                        async for _ in conn.notifies(timeout=1.0, stop_after=1):
                            break
            except asyncio.CancelledError:
                raise
            except Exception as err:  # keep relaying after NATS or database outages
                self.last_error = f"{type(err).__name__}: {err}"
                log.exception("relay failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
