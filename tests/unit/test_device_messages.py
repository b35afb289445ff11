"""The device decoder is total and lets through only what every later stage can hold.

Whatever bytes arrive, `decode_frame` returns a message or raises InvalidMessage: anything
else would hold the ingest batch it came in (and over HTTP answer 500). What it returns is
inside `domain.limits`, so it can be stored, projected into `integer`/`bigint`/`text`
columns and written back as JSON.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.application import Verity
from commands.detections import RecordFrames, record_frames
from commands.device_messages import FrameMessage, InvalidMessage, decode_frame
from commands.projects import CreateProject, create_project
from commands.test_sessions import CreateTestSession, create_test_session
from commands.videos import RegisterUpload, register_upload
from domain.detections import Box, box_outside_frame
from domain.limits import (
    INT64_MAX,
    MAX_COORDINATE,
    MAX_FRAME_NUMBER,
    MAX_IDENTIFIER,
    MAX_LIST,
    MAX_SECONDS,
)
from domain.projects import CameraView, SignalType
from domain.videos import VideoMetadata
from storage.memory_frames import InMemoryFrameStore

pytestmark = pytest.mark.unit

SESSION = str(uuid4())
VALID: dict[str, Any] = {
    "deviceId": "cam-1",
    "sessionId": SESSION,
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
FIELDS = [*VALID, "frame_number", "device_id", "x", "width", "classLabel", "box", "track_id"]


def decode(data: bytes) -> FrameMessage | None:
    """The message, or None after checking the refusal is an InvalidMessage with a reason."""
    refused: InvalidMessage | None = None
    try:
        return decode_frame(data)
    except InvalidMessage as err:
        refused = err
    assert refused.reason in {"undecodable", "invalid"} and refused.detail
    return None


def control_character_free(value: str) -> bool:
    return not any(ord(c) < 0x20 or c == "\x7f" for c in value)


def _identifier(value: str | None, *, colon: bool = True) -> None:
    if value is None:
        return
    assert 1 <= len(value) <= MAX_IDENTIFIER and control_character_free(value)
    assert colon or ":" not in value


def assert_storable(m: FrameMessage) -> None:
    """Every value inside the ranges its read-model column and JSON can hold."""
    _identifier(m.device_id, colon=False)
    _identifier(m.model_version)
    assert 0 <= m.seq <= INT64_MAX
    assert m.frame_number is None or 0 <= m.frame_number <= MAX_FRAME_NUMBER
    assert math.isfinite(m.timestamp) and 0 <= m.timestamp <= MAX_SECONDS
    assert m.captured_at is None or m.captured_at.tzinfo is UTC
    assert len(m.detections) <= MAX_LIST
    for d in m.detections:
        _identifier(d.track_id)
        assert d.confidence is None or 0 <= d.confidence <= 1
        if d.box is not None:
            b = d.box
            for value in (b.x, b.y, b.width, b.height):
                assert math.isfinite(value) and abs(value) <= MAX_COORDINATE
            assert b.width >= 0 and b.height >= 0
    assert msgspec.json.decode(msgspec.json.encode(m), type=FrameMessage) == m


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "\x00", "a\x00b", "\u2028", "cam:1", SESSION, "pedestrian"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5)
    ),
    max_leaves=20,
)

NASTY_TOKENS = [
    b"1e400",
    b"-1e400",
    b"1e308",
    b"-0",
    b"9223372036854775808",
    b"18446744073709551616",
    b"2147483648",
    b"1" * 400,
    b'"\\u0000"',
    b'"\\ud800"',
    b'"\x80"',
    b'"\xed\xa0\x80"',
    b'"\xc3"',
    b"NaN",
    b"Infinity",
    b"[" * 5000,
    b"{}}",
    b'"a"b',
    b"",
]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_refused_with_a_reason(data: bytes) -> None:
    message = decode(data)
    if message is not None:
        assert_storable(message)


@pytest.mark.parametrize(
    "data",
    [b"1 x", b'"a"b', b'{"a":1}}', b"1e400", b"[" * 100_000, b'{"deviceId": "\x80"}'],
)
def test_the_attackers_payloads_are_undecodable(data: bytes) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode_frame(data)
    assert caught.value.reason == "undecodable"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_decodes_or_is_refused(value: Any) -> None:
    message = decode(msgspec.json.encode(value))
    if message is not None:
        assert_storable(message)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], tuple(rest), new)
    return copy


PATHS = _paths(VALID)[1:]


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), json_values)
def test_a_valid_message_with_any_value_changed_decodes_in_range_or_is_refused(
    path: tuple[Any, ...], value: Any
) -> None:
    message = decode(msgspec.json.encode(_replace(VALID, path, value)))
    if message is not None:
        assert_storable(message)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), st.sampled_from(NASTY_TOKENS) | st.binary(max_size=12))
def test_a_valid_message_with_raw_bytes_spliced_in_decodes_in_range_or_is_refused(
    path: tuple[Any, ...], token: bytes
) -> None:
    marker = "@@MARK@@"
    text = msgspec.json.encode(_replace(VALID, path, marker))
    message = decode(text.replace(f'"{marker}"'.encode(), token))
    if message is not None:
        assert_storable(message)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seq": 2**63}, "$.seq"),
        ({"frameNumber": 2**31}, "$.frameNumber"),
        ({"frameNumber": MAX_FRAME_NUMBER + 1}, "$.frameNumber"),
        ({"timestamp": 1e308}, "$.timestamp"),
        ({"modelVersion": "v\x001"}, "$.modelVersion"),
        ({"modelVersion": "x" * (MAX_IDENTIFIER + 1)}, "$.modelVersion"),
        ({"deviceId": "cam\n1"}, "$.deviceId"),
        ({"detections": [{"classLabel": "cyclist", "trackId": "7\x00"}]}, "trackId"),
        ({"detections": [{"classLabel": "cyclist", "trackId": ""}]}, "trackId"),
        ({"detections": [{"classLabel": "cyclist", "confidence": 1.5}]}, "confidence"),
        (
            {
                "detections": [
                    {"classLabel": "cyclist", "box": {"x": 1e308, "y": 0, "width": 1, "height": 1}}
                ]
            },
            "box.x",
        ),
        (
            {
                "detections": [
                    {"classLabel": "cyclist", "box": {"x": 0, "y": 0, "width": -1, "height": 1}}
                ]
            },
            "box.width",
        ),
        ({"detections": [{"classLabel": "cyclist"}] * (MAX_LIST + 1)}, "$.detections"),
        ({"capturedAt": "9999-12-31T23:00:00-05:00"}, "capturedAt"),
    ],
)
def test_out_of_range_values_are_invalid_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode_frame(msgspec.json.encode({**VALID, **change}))
    assert caught.value.reason == "invalid"
    assert field in caught.value.detail


def test_a_capture_time_without_offset_is_taken_as_utc() -> None:
    message = decode_frame(msgspec.json.encode({**VALID, "capturedAt": "2026-11-21T10:00:00"}))
    assert message.captured_at == datetime(2026, 11, 21, 10, tzinfo=UTC)
    shifted = decode_frame(
        msgspec.json.encode({**VALID, "capturedAt": "2026-11-21T12:00:00+02:00"})
    )
    assert shifted.captured_at == datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert shifted.captured_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("box", "inside"),
    [
        (Box(x=0, y=0, width=1920, height=1080), True),
        (Box(x=-50, y=1000, width=100, height=200), True),  # cut by the corner: still seen
        (Box(x=1920, y=1080, width=0, height=0), True),
        (Box(x=-50, y=0, width=49, height=10), False),
        (Box(x=1921, y=0, width=30, height=10), False),
        (Box(x=0, y=1080.5, width=10, height=10), False),
        (Box(x=0, y=-1e6, width=10, height=1e5), False),
    ],
)
def test_a_box_must_share_a_point_with_the_video_frame(box: Box, inside: bool) -> None:
    assert (box_outside_frame(box, 1920, 1080) is None) is inside


def _session_on_video(app: Verity, metadata: VideoMetadata | None) -> str:
    project = CreateProject(
        name="p", camera_model="m", camera_view=CameraView.MULTI_ANGLE, signal_type=SignalType.GPIO
    )
    create_project(project, app)
    video = RegisterUpload(
        project_id=project.id,
        filename="f",
        original_name="f",
        size=1,
        sha256="x",
        metadata=metadata,
    )
    register_upload(video, app)
    cmd = CreateTestSession(name="s", project_id=project.id, video_id=video.id, start=True)
    create_test_session(cmd, app)
    return str(cmd.id)


def test_frames_with_a_box_outside_the_video_are_refused_and_their_neighbours_stored() -> None:
    app = Verity(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    size = VideoMetadata(fps=30, frame_count=900, duration=30, width=640, height=480)
    sized, unsized = _session_on_video(app, size), _session_on_video(app, None)
    far = {"classLabel": "cyclist", "box": {"x": 700, "y": 10, "width": 100, "height": 10}}

    def message(session: str, seq: int, *detections: dict[str, Any]) -> FrameMessage:
        body = {**VALID, "sessionId": session, "seq": seq, "detections": list(detections)}
        return decode_frame(msgspec.json.encode(body))

    frames = (
        message(sized, 1, VALID["detections"][0]),
        message(sized, 2, {"classLabel": "cyclist"}, far),
        message(unsized, 3, far),  # no size known: nothing to check against
    )
    cmd = RecordFrames(frames=frames, received_at=datetime.now(UTC))
    result = record_frames(cmd, app, InMemoryFrameStore(app))
    assert result.stored == (0, 2)
    (refused,) = result.rejected
    assert (refused.index, refused.reason, refused.field) == (1, "invalid", "detections[1].box")
    assert "width 640" in refused.detail
