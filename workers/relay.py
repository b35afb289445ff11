"""Relay: publish every stored event to JetStream, in order, from a tracked position.

The position lives in the `tracking` table (`relay:<stream>`), like the projections', and
advances only after JetStream acknowledged the batch; it never comes from the stream, whose
newest message may belong to another database (a reset, a second store on one NATS). A crash
between the acks and the position update re-publishes that batch: within the stream's dedup
window JetStream drops the repeats (same `<store>:<position>` message id).

No event can stop the relay: one larger than the server's `max_payload`, or one the stream
refuses for good, goes out as a reference (workers/references.py) and the relay moves on.
Transient failures (NATS down, no ack) are retried without skipping anything.

Rounds start at most once per `min_interval`: under a stream of commits a round publishes
whatever was stored meanwhile instead of a round per commit, each with its read and position
update; after a quiet spell the first notification is relayed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import anyio.to_thread
from nats.aio.client import Client as NatsClient
from nats.errors import MaxPayloadError
from nats.js.errors import APIError
from psycopg_pool import ConnectionPool

from projections.envelopes import Envelope, encode, envelope, reference_of
from projections.runner import NotificationReader, ensure_tracking
from storage.commits import listen_for_commits
from storage.store_identity import store_id
from storage.tracking import save_position
from workers.envelopes import MSG_ID, msg_id, subject_of
from workers.references import REFERENCE_HEADER
from workers.store_identity import ForeignStream, description, feeding_store
from workers.streams import ensure_stream

log = logging.getLogger(__name__)

HEADER_ROOM = 1024
"""Bytes kept free under `max_payload` for the headers and protocol line: the server counts
them, and a message over its limit closes the whole connection."""


class _Outgoing:
    __slots__ = ("headers", "payload", "position", "size", "subject")

    def __init__(
        self, position: int, subject: str, headers: dict[str, str], payload: bytes, size: int
    ) -> None:
        self.position = position
        self.subject = subject
        self.headers = headers
        self.payload = payload
        self.size = size
        """Bytes of the full envelope, also when `payload` is its reference."""


def refused_for_good(err: BaseException) -> bool:
    """The broker will never take this message (too large, refused by the stream's limits);
    not a broker that is away (503, timeouts, no stream), which a retry outlasts."""
    if isinstance(err, MaxPayloadError):
        return True
    code = err.code if isinstance(err, APIError) else None
    return code is not None and 400 <= int(code) < 500 and int(code) != 404


class Relay:
    def __init__(
        self,
        nc: NatsClient,
        reader: NotificationReader,
        decode: Callable[[Any], Any],
        pool: ConnectionPool[Any],
        listen_url: str,
        stream: str,
        subject_prefix: str,
        batch_size: int = 500,
        min_interval: float = 0.02,
        *,
        adopt_stream: bool = False,
        ack_timeout: float = 10.0,
        refused_retry: float = 10.0,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.reader = reader
        self.decode = decode
        self.pool = pool
        self.listen_url = listen_url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.batch_size = batch_size
        self.min_interval = min_interval
        self.adopt_stream = adopt_stream
        self.ack_timeout = ack_timeout
        self.refused_retry = refused_retry
        self.name = f"relay:{stream}"
        self.store: UUID | None = None
        self.position = 0
        self.published = 0
        self.referenced = 0
        self.last_error: str | None = None
        self._backoff = 0.1

    async def prepare(self) -> None:
        """Our store id and tracked position; the stream, unless another store feeds it."""
        store = await anyio.to_thread.run_sync(self._store_id)
        owner = await feeding_store(self.js, self.stream)
        if owner is not None and owner != store:
            if not self.adopt_stream:
                raise ForeignStream(self.stream, owner, store)
            log.warning(
                "relay adopts stream %s, fed until now by event store %s (this is store %s)",
                self.stream,
                owner,
                store,
            )
        subjects = [f"{self.subject_prefix}.>"]
        await ensure_stream(self.js, self.stream, subjects, description(store))
        self.position = await anyio.to_thread.run_sync(self._tracked_position)
        self.store = store

    def _store_id(self) -> UUID:
        with self.pool.connection() as conn:
            return store_id(conn)

    def _tracked_position(self) -> int:
        with self.pool.connection() as conn:
            return ensure_tracking(conn, self.name)

    def _save_position(self, position: int) -> None:
        with self.pool.connection() as conn:
            save_position(conn, self.name, position)
        self.position = position

    def _next_batch(self) -> list[Any]:
        notifications = self.reader.select_notifications(
            self.position, self.batch_size, inclusive_of_start=False
        )
        return list(notifications)

    def _outgoing(self, notification: Any) -> _Outgoing:
        """The event's envelope, or its reference when the server could not take it."""
        assert self.store is not None
        position = notification.id
        env = envelope(self.decode(notification), position)
        headers = {MSG_ID: msg_id(self.store, position)}
        payload = encode(env)
        size = len(payload)
        if size + HEADER_ROOM > self.nc.max_payload:
            reason = f"{size} bytes; the server's max_payload is {self.nc.max_payload}"
            payload = self._refer(env, headers, size, reason)
        return _Outgoing(position, subject_of(env, self.subject_prefix), headers, payload, size)

    def _refer(self, env: Envelope[Any], headers: dict[str, str], size: int, reason: str) -> bytes:
        log.warning(
            "event at position %d (%s.%s) relayed as a reference: %s",
            env.position,
            env.aggregate,
            env.type,
            reason,
        )
        self.referenced += 1
        headers[REFERENCE_HEADER] = "true"
        return reference_of(env, size, reason)

    async def _publish_batch(self, batch: list[Any]) -> None:
        """All at once, acks gathered; if any is missing, the batch again one by one."""
        acks = []
        for n in batch:  # encoded as they go out: a batch's payloads are not all held at once
            out = self._outgoing(n)
            acks.append(await self.js.publish_async(out.subject, out.payload, headers=out.headers))
        try:
            # nats-py never resolves the ack future of a refused message (its reply handler
            # raises instead): a refusal looks like a missing ack here.
            await asyncio.wait_for(asyncio.gather(*acks), self.ack_timeout)
        except (APIError, TimeoutError) as err:
            log.info("batch not acknowledged whole (%s); publishing it one by one", err)
            for ack in acks:
                ack.cancel()
            for n in batch:
                await self._publish_one(n)

    async def _publish_one(self, notification: Any) -> None:
        """Repeats of what already arrived are dropped by JetStream (same message id)."""
        out = self._outgoing(notification)
        try:
            await self.js.publish(
                out.subject, out.payload, timeout=self.ack_timeout, headers=out.headers
            )
        except (APIError, MaxPayloadError) as err:
            if not refused_for_good(err) or REFERENCE_HEADER in out.headers:
                raise
            env = envelope(self.decode(notification), notification.id)
            out.payload = self._refer(env, out.headers, out.size, f"refused by the stream: {err}")
            await self.js.publish(
                out.subject, out.payload, timeout=self.ack_timeout, headers=out.headers
            )

    async def publish_pending(self) -> int:
        """Publish everything after our position; returns how many events went out."""
        total = 0
        while batch := await anyio.to_thread.run_sync(self._next_batch):
            await self._publish_batch(batch)
            await anyio.to_thread.run_sync(self._save_position, batch[-1].id)
            total += len(batch)
            self.published += len(batch)
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set; wakes on the event store's NOTIFY, polls once a second.

        After any failure the stream is checked again (recreated if it was deleted, refused if
        another store took it over meanwhile)."""
        while not stop.is_set():
            try:
                await self.prepare()
                await self._follow(stop)
            except asyncio.CancelledError:
                raise
            except ForeignStream as err:
                if self.last_error != str(err):
                    log.error("relay refuses to publish: %s", err)
                self.last_error = str(err)
                await self._pause(stop, self.refused_retry)
            except Exception as err:  # keep relaying after NATS or database outages
                self.last_error = f"{type(err).__name__}: {err}"
                log.exception("relay failed; retrying in %.1fs", self._backoff)
                await self._pause(stop, self._backoff)
                self._backoff = min(self._backoff * 2, 5.0)

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def _follow(self, stop: asyncio.Event) -> None:
        async with listen_for_commits(self.listen_url) as commits:
            started = 0.0
            while not stop.is_set():
                await asyncio.sleep(started + self.min_interval - time.monotonic())
                started = time.monotonic()
                await self.publish_pending()
                self.last_error = None
                self._backoff = 0.1
                await commits.wait(1.0)
