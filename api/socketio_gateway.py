"""Socket.IO at `/socket.io`: a second door onto the live feed, for the frontend's pages.

The plain `/ws` (api/ws.py) stays the documented protocol. This door speaks the original
platform's Socket.IO dialect (contract section 4) on the API's port: it hears every message
the process's RoomHub publishes (one tap; the hub is fed from NATS, so events written by any
process reach every client, and python-socketio's in-process manager is all it needs) and
re-emits those that a Socket.IO client's room asks for (api/socketio_messages.py). The tap
only queues (the hub never waits); one task per process encodes each message once and puts it
in every member's engine.io send queue, drained by that connection's own writer, so a slow
client stalls nobody; one that lets its queue reach `CLIENT_QUEUE_LIMIT` is disconnected, as
on `/ws`.

Client events: room membership, harmless acknowledgements, and the session commands, which
run exactly as the HTTP routes run them (`SESSION_COMMANDS`). Every payload is checked; a bad
one gets an `error` event naming the field, never a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID, uuid4

import msgspec
import socketio
from engineio import packet as eio_packet
from litestar import asgi
from litestar.config.cors import CORSConfig
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send
from socketio import packet as sio_packet

from api.auth import Authenticator, TooManyFailures, Unauthenticated, client_address
from api.errors import status_of
from api.policy import socket_io_refusal
from api.services import Services
from api.session_lifecycle import change_session
from api.socketio_messages import Outgoing, client_room, socketio_room, translate
from api.test_sessions import load_session
from domain.access import Principal, anonymous
from domain.errors import DomainError, NotFound
from domain.events import EventMeta
from domain.limits import Identifier
from domain.test_sessions import Move
from projections.service import ReadSideTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")

NAMESPACE = "/"
OUTBOX_LIMIT = 10_000
"""Messages waiting to be emitted; beyond it the oldest are dropped (counted in `dropped`)."""
BURST = 64
"""Messages delivered before the pump lets the loop run other work."""
CLIENT_QUEUE_LIMIT = 1000
"""Packets waiting for one client; a client this far behind is disconnected."""
POLL_BATCH = 16
"""Packets one long-polling response carries at most: python-engineio's client refuses a
payload of more (`engineio.payload.Payload.max_decode_packets`, 16) and drops the connection;
socket.io-client has no limit, so this costs it only a few more polls in a burst."""
MAX_ROOMS = 64
"""Rooms one client may be in (its own sid room included)."""
MAX_MESSAGE_BYTES = 64 * 1024
"""Largest message a client may send; every client event is a few ids."""

SESSION_COMMANDS: dict[str, Move] = {
    "start_test_session": Move.START,
    "stop_test_session": Move.STOP,
    "pause_test_session": Move.PAUSE,
    "resume_test_session": Move.RESUME,
}
"""Socket.IO session command -> the move its HTTP route makes, through the same function
(api/session_lifecycle.py `change_session`); the reply is the session as GET shows it."""

_NOT_FOUND_FIELDS = {"Test session": "sessionId", "Project": "projectId"}
_FIELD_IN_ERROR = re.compile(r"(?:at `\$\.|missing required field `)([A-Za-z_]+)")


class SessionIn(msgspec.Struct, kw_only=True):
    """`{sessionId, projectId}` as the pages send it, or the original's snake_case."""

    session_id: UUID | None = msgspec.field(default=None, name="sessionId")
    session_id_snake: UUID | None = msgspec.field(default=None, name="session_id")
    project_id: UUID | None = msgspec.field(default=None, name="projectId")
    project_id_snake: UUID | None = msgspec.field(default=None, name="project_id")
    video_id: UUID | None = msgspec.field(default=None, name="videoId")
    video_id_snake: UUID | None = msgspec.field(default=None, name="video_id")


class RoomIn(msgspec.Struct, kw_only=True):
    room: Annotated[str, msgspec.Meta(max_length=64)]


class AnnotationProgressIn(msgspec.Struct, kw_only=True):
    """Checked and acknowledged; progress itself is recorded over HTTP."""

    video_id: UUID | None = None
    current_frame: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] | None = None
    total_frames: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] | None = None
    annotations_count: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | None = None
    validated_count: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | None = None
    annotator: Identifier | None = None


class VideoTimeIn(msgspec.Struct, kw_only=True):
    session_id: UUID | None = msgspec.field(default=None, name="sessionId")
    current_time: Annotated[float, msgspec.Meta(ge=0, le=1e7)] | None = msgspec.field(
        default=None, name="currentTime"
    )
    frame_number: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] | None = msgspec.field(
        default=None, name="frameNumber"
    )


CLOSE_ALL_TIMEOUT_S = 2.0
"""How long a stopping process waits for its Socket.IO clients to take their close."""


class SendQueue(asyncio.Queue[Any]):
    """One connection's engine.io send queue, which hands out at most `POLL_BATCH` packets
    per wait: engine.io's `poll` takes one with `get` and then all the rest with `get_nowait`
    into one long-polling response (its websocket writer also polls, and then sends the
    packets one by one, so there the cap only means another turn of its loop). What is left
    goes in the next response, in order. A `get_nowait` that stops at the cap raises
    `QueueEmpty`, which `poll` reads as the end of the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batch = 0

    async def get(self) -> Any:
        self.batch = 0  # asyncio.Queue.get ends with get_nowait: that is the batch's first
        return await super().get()

    def get_nowait(self) -> Any:
        if self.batch >= POLL_BATCH:
            raise asyncio.QueueEmpty
        item = super().get_nowait()
        self.batch += 1
        return item


class Refused(Exception):
    """A client event that cannot be done; becomes the `error` event."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field


def _parse(data: Any, kind: type[T]) -> T:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Refused(422, "payload: expected an object", "payload")
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as err:
        found = _FIELD_IN_ERROR.search(str(err))
        field = found.group(1) if found else "payload"
        raise Refused(422, f"{field}: {err}", field) from None


def _one(camel: T | None, snake: T | None, field: str) -> T | None:
    if camel is not None and snake is not None and camel != snake:
        raise Refused(422, f"{field}: camelCase and snake_case values differ", field)
    return camel if camel is not None else snake


def _refusal(exc: DomainError) -> Refused:
    """A command's domain error as HTTP would answer it, with the field it concerns."""
    kind = exc.kind if isinstance(exc, NotFound) else ""
    field = getattr(exc, "field", None) or _NOT_FOUND_FIELDS.get(kind)
    named = field is None or exc.detail.startswith(field)
    return Refused(status_of(exc), exc.detail if named else f"{field}: {exc.detail}", field)


class SocketIOGateway:
    """The Socket.IO server of one API process; `attach` it to the process's services."""

    def __init__(self, cors: CORSConfig, authenticator: Authenticator) -> None:
        """`cors`: the HTTP API's own CORS settings, so both doors admit the same origins;
        `authenticator`: the HTTP API's, for a token sent in the connect packet."""
        self.authenticator = authenticator
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            cors_allowed_origins=list(cors.allow_origins),
            cors_credentials=cors.allow_credentials,
            always_connect=False,  # a refused connect is a connect_error, not connect+disconnect
            max_http_buffer_size=MAX_MESSAGE_BYTES,
            logger=False,
            engineio_logger=False,
        )
        # engine.io builds each connection's queue with its public `create_queue`
        self.sio.eio.create_queue = SendQueue
        self.services: Services | None = None
        self.outbox: deque[tuple[str, bytes]] = deque()
        self.wake = asyncio.Event()
        self.pump: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None
        self.dropped = 0
        self.emitted = 0
        self.shedding: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.principals: dict[str, Principal] = {}
        """Who each connection is (found at `connect`); every event is checked against it."""
        self._register()

    # --- composition ----------------------------------------------------------------------

    def route(self) -> ASGIRouteHandler:
        """The Litestar mount that hands `/socket.io` traffic to python-socketio."""
        engine = socketio.ASGIApp(self.sio, socketio_path=None)

        @asgi("/socket.io", is_mount=True, copy_scope=True, opt={"operation_id": "socketio"})
        async def socketio_door(scope: Scope, receive: Receive, send: Send) -> None:
            await engine(scope, receive, send)

        return socketio_door

    def attach(self, services: Services) -> None:
        self.services = services
        services.hub.add_tap(self.tap)
        self.pump = asyncio.create_task(self._pump())
        if services.stopping is not None:
            self.closer = asyncio.create_task(self._close_all_on(services.stopping))

    async def detach(self) -> None:
        for task in (self.pump, self.closer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.sio.shutdown()
        self.services = None

    async def _close_all_on(self, stopping: asyncio.Event) -> None:
        """When the process stops, close every connection: a long-poll request is otherwise
        held open by engine.io until its ping timeout (45 s), and the server's stop waits for
        open requests. Clients get engine.io's close and reconnect to another process."""
        await stopping.wait()
        if self.sio.eio.sockets:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sio.eio.disconnect(), CLOSE_ALL_TIMEOUT_S)

    # --- from the hub to the clients ------------------------------------------------------

    def _listened(self, room: str) -> bool:
        return bool(self.sio.manager.rooms.get(NAMESPACE, {}).get(room))

    def tap(self, hub_room: str, message: bytes) -> None:
        """Called by the hub for every message: queue it if a Socket.IO client listens."""
        if not self._listened(socketio_room(hub_room)):
            return
        if len(self.outbox) >= OUTBOX_LIMIT:
            self.outbox.popleft()
            self.dropped += 1
        self.outbox.append((hub_room, message))
        self.wake.set()

    async def _pump(self) -> None:
        """Delivers what is queued in bursts of up to `BURST` messages: each member's writer
        then wakes once per burst, not once per message (the cost that grows with members)."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox:
                for _ in range(min(BURST, len(self.outbox))):
                    hub_room, message = self.outbox.popleft()
                    try:
                        out = translate(hub_room, message)
                        if out is not None:
                            self._deliver(out)
                    except Exception:  # one bad message must not stop the others
                        log.exception("cannot emit a message for room %s", hub_room)
                await asyncio.sleep(0)  # a long backlog must not hold the loop

    def _deliver(self, out: Outgoing) -> None:
        """What `AsyncServer.emit` to a room does, encoding once, without its task per member:
        the packet goes straight into each member's engine.io send queue, which that
        connection's own writer drains. A member whose queue is full is disconnected."""
        encoded = self.sio.packet_class(
            sio_packet.EVENT, namespace=NAMESPACE, data=[out.event, out.data]
        ).encode()
        engine_packet = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        for sid, eio_sid in self.sio.manager.get_participants(NAMESPACE, out.room):
            socket = self.sio.eio.sockets.get(eio_sid)
            if socket is None or socket.closed:
                continue
            if socket.queue.qsize() >= CLIENT_QUEUE_LIMIT:
                self._shed(sid)
                continue
            socket.queue.put_nowait(engine_packet)
        self.emitted += 1

    def _shed(self, sid: str) -> None:
        if sid not in self.shedding:
            log.warning("disconnecting Socket.IO client %s: too slow to drain", sid)
            self.shedding.add(sid)
            task = asyncio.create_task(self.sio.disconnect(sid))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    # --- from the clients -----------------------------------------------------------------

    def _register(self) -> None:
        on = self.sio.on
        on("connect", self._connect)
        on("disconnect", self._disconnect)
        on("*", self._unknown)
        on("join_room", self._guarded("join_room", self._join_room))
        on("leave_room", self._guarded("leave_room", self._leave_room))
        on("join_test_session", self._guarded("join_test_session", self._join_test_session))
        for name in ("join_dashboard", "subscribe_dashboard_updates"):
            on(name, self._guarded(name, self._join_dashboard))
        on(
            "unsubscribe_dashboard_updates",
            self._guarded("unsubscribe_dashboard_updates", self._leave_dashboard),
        )
        on(
            "join_annotation_session",
            self._guarded("join_annotation_session", self._join_annotation_session),
        )
        on("annotation_progress", self._guarded("annotation_progress", self._annotation_progress))
        on("video_time_update", self._guarded("video_time_update", self._video_time))
        on("ping", self._guarded("ping", self._ping))
        for name in SESSION_COMMANDS:
            on(name, self._guarded(name, self._session_command(name)))

    async def _connect(self, sid: str, environ: Any, auth: Any = None) -> None:
        """Who the client is: `auth.token` when the connect packet carries one, else the
        principal the HTTP authentication found for the handshake (header or anonymous)."""
        scope = environ.get("asgi.scope", {})
        principal = scope.get("user")
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            if isinstance(token, str) and token:
                principal = await self.authenticator.authenticate({}, token, client_address(scope))
        except (Unauthenticated, TooManyFailures) as err:
            raise socketio.exceptions.ConnectionRefusedError(str(err)) from None
        if not isinstance(principal, Principal):
            principal = anonymous(None)
        refusal = socket_io_refusal(principal, "connect")
        if refusal is not None:
            raise socketio.exceptions.ConnectionRefusedError(refusal)
        self.principals[sid] = principal
        task = asyncio.create_task(self._greet(sid))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _greet(self, sid: str) -> None:
        """`connection_status` once the connection is accepted (after `connect` returns):
        a client hearing an event before its connect acknowledgement would drop it."""
        for _ in range(200):
            if self.sio.manager.is_connected(sid, NAMESPACE):
                await self.sio.emit(
                    "connection_status",
                    {"status": "connected", "message": "Connected to Verity", "sid": sid},
                    to=sid,
                )
                return
            await asyncio.sleep(0.01)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        self.shedding.discard(sid)
        self.principals.pop(sid, None)

    async def _unknown(self, event: Any, sid: str, *args: Any) -> dict[str, Any]:
        name = str(event)[:64]
        return await self._error(sid, name, Refused(400, f"event: unknown event {name!r}", "event"))

    def _guarded(self, event: str, handler: Callable[[str, Any], Any]) -> Callable[..., Any]:
        """`handler(sid, payload)` with its refusal sent as `error`; the ack is its result."""

        async def run(sid: str, *args: Any) -> Any:
            principal = self.principals.get(sid, anonymous(None))
            refusal = socket_io_refusal(principal, event)
            if refusal is not None:
                status = 403 if principal.authenticated else 401
                return await self._error(sid, event, Refused(status, refusal))
            try:
                return await handler(sid, args[0] if args else None)
            except Refused as refused:
                return await self._error(sid, event, refused)
            except DomainError as exc:
                return await self._error(sid, event, _refusal(exc))
            except Exception:
                log.exception("Socket.IO event %s failed", event)
                return await self._error(sid, event, Refused(500, "Internal server error"))

        return run

    async def _error(self, sid: str, event: str, refused: Refused) -> dict[str, Any]:
        body = {
            "event": event,
            "status": refused.status,
            "detail": refused.detail,
            "message": refused.detail,
            **({"field": refused.field} if refused.field else {}),
        }
        await self.sio.emit("error", body, to=sid)
        return body

    async def _enter(self, sid: str, room: str) -> None:
        if room not in self.sio.rooms(sid) and len(self.sio.rooms(sid)) >= MAX_ROOMS:
            raise Refused(429, f"room: at most {MAX_ROOMS - 1} rooms per connection", "room")
        await self.sio.enter_room(sid, room)

    async def _join_room(self, sid: str, data: Any) -> dict[str, Any]:
        room = client_room(_parse(data, RoomIn).room)
        if room is None:
            raise Refused(
                422,
                "room: expected 'dashboard' or '<project|video|test_session|annotation_session"
                "|annotation>_<uuid>'",
                "room",
            )
        await self._enter(sid, room)
        await self.sio.emit("room_joined", {"room": room}, to=sid)
        return {"room": room}

    async def _leave_room(self, sid: str, data: Any) -> dict[str, Any]:
        room = client_room(_parse(data, RoomIn).room)
        if room is None:
            raise Refused(422, "room: not a room name", "room")
        await self.sio.leave_room(sid, room)
        await self.sio.emit("room_left", {"room": room}, to=sid)
        return {"room": room}

    async def _join_test_session(self, sid: str, data: Any) -> dict[str, Any]:
        ref = _parse(data, SessionIn)
        session_id = _one(ref.session_id, ref.session_id_snake, "sessionId")
        if session_id is None:
            raise Refused(422, "sessionId: field is required", "sessionId")
        room = socketio_room(f"test_session:{session_id}")
        await self._enter(sid, room)
        body = {"sessionId": str(session_id), "session_id": str(session_id), "room": room}
        await self.sio.emit("test_session_joined", body, to=sid)
        return body

    async def _join_dashboard(self, sid: str, data: Any) -> dict[str, Any]:
        await self._enter(sid, "dashboard")
        body = {"room": "dashboard", "status": "joined"}
        await self.sio.emit("dashboard_joined", body, to=sid)
        return body

    async def _leave_dashboard(self, sid: str, data: Any) -> dict[str, Any]:
        await self.sio.leave_room(sid, "dashboard")
        return {"room": "dashboard", "status": "left"}

    async def _join_annotation_session(self, sid: str, data: Any) -> dict[str, Any]:
        ref = _parse(data, SessionIn)
        session_id = _one(ref.session_id, ref.session_id_snake, "sessionId")
        video_id = _one(ref.video_id, ref.video_id_snake, "videoId")
        if session_id is None and video_id is None:
            raise Refused(422, "sessionId: sessionId or videoId is required", "sessionId")
        rooms = [f"annotation_session_{session_id}"] if session_id else []
        rooms += [f"video_{video_id}"] if video_id else []
        for room in rooms:
            await self._enter(sid, room)
        body = {"rooms": rooms, "status": "joined"}
        await self.sio.emit("annotation_session_joined", body, to=sid)
        return body

    async def _annotation_progress(self, sid: str, data: Any) -> dict[str, Any]:
        _parse(data, AnnotationProgressIn)
        return {"status": "received"}

    async def _video_time(self, sid: str, data: Any) -> dict[str, Any]:
        _parse(data, VideoTimeIn)
        return {"status": "received"}

    async def _ping(self, sid: str, data: Any) -> dict[str, Any]:
        await self.sio.emit("pong", {}, to=sid)
        return {}

    def _session_command(self, event: str) -> Callable[[str, Any], Any]:
        async def run(sid: str, data: Any) -> dict[str, Any]:
            ref = _parse(data, SessionIn)
            session_id = _one(ref.session_id, ref.session_id_snake, "sessionId")
            project_id = _one(ref.project_id, ref.project_id_snake, "projectId")
            if session_id is None:
                raise Refused(422, "sessionId: field is required", "sessionId")
            services = self._services()
            row = await load_session(services, session_id)
            if project_id is not None and project_id != row.project_id:
                raise Refused(
                    422, f"projectId: the session belongs to project {row.project_id}", "projectId"
                )
            # in the room before the move, so its test_session_update reaches this client
            await self._enter(sid, socketio_room(f"test_session:{session_id}"))
            actor = self.principals.get(sid, anonymous(None)).actor
            meta = EventMeta(actor=actor, correlation_id=(rid := uuid4()), causation_id=rid)
            try:
                session = await change_session(services, meta, session_id, SESSION_COMMANDS[event])
            except ReadSideTimeout as late:
                return {"status": 202, "detail": f"Stored at position {late.position}"}
            reply: dict[str, Any] = msgspec.to_builtins(session)
            return reply

        return run

    def _services(self) -> Services:
        if self.services is None:
            raise Refused(503, "the API is starting; try again")
        return self.services
