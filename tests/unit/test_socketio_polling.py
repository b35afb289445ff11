"""A burst of room events reaches Socket.IO clients on every transport: long-polling ones get
it in responses of at most `POLL_BATCH` packets (python-engineio's client drops a connection
whose poll brings more), and one upgrading to WebSocket mid-burst loses and repeats none."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import httpx
import pytest
import socketio
import uvicorn
import websockets
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.types import ASGIApp, Receive, Scope, Send

from api.auth import Authenticator
from api.socketio_gateway import POLL_BATCH, SocketIOGateway
from api.ws import RoomHub
from domain.access import Principal, Role, service
from projections.live_messages import encode

pytestmark = pytest.mark.unit

MESSAGES = 50
"""Published in one go: far more than one long-polling response may carry."""


def _no_pool() -> Any:
    raise AssertionError("no database in these tests")


def _as(principal: Principal, app: ASGIApp) -> ASGIApp:
    async def authenticated(scope: Scope, receive: Receive, send: Send) -> None:
        scope["user"] = principal
        await app(scope, receive, send)

    return authenticated


@asynccontextmanager
async def gateway_served() -> AsyncIterator[tuple[str, RoomHub]]:
    """The gateway alone on uvicorn, fed by a hub the test publishes to."""
    hub = RoomHub()
    cors = CORSConfig(allow_origins=["*"])
    gateway = SocketIOGateway(cors, Authenticator(Role.ADMIN, read_pool=_no_pool))
    gateway.attach(SimpleNamespace(hub=hub, stopping=None))  # type: ignore[arg-type]
    app = _as(service("test"), Litestar([gateway.route()]))
    # a long-poll still open at the end (engine.io answers it after up to 45 s) is cut short
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", hub
    finally:
        server.should_exit = True
        await serving
        await gateway.detach()


def publish(hub: RoomHub, session: str, numbers: range) -> None:
    room = f"test_session:{session}"
    for n in numbers:
        hub.publish(room, encode("test_progress", room, {"sessionId": session, "n": n}))


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_a_burst_reaches_a_client_on_each_transport_in_order(transports: list[str]) -> None:
    async with gateway_served() as (base, hub):
        session, heard = str(uuid4()), []
        done = asyncio.Event()
        client = socketio.AsyncClient(reconnection=False)

        def on_progress(data: dict[str, Any]) -> None:
            heard.append(data["n"])
            if len(heard) == MESSAGES:
                done.set()

        client.on("test_progress", on_progress)
        await client.connect(base, transports=transports, wait_timeout=10)
        try:
            await client.call("join_test_session", {"sessionId": session}, timeout=10)
            publish(hub, session, range(MESSAGES))
            await asyncio.wait_for(done.wait(), 10)
            assert heard == list(range(MESSAGES))
            assert client.connected and client.transport() == transports[-1]
        finally:
            # without waiting for its open long-poll, which the server ends only at its timeout
            await client.eio.disconnect(abort=True)


def _packets(payload: str) -> list[str]:
    return payload.split("\x1e") if payload else []


def _progress(packets: list[str]) -> list[int]:
    """The `n` of each `test_progress` among engine.io packets (socket.io EVENTs: `42[...]`)."""
    events = [json.loads(p[2:]) for p in packets if p.startswith("42")]
    return [data["n"] for name, data in events if name == "test_progress"]


async def test_an_upgrade_mid_burst_loses_and_repeats_nothing() -> None:
    """The upgrade as socket.io-client makes it: connected and in the room over polling,
    it probes a WebSocket while events are queued and still arriving, lets its last poll
    finish, then upgrades; every event arrives once, in order, over one or the other."""
    async with (
        gateway_served() as (base, hub),
        httpx.AsyncClient(base_url=f"{base}/socket.io/", timeout=10) as http,
    ):
        query = {"EIO": "4", "transport": "polling"}
        opened = json.loads(_packets((await http.get("", params=query)).text)[0][1:])
        query["sid"] = opened["sid"]

        async def poll() -> list[str]:
            packets = _packets((await http.get("", params=query)).text)
            assert len(packets) <= POLL_BATCH, "more than python-engineio's client accepts"
            return packets

        async def post(*packets: str) -> None:
            assert (
                await http.post("", params=query, content="\x1e".join(packets))
            ).status_code == 200

        await post("40")
        while not any(p.startswith("40") for p in await poll()):
            pass
        session = str(uuid4())
        await post("421" + json.dumps(["join_test_session", {"sessionId": session}]))
        while not any(p.startswith("431") for p in await poll()):
            pass

        heard: list[int] = []
        publish(hub, session, range(20))
        heard += _progress(await poll())  # one poll of the queued burst
        ws_url = base.replace("http", "ws", 1) + "/socket.io/"
        async with websockets.connect(
            f"{ws_url}?EIO=4&transport=websocket&sid={query['sid']}"
        ) as ws:
            await ws.send("2probe")
            assert await ws.recv() == "3probe"
            publish(hub, session, range(20, 40))  # during the upgrade
            await asyncio.sleep(0.1)
            heard += _progress(await poll())  # the poll in flight when the probe answered
            await ws.send("5")
            publish(hub, session, range(40, MESSAGES))  # after it
            while len(heard) < MESSAGES:
                message = await asyncio.wait_for(ws.recv(), 10)
                heard += _progress([str(message)])
        assert heard == list(range(MESSAGES))
