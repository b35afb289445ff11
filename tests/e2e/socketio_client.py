"""A python-socketio client as the frontend's pages use it (websocket unless told), recording
every event it hears so a test can wait for the next one of a kind."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio


class PageSocket:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.heard: list[tuple[str, Any]] = []
        self.taken: set[int] = set()
        self.changed = asyncio.Event()
        self.sio.on("*", self._any)

    async def _any(self, event: str, *args: Any) -> None:
        self.heard.append((event, args[0] if args else None))
        self.changed.set()

    async def connect(
        self, base_url: str, token: str | None = None, transports: list[str] | None = None
    ) -> PageSocket:
        """`token`: sent as the frontend's client would, in the connect packet's `auth`;
        `transports`: websocket only unless given (`["polling"]`, or None's default upgrade
        path as `["polling", "websocket"]`)."""
        auth = {"token": token} if token else None
        await self.sio.connect(
            base_url, transports=transports or ["websocket"], wait_timeout=10, auth=auth
        )
        return self

    async def close(self) -> None:
        await self.sio.disconnect()

    async def next(self, name: str, wait: float = 10.0, **data: Any) -> Any:
        """The oldest event `name` not returned yet whose payload has the given items."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            for i, (event, payload) in enumerate(self.heard):
                if i in self.taken or event != name:
                    continue
                if all(isinstance(payload, dict) and payload.get(k) == v for k, v in data.items()):
                    self.taken.add(i)
                    return payload
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                seen = [e for e, _ in self.heard]
                raise AssertionError(f"no {name} {data} within {wait}s; heard {seen}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def call(self, event: str, data: Any = None) -> Any:
        """Emit with an acknowledgement: what the server's handler returned."""
        return await self.sio.call(event, data, timeout=30)
