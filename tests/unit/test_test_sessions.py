"""Test-session rules, the device wire format, and frame recording on the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4, uuid5

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.application import Verity
from commands.detections import RecordFrames, frame_recorder
from commands.device_messages import InvalidMessage, decode_frame, frame_schema
from commands.projects import CreateProject, DeleteProject, create_project, delete_project
from commands.test_sessions import (
    HANDLERS,
    ChangeSessionStatus,
    CreateTestSession,
    complete_test_session,
    create_test_session,
    start_test_session,
)
from commands.videos import RegisterUpload, register_upload
from domain.detections import FrameBatch, fast_uuid5, frame_id
from domain.errors import Conflict, InvalidValue, NotFound
from domain.projects import CameraView, Project, SignalType
from domain.test_sessions import (
    LEGACY_STATUS,
    STATUS_AFTER,
    TRANSITIONS,
    Move,
    SessionStatus,
    TestSession,
)
from storage.memory_frames import InMemoryFrameStore

pytestmark = pytest.mark.unit


def session() -> TestSession:
    s: TestSession = TestSession._create(
        TestSession.Created, id=uuid4(), name="s", project_id=uuid4(), video_id=uuid4()
    )
    return s


def test_legal_transitions_and_conflicts_naming_the_status() -> None:
    s = session()
    assert s.status is SessionStatus.PENDING and s.tolerance_ms == 100 and s.iou_threshold == 0.5
    with pytest.raises(Conflict, match=r"Cannot stop .* it is pending"):
        s.stop()
    with pytest.raises(Conflict, match=r"Cannot resume .* it is pending"):
        s.resume()
    s.start()
    with pytest.raises(Conflict, match="it is running"):
        s.start()
    s.pause()
    assert s.status is SessionStatus.PAUSED and s.accepts_detections
    with pytest.raises(Conflict, match=r"Cannot start .* it is paused"):
        s.start()
    s.resume()
    s.stop()  # the frontend's Stop: the run is over and is evaluated
    assert s.status is SessionStatus.COMPLETED and not s.accepts_detections
    for action in (s.start, s.stop, s.pause, s.resume, s.complete, s.fail):
        with pytest.raises(Conflict, match="it is completed"):
            action()
    events = s.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Created",
        "Started",
        "Paused",
        "Resumed",
        "Completed",
    ]
    assert isinstance(events[-1], TestSession.Completed) and events[-1].reason == "stopped"


_MOVES = {
    Move.START: TestSession.start,
    Move.PAUSE: TestSession.pause,
    Move.RESUME: TestSession.resume,
    Move.STOP: TestSession.stop,
    Move.COMPLETE: TestSession.complete,
    Move.FAIL: TestSession.fail,
    Move.DELETE: TestSession.delete,
}
_TO_REACH: dict[SessionStatus, tuple[Move, ...]] = {
    SessionStatus.PENDING: (),
    SessionStatus.RUNNING: (Move.START,),
    SessionStatus.PAUSED: (Move.START, Move.PAUSE),
    SessionStatus.COMPLETED: (Move.COMPLETE,),
    SessionStatus.FAILED: (Move.FAIL,),
    SessionStatus.DELETED: (Move.DELETE,),
}


@pytest.mark.parametrize("move", list(Move))
@pytest.mark.parametrize("status", list(SessionStatus))
def test_the_aggregate_follows_the_transition_table(status: SessionStatus, move: Move) -> None:
    s = session()
    for step in _TO_REACH[status]:
        _MOVES[step](s)
    assert s.status is status
    allowed, after = TRANSITIONS[move]
    if status in allowed:
        _MOVES[move](s)
        assert s.status is after
        assert STATUS_AFTER[type(s.collect_events()[-1]).__name__] is after
    else:
        with pytest.raises(Conflict, match=f"Cannot {move.value} .* it is {status.value}"):
            _MOVES[move](s)
    assert HANDLERS.keys() == TRANSITIONS.keys() == set(Move)


def test_a_stored_stopped_event_still_loads_as_paused() -> None:
    """`Stopped` meant "paused" before pause was its own move; old stores hold such events."""
    app = Verity(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    s = session()
    s.start()
    s._stopped(reason="old pause")  # what `stop()` recorded before
    app.save(s)
    assert app.recorder.select_notifications(1, 10)[-1].topic == (
        "domain.test_sessions:TestSession.Stopped"
    )
    loaded = app.load(TestSession, s.id)
    assert loaded.status is SessionStatus.PAUSED and loaded.accepts_detections
    loaded.resume()
    loaded.stop()
    app.save(loaded)
    assert app.load(TestSession, s.id).status is SessionStatus.COMPLETED
    assert STATUS_AFTER["Stopped"] is SessionStatus.PAUSED


def test_rows_stored_under_the_old_status_names_are_renamed_on_start() -> None:
    sql = (Path(__file__).parents[2] / "migrations" / "0005_test_sessions.sql").read_text()
    assert "-- verity:repeatable" in sql  # re-applied on every start
    for old, new in LEGACY_STATUS.items():
        statement = f"UPDATE rm_test_sessions SET status = '{new.value}' WHERE status = '{old}';"
        assert statement in sql


def test_failed_is_terminal_too() -> None:
    s = session()
    s.fail("camera unplugged")
    assert s.status is SessionStatus.FAILED and not s.accepts_detections
    with pytest.raises(Conflict, match="it is failed"):
        s.start()


WIRE = {
    "deviceId": "cam-1",
    "sessionId": "7c4e3f7e-4a1f-4f1c-9a52-3c0f3e7b9a10",
    "seq": 17,
    "frameNumber": 510,
    "timestamp": 17.0,
    "capturedAt": "2026-11-21T10:00:00.123Z",
    "modelVersion": "yolov8n-vru-3",
    "detections": [
        {
            "classLabel": "pedestrian",
            "confidence": 0.91,
            "box": {"x": 10, "y": 20, "width": 50, "height": 120},
            "trackId": "7",
        },
        {"classLabel": "wheelchair"},
    ],
}


def snake(value: object) -> object:
    if isinstance(value, dict):
        return {
            "".join("_" + c.lower() if c.isupper() else c for c in k): snake(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [snake(v) for v in value]
    return value


def test_wire_format_camel_and_snake_decode_the_same() -> None:
    camel = decode_frame(msgspec.json.encode(WIRE))
    from_snake = decode_frame(msgspec.json.encode(snake(WIRE)))
    assert camel == from_snake
    assert camel.msg_id == f"cam-1:{WIRE['sessionId']}:17"
    assert camel.detections[1].class_label == "wheelchair_user"
    assert camel.detections[0].box is not None and camel.detections[0].box.height == 120
    assert camel.captured_at == datetime(2026, 11, 21, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (b"{oops", "undecodable", None),
        (msgspec.json.encode({**WIRE, "seq": -1}), "invalid", "$.seq"),
        (msgspec.json.encode({**WIRE, "timestamp": -0.5}), "invalid", "$.timestamp"),
        (
            msgspec.json.encode(
                {**WIRE, "detections": [{"classLabel": "pedestrian", "confidence": 2}]}
            ),
            "invalid",
            "$.detections[0].confidence",
        ),
        (msgspec.json.encode({**WIRE, "detections": [{"classLabel": "bus"}]}), "invalid", "bus"),
        (
            msgspec.json.encode({k: v for k, v in WIRE.items() if k != "deviceId"}),
            "invalid",
            "deviceId",
        ),
        (msgspec.json.encode({**WIRE, "deviceId": "a:b"}), "invalid", "$.deviceId"),
    ],
)
def test_bad_messages_say_why(body: bytes, reason: str, field: str | None) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode_frame(body)
    assert caught.value.reason == reason
    if field:
        assert field in caught.value.detail


def test_schema_is_generated_from_the_structs() -> None:
    schema = frame_schema()
    props = schema["$defs"]["FrameMessage"]["properties"]
    assert {"deviceId", "sessionId", "seq", "timestamp", "detections"} <= set(props)
    assert schema["$defs"]["FrameMessage"]["required"] == [
        "deviceId",
        "sessionId",
        "seq",
        "timestamp",
    ]


@given(st.uuids(), st.text(max_size=80))
def test_fast_uuid5_is_the_standard_uuid5_bit_for_bit(namespace: UUID, name: str) -> None:
    """Frame and detection ids stored before the fast path must come out the same after it."""
    fast = fast_uuid5(namespace, name)
    assert (
        fast == uuid5(namespace, name)
        and fast.version == 5
        and str(fast) == str(uuid5(namespace, name))
    )
    assert hash(fast) == hash(uuid5(namespace, name))


@given(st.text(min_size=1, max_size=20).filter(lambda s: ":" not in s), st.integers(0, 2**40))
def test_frame_ids_are_deterministic_and_distinct(device: str, seq: int) -> None:
    sid = uuid4()
    assert frame_id(device, sid, seq) == frame_id(device, sid, seq)
    assert frame_id(device, sid, seq) != frame_id(device, sid, seq + 1)


def test_record_frames_stores_once_and_refuses_closed_sessions() -> None:
    app = Verity(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    project = CreateProject(
        name="p", camera_model="m", camera_view=CameraView.MULTI_ANGLE, signal_type=SignalType.GPIO
    )
    create_project(project, app)
    video = RegisterUpload(
        project_id=project.id, filename="f", original_name="f", size=1, sha256="x", metadata=None
    )
    register_upload(video, app)
    cmd = CreateTestSession(name="s", project_id=project.id, video_id=video.id)
    create_test_session(cmd, app)
    wire = {**WIRE, "sessionId": str(cmd.id)}
    record_frames = frame_recorder(InMemoryFrameStore(app))
    frames = tuple(decode_frame(msgspec.json.encode({**wire, "seq": s})) for s in (1, 2, 2, 3))
    now = datetime.now(UTC)

    first = record_frames(RecordFrames(frames=frames, received_at=now), app)
    assert first.stored == (0, 1, 3) and first.duplicates == (2,) and first.position
    again = record_frames(RecordFrames(frames=frames, received_at=now), app)
    assert again.stored == () and again.duplicates == (0, 1, 2, 3) and again.position is None
    batch = app.repository.get(
        app.recorder.select_notifications(first.position, 1)[0].originator_id
    )
    assert isinstance(batch, FrameBatch) and batch.session_id == cmd.id
    assert [f.seq for f in batch.frames] == [1, 2, 3]
    stored = batch.frames[2]
    assert stored.id == frame_id("cam-1", cmd.id, 3) and stored.video_time == 17.0
    assert stored.detections[1].class_label == "wheelchair_user"

    complete_test_session(ChangeSessionStatus(id=cmd.id), app)
    late = decode_frame(msgspec.json.encode({**wire, "seq": 4}))
    closed = record_frames(RecordFrames(frames=(late,), received_at=now), app)
    assert [r.reason for r in closed.rejected] == ["session_closed"] and closed.stored == ()
    stranger = decode_frame(msgspec.json.encode({**wire, "sessionId": str(uuid4())}))
    unknown = record_frames(RecordFrames(frames=(stranger,), received_at=now), app)
    assert [r.reason for r in unknown.rejected] == ["unknown_session"]


def test_a_session_of_a_deleted_project_cannot_be_started() -> None:
    """Sessions orphaned before deletion was refused for projects with sessions."""
    app = Verity(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    project = CreateProject(
        name="p", camera_model="m", camera_view=CameraView.MULTI_ANGLE, signal_type=SignalType.GPIO
    )
    create_project(project, app)
    video = RegisterUpload(
        project_id=project.id, filename="f", original_name="f", size=1, sha256="x", metadata=None
    )
    register_upload(video, app)
    cmd = CreateTestSession(name="s", project_id=project.id, video_id=video.id)
    create_test_session(cmd, app)
    with pytest.raises(Conflict, match="test session"):
        delete_project(DeleteProject(id=project.id, test_session_ids=(cmd.id,)), app)
    legacy = app.load(Project, project.id)
    legacy.delete()  # as an older version did, sessions or not
    app.commit(legacy)
    with pytest.raises(NotFound, match="was deleted"):
        start_test_session(ChangeSessionStatus(id=cmd.id), app)


def test_create_refuses_bad_settings() -> None:
    app = Verity(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    base = CreateTestSession(name="s", project_id=uuid4(), video_id=uuid4())
    with pytest.raises(InvalidValue, match="name"):
        create_test_session(msgspec.structs.replace(base, name=" "), app)
    with pytest.raises(InvalidValue, match="iouThreshold"):
        create_test_session(msgspec.structs.replace(base, iou_threshold=1.5), app)


def test_simulator_follows_ground_truth_with_noise_and_misses() -> None:
    from workers.device_simulator import Behaviour, TruthBox, frames

    sid = uuid4()
    truth = [TruthBox(i / 10, "cyclist", (100.0 + i, 200.0, 40.0, 80.0), "3") for i in range(100)]
    behaviour = Behaviour(miss_rate=0.2, false_positive_rate=0.0, jitter_px=2.0)
    out = list(frames(sid, "sim", 10, 10, truth, behaviour, seed=1))
    assert [f.seq for f in out] == list(range(100)) and out[5].timestamp == 0.5
    seen = [d for f in out for d in f.detections]
    assert 60 <= len(seen) <= 95  # about 20% missed
    assert all(d.class_label == "cyclist" and d.track_id == "3" for d in seen)
    first = next(f for f in out if f.detections)
    box = first.detections[0].box
    assert box is not None and abs(box.x - (100.0 + first.seq)) < 10 and abs(box.width - 40) < 10
    again = list(frames(sid, "sim", 10, 10, truth, behaviour, seed=1))
    assert again == out  # seeded: reproducible demos and tests


def test_simulator_invents_objects_without_ground_truth() -> None:
    from workers.device_simulator import frames

    out = list(frames(uuid4(), "sim", 30, 1, []))
    assert len(out) == 30 and sum(len(f.detections) for f in out) > 30
    for f in out:
        decode_frame(msgspec.json.encode(f))  # what it publishes is valid on the wire
