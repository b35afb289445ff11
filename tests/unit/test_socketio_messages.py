"""The Socket.IO door's translation of hub messages and its checks of client payloads."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import uuid4

import msgspec
import pytest
from litestar.config.cors import CORSConfig

from api.auth import Authenticator
from api.socketio_gateway import (
    CLIENT_QUEUE_LIMIT,
    MAX_ROOMS,
    AnnotationProgressIn,
    Refused,
    SessionIn,
    SocketIOGateway,
    _one,
    _parse,
    _refusal,
)
from api.socketio_messages import client_room, socketio_room, translate
from commands.device_messages import decode_frame
from domain.access import Role
from domain.errors import Conflict, InvalidValue, NotFound
from projections.live_messages import detection_message, encode

pytestmark = pytest.mark.unit

SESSION = uuid4()


def frame_message(detections: list[dict[str, Any]], frames: int = 1, found: int = 0) -> bytes:
    frame = decode_frame(
        msgspec.json.encode(
            {
                "deviceId": "cam",
                "sessionId": str(SESSION),
                "seq": 9,
                "timestamp": 0.9,
                "detections": detections,
            }
        )
    )
    return detection_message(frame, frames=frames, detections=len(detections) + found)


def test_a_detection_event_lifts_the_most_confident_detection_for_the_page() -> None:
    message = frame_message(
        [
            {"classLabel": "cyclist", "confidence": 0.4},
            {"classLabel": "pedestrian", "confidence": 0.9},
            {"classLabel": "scooter"},
        ]
    )
    out = translate(f"test_session:{SESSION}", message)
    assert out is not None
    assert out.event == "detection_event" and out.room == f"test_session_{SESSION}"
    assert out.data["classLabel"] == "pedestrian" and out.data["confidence"] == 0.9
    assert out.data["id"] == f"{SESSION}:cam:9" and out.data["validationResult"] == "PENDING"
    assert out.data["timestamp"] == 0.9 and len(out.data["detections"]) == 3
    assert out.data["sessionId"] == out.data["session_id"] == str(SESSION)


def test_a_message_without_any_detection_is_not_emitted() -> None:
    assert translate(f"test_session:{SESSION}", frame_message([], frames=4)) is None
    folded = translate(f"test_session:{SESSION}", frame_message([], frames=4, found=2))
    assert folded is not None and folded.data["classLabel"] is None
    assert folded.data["coalescedDetections"] == 2


def test_session_updates_carry_id_and_other_events_pass_unchanged() -> None:
    sid = str(SESSION)
    room = f"test_session:{sid}"
    update = translate(
        room, encode("test_session_update", room, {"sessionId": sid, "status": "paused"})
    )
    assert update is not None and update.data == {"id": sid, "sessionId": sid, "status": "paused"}
    body = {"projectId": sid, "name": "p"}
    created = translate("dashboard", encode("project_created", "dashboard", body))
    assert created is not None and created == ("project_created", "dashboard", body)


def test_rooms_in_either_spelling_become_the_originals() -> None:
    sid = str(SESSION)
    assert socketio_room(f"video:{sid}") == f"video_{sid}"
    assert socketio_room("dashboard") == "dashboard"
    assert client_room(f"test_session:{sid.upper()}") == f"test_session_{sid}"
    assert client_room(f"annotation_session_{sid}") == f"annotation_session_{sid}"
    assert client_room("dashboard") == "dashboard"
    for junk in ("test_sessions", f"user_{sid}", f"video_{sid}x", "", None, 7, ["dashboard"]):
        assert client_room(junk) is None, junk
    assert client_room("video_" + "a" * 10_000) is None


def test_payload_checks_name_the_field() -> None:
    sid = uuid4()
    assert _parse({"session_id": str(sid), "events": [1]}, SessionIn).session_id_snake == sid
    assert _parse(None, SessionIn) == SessionIn()
    cases: list[tuple[Any, type[Any], str]] = [
        ("junk", SessionIn, "payload"),
        ([1], SessionIn, "payload"),
        ({"sessionId": "nope"}, SessionIn, "sessionId"),
        ({"projectId": 3}, SessionIn, "projectId"),
        ({"current_frame": -1}, AnnotationProgressIn, "current_frame"),
        ({"annotator": "x" * 10_000}, AnnotationProgressIn, "annotator"),
    ]
    for data, kind, field in cases:
        with pytest.raises(Refused) as refused:
            _parse(data, kind)
        assert refused.value.field == field and refused.value.detail.startswith(f"{field}:")
    with pytest.raises(Refused, match="sessionId: camelCase and snake_case values differ"):
        _one(uuid4(), uuid4(), "sessionId")
    assert _one(sid, sid, "sessionId") == sid and _one(None, sid, "sessionId") == sid


def test_domain_errors_answer_as_http_does() -> None:
    missing = _refusal(NotFound("Test session", uuid4(), "Test session not found"))
    assert (missing.status, missing.field) == (404, "sessionId")
    assert missing.detail == "sessionId: Test session not found"
    illegal = _refusal(Conflict("Cannot stop a test session that is completed"))
    assert (illegal.status, illegal.field) == (409, None)
    assert illegal.detail == "Cannot stop a test session that is completed"
    bad = _refusal(InvalidValue("reason", "reason: must not contain NUL characters"))
    assert (bad.status, bad.field, bad.detail) == (422, "reason", bad.detail)


def _no_pool() -> Any:
    raise AssertionError("no database in these tests")


def _gateway(cors: CORSConfig) -> SocketIOGateway:
    return SocketIOGateway(cors, Authenticator(Role.ADMIN, read_pool=_no_pool))


def test_the_tap_queues_nothing_for_rooms_no_socketio_client_is_in() -> None:
    gateway = _gateway(CORSConfig(allow_origins=["*"]))
    gateway.tap(f"test_session:{SESSION}", frame_message([{"classLabel": "cyclist"}]))
    gateway.tap("dashboard", encode("project_created", "dashboard", {}))
    assert not gateway.outbox and not gateway.wake.is_set()


def test_socketio_admits_the_origins_the_http_api_admits() -> None:
    cors = CORSConfig(allow_origins=["http://frontend.test"], allow_credentials=True)
    engine = _gateway(cors).sio.eio
    assert engine.cors_allowed_origins == ["http://frontend.test"] and engine.cors_credentials


class _EngineSocket:
    """The part of an engine.io connection the door touches: its send queue."""

    def __init__(self, queued: int = 0) -> None:
        self.closed = False
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        for _ in range(queued):
            self.queue.put_nowait(None)


async def test_a_member_too_far_behind_is_disconnected_and_the_others_still_hear() -> None:
    gateway = _gateway(CORSConfig(allow_origins=["*"]))
    room = f"test_session_{SESSION}"
    behind, keeping_up = _EngineSocket(queued=CLIENT_QUEUE_LIMIT), _EngineSocket()
    sids = {}
    for eio_sid, socket in (("slow", behind), ("fast", keeping_up)):
        sids[eio_sid] = await gateway.sio.manager.connect(eio_sid, "/")
        await gateway.sio.manager.enter_room(sids[eio_sid], "/", room)
        gateway.sio.eio.sockets[eio_sid] = socket
    dropped: list[str] = []

    async def disconnect(sid: str) -> None:
        dropped.append(sid)

    gateway.sio.disconnect = disconnect  # type: ignore[method-assign]
    message = frame_message([{"classLabel": "cyclist", "confidence": 0.5}])
    out = translate(f"test_session:{SESSION}", message)
    assert out is not None
    gateway._deliver(out)
    gateway._deliver(out)
    await asyncio.gather(*gateway.tasks)

    assert dropped == [sids["slow"]] and behind.queue.qsize() == CLIENT_QUEUE_LIMIT
    sent = keeping_up.queue.get_nowait()
    assert keeping_up.queue.qsize() == 1
    event, data = json.loads(sent.data[1:])  # a Socket.IO EVENT packet: "2" + [name, data]
    assert sent.data[0] == "2" and event == "detection_event" and data["classLabel"] == "cyclist"


async def test_a_connection_may_be_in_a_bounded_number_of_rooms() -> None:
    gateway = _gateway(CORSConfig(allow_origins=["*"]))
    sid = await gateway.sio.manager.connect("eio", "/")  # in its own sid room already
    rooms = [f"video_{uuid4()}" for _ in range(MAX_ROOMS)]
    for room in rooms[: MAX_ROOMS - 1]:
        await gateway._enter(sid, room)
    await gateway._enter(sid, rooms[0])  # joining a room it is in costs nothing
    with pytest.raises(Refused) as refused:
        await gateway._enter(sid, rooms[-1])
    assert refused.value.status == 429 and refused.value.field == "room"
