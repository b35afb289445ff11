"""A continuous pull from a durable JetStream consumer: messages are handed over as they arrive.

nats-py's `PullSubscription.fetch` waits for each message with its own timeout and, once one
has come, lingers until the fetch's timeout for more; at a few thousand messages a second that
added ~10 ms before a frame reached the ingest, and a wait and a timer per message. Here one
pull request for as many messages as there is room for stays open on the server; every message
it delivers goes straight into the holder from the subscription's callback. A new request is
sent when the last one is used up or ends (expired, or refused with a status), so the server
never holds more for this worker than the holder has room for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

log = logging.getLogger(__name__)

_HEARTBEAT = "100"
"""Idle heartbeat: the request is alive; nothing to do."""
_REFUSED = "409"
"""The server would not (or no longer) serve the request, e.g. too many waiting requests."""


class Held:
    """Messages delivered and not yet taken for processing, at most `limit` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._msgs: list[Msg] = []
        self._filled = asyncio.Event()
        self._emptied = asyncio.Event()
        self._emptied.set()

    def __len__(self) -> int:
        return len(self._msgs)

    async def room(self) -> int:
        """How many more may be requested; waits while the held batch is full."""
        while len(self._msgs) >= self.limit:
            self._emptied.clear()
            await self._emptied.wait()
        return self.limit - len(self._msgs)

    def put(self, msgs: list[Msg]) -> None:
        if msgs:
            self._msgs.extend(msgs)
            self._filled.set()

    async def take(self) -> list[Msg]:
        """Everything held, once there is something."""
        await self._filled.wait()
        return self.drain()

    def drain(self) -> list[Msg]:
        msgs, self._msgs = self._msgs, []
        self._filled.clear()
        self._emptied.set()
        return msgs


class PullPump:
    def __init__(
        self,
        nc: NatsClient,
        *,
        api_prefix: str,
        stream: str,
        durable: str,
        holder: Held,
        expires: float = 0.5,
        refused_pause: float = 0.5,
    ) -> None:
        self.nc = nc
        self.next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.holder = holder
        self.expires = expires
        """Seconds one pull request stays open on an idle stream (then the server ends it)."""
        self.refused_pause = refused_pause
        self.requests = 0
        self._owed = 0
        """Messages the open request may still deliver."""
        self._ended = asyncio.Event()
        self._refused: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a pull request open until `stop`; the caller cancels this task to stop."""
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, cb=self._on_msg, pending_msgs_limit=1_000_000)
        try:
            while not stop.is_set():
                room = await self.holder.room()
                await self._request(inbox, room)
                # Over when used up, refused, or expired. The expiry is timed here too: a
                # request that delivered some messages can expire without a status message,
                # and a reconnect loses open requests without a word.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ended.wait(), self.expires)
                if self._refused is not None:
                    log.warning("pull request refused: %s", self._refused)
                    await asyncio.sleep(self.refused_pause)
        finally:
            with contextlib.suppress(Exception):  # the connection may already be closing
                await sub.unsubscribe()

    async def _request(self, inbox: str, room: int) -> None:
        self._owed = room
        self._refused = None
        self._ended.clear()
        body = {"batch": room, "expires": int(self.expires * 1e9)}
        self.requests += 1
        try:
            await self.nc.publish(self.next_subject, json.dumps(body).encode(), reply=inbox)
        except Exception as err:  # NATS reconnecting: try again shortly
            self._refused = f"{type(err).__name__}: {err}"
            self._ended.set()

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is None:
            self.holder.put([msg])
            self._owed -= 1
            if self._owed <= 0:
                self._ended.set()
            return
        if status == _HEARTBEAT:
            return
        # 408 request expired, 404 nothing (no_wait), 409 e.g. too many waiting requests or
        # a leader change: the request is over either way; only 409s are worth a pause.
        if status == _REFUSED:
            self._refused = f"{status} {headers.get('Description', '')}"
        self._ended.set()
