"""The WebSocket gateway: clients join rooms and hear the events NATS carries to this process.

Fed from NATS rather than from in-process calls, so an API process sees events written by any
other process (a worker, another API replica).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect

from api.policy import principal_of, room_permission
from api.services import services_of
from domain.access import Principal, may
from projections.envelopes import AnyEnvelope, decoder
from projections.live_messages import LiveHeader, gateway_reply, stored_event_messages

log = logging.getLogger(__name__)

ROOM_PATTERN = re.compile(
    r"^(dashboard|admin|(project|video|test_session|annotation_session|annotation):[0-9a-fA-F-]{36})$"
)
QUEUE_LIMIT = 1000
_envelope_decoder = decoder(dict[str, Any])
_live_decoder = msgspec.json.Decoder(LiveHeader)


class ClientMessage(msgspec.Struct, kw_only=True):
    action: str | None = None
    event: str | None = None
    room: str | None = None
    data: dict[str, Any] | None = None


class Client:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_LIMIT)
        self.rooms: set[str] = set()
        self.overflowed = False


Resolve = Callable[[int], Awaitable[bytes]]
"""The full envelope of the event stored at a position (workers/references.py)."""

Tap = Callable[[str, bytes], None]
"""Hears every message the hub publishes, with its room: a second door onto the same feed
(Socket.IO, the frontend's page sockets) translates from here instead of subscribing twice."""


class RoomHub:
    """Room membership and fan-out; a client too slow to drain its queue is disconnected."""

    def __init__(self, resolve: Resolve | None = None) -> None:
        self.rooms: dict[str, set[Client]] = {}
        self.received = 0
        self.resolve = resolve
        self.taps: list[Tap] = []

    def add_tap(self, tap: Tap) -> None:
        self.taps.append(tap)

    def join(self, client: Client, room: str) -> None:
        client.rooms.add(room)
        self.rooms.setdefault(room, set()).add(client)

    def leave(self, client: Client, room: str) -> None:
        client.rooms.discard(room)
        members = self.rooms.get(room)
        if members is not None:
            members.discard(client)
            if not members:
                del self.rooms[room]

    def drop(self, client: Client) -> None:
        for room in list(client.rooms):
            self.leave(client, room)

    def publish(self, room: str, message: bytes) -> None:
        for tap in self.taps:
            tap(room, message)
        for client in list(self.rooms.get(room, ())):
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                client.overflowed = True
                self.drop(client)
                client.queue.get_nowait()
                client.queue.put_nowait(None)

    def on_live(self, payload: bytes) -> None:
        """A ready WebSocket message from the live subject (not a stored event): pass it on."""
        self.received += 1
        self.publish(_live_decoder.decode(payload).room, payload)

    def on_envelope(self, payload: bytes) -> None:
        self.received += 1
        self._fan_out(_envelope_decoder.decode(payload))

    async def on_stored(self, payload: bytes) -> None:
        """A relayed event; one too large for NATS came as a reference, read from the store."""
        self.received += 1
        envelope = _envelope_decoder.decode(payload)
        if envelope.reference and self.resolve is not None:
            envelope = _envelope_decoder.decode(await self.resolve(envelope.position))
        self._fan_out(envelope)

    def _fan_out(self, envelope: AnyEnvelope) -> None:
        for room, message in stored_event_messages(envelope):
            self.publish(room, message)


def _handle(hub: RoomHub, client: Client, raw: str, principal: Principal) -> str | None:
    try:
        msg = msgspec.json.decode(raw, type=ClientMessage)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        return gateway_reply(
            "error", detail=f"Message is not a JSON object of the expected shape: {err}"
        )
    action = (msg.action or msg.event or "").removesuffix("_room")
    room = msg.room or (msg.data or {}).get("room")
    if action == "ping":
        return gateway_reply("pong")
    if action not in ("join", "leave"):
        return gateway_reply("error", detail=f"Unknown action {action!r}; use join, leave or ping")
    if not isinstance(room, str) or not ROOM_PATTERN.match(room):
        return gateway_reply(
            "error",
            detail="room: expected 'dashboard', 'admin' or '<project|video|test_session|"
            "annotation_session>:<uuid>'",
        )
    if action == "join":
        return _join(hub, client, room, principal)
    hub.leave(client, room)
    return gateway_reply("left", room)


def _join(hub: RoomHub, client: Client, room: str, principal: Principal) -> str:
    """Joined, or refused (an error naming the permission) where the principal may not read."""
    permission = room_permission(room)
    if permission is None or not may(principal, permission):
        needed = permission.value if permission else "a room policy"
        detail = f"{principal.actor} may not join {room}: needs {needed}"
        return gateway_reply("error", room, detail=detail)
    hub.join(client, room)
    return gateway_reply("joined", room)


async def _pump(client: Client, socket: WebSocket[Any, Any, Any]) -> None:
    while (message := await client.queue.get()) is not None:
        await socket.send_data(message.decode(), mode="text")
    await socket.close(code=1013, reason="client too slow; reconnect")


@websocket("/ws", operation_id="websocket")
async def websocket_gateway(socket: WebSocket[Any, Any, Any], state: State) -> None:
    hub: RoomHub = services_of(state).hub
    principal = principal_of(socket)
    await socket.accept()
    client = Client()
    await socket.send_data(gateway_reply("connection_status", status="connected"), mode="text")
    sender = asyncio.create_task(_pump(client, socket))
    try:
        while True:
            raw = await socket.receive_data(mode="text")
            reply = _handle(hub, client, str(raw), principal)
            if reply is not None:
                await socket.send_data(reply, mode="text")
    except WebSocketDisconnect:
        pass
    finally:
        hub.drop(client)
        sender.cancel()
