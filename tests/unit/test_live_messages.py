"""Live messages keep the keys clients read (contract section 4), whoever builds them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import msgspec
import pytest

from commands.device_messages import decode_frame
from domain.casing import as_camel, camel_keys, to_camel, to_snake, with_snake_twins
from domain.evaluation import make_counts
from domain.evaluation.verdict import Criteria
from projections.envelopes import Envelope, decoder, encode, reference_of
from projections.live_messages import (
    completion_message,
    detection_message,
    progress_message,
    stored_event_messages,
)
from projections.test_sessions import SessionCounts

pytestmark = pytest.mark.unit

SESSION = uuid4()
COUNTS = SessionCounts(status="running", frame_count=3, detection_count=5, progress=12.5)


def data_of(message: bytes) -> dict[str, object]:
    body = msgspec.json.decode(message)
    assert set(body) == {"event", "room", "data"}
    return dict(body["data"])


def test_detection_event_carries_the_frame_and_what_was_folded_in() -> None:
    frame = decode_frame(
        msgspec.json.encode(
            {
                "deviceId": "cam",
                "sessionId": str(SESSION),
                "seq": 4,
                "timestamp": 1.5,
                "detections": [
                    {"classLabel": "cyclist", "box": {"x": 1, "y": 2, "width": 3, "height": 4}}
                ],
            }
        )
    )
    body = msgspec.json.decode(detection_message(frame, frames=3, detections=7))
    assert body["event"] == "detection_event" and body["room"] == f"test_session:{SESSION}"
    data = body["data"]
    assert set(data) == {
        "sessionId",
        "session_id",
        "deviceId",
        "seq",
        "frameNumber",
        "timestamp",
        "capturedAt",
        "modelVersion",
        "detections",
        "coalesced",
        "coalescedDetections",
        "sentAt",
    }
    assert data["session_id"] == data["sessionId"] == str(SESSION)
    assert data["coalesced"] == 2 and data["coalescedDetections"] == 6
    assert data["detections"] == [
        {
            "classLabel": "cyclist",
            "confidence": None,
            "box": {"x": 1, "y": 2, "width": 3, "height": 4},
            "trackId": None,
            "validationResult": "PENDING",
        }
    ]


def test_test_progress_has_the_counts_the_running_figures_or_both() -> None:
    counts_only = data_of(progress_message(SESSION, COUNTS))
    assert counts_only == {
        "sessionId": str(SESSION),
        "session_id": str(SESSION),
        "status": "running",
        "frameCount": 3,
        "detectionCount": 5,
        "progress": 12.5,
    }
    running: Any = SimpleNamespace(gt=(), frames_seen=9)  # what the message reads of it
    both = data_of(progress_message(SESSION, COUNTS, (make_counts(2, 1, 0), running, 4)))
    assert set(both) == set(counts_only) | {
        "running",
        "framesEvaluated",
        "framesThisTick",
        "truePositives",
        "falsePositives",
        "falseNegatives",
        "precision",
        "recall",
        "f1Score",
        "groundTruthObjects",
        "scale",
        "timestamp",
    }
    assert both["precision"] is None  # no ground truth yet: no ratio to show
    assert both["framesEvaluated"] == 9 and both["truePositives"] == 2


def envelope(aggregate: str, kind: str, data: dict[str, object]) -> Envelope[dict[str, object]]:
    return Envelope(
        position=7,
        id=str(uuid4()),
        aggregate=aggregate,
        aggregate_id=str(SESSION),
        version=2,
        type=kind,
        occurred_at="2026-11-21T10:00:00+00:00",
        actor="anonymous",
        correlation_id=None,
        causation_id=None,
        data=data,
    )


def test_a_stored_event_reaches_its_rooms_with_its_data() -> None:
    project = str(uuid4())
    env = envelope("test_session", "started", {"projectId": project})
    decoded = decoder(dict)  # the fan-out reads what the relay wrote
    messages = stored_event_messages(decoded.decode(encode(env)))
    rooms = {room: msgspec.json.decode(m) for room, m in messages}
    assert set(rooms) == {f"test_session:{SESSION}", "dashboard", f"project:{project}"}
    update = rooms[f"test_session:{SESSION}"]
    assert update["event"] == "test_session_update"
    assert update["data"]["status"] == "running" and update["data"]["session_id"] == str(SESSION)
    assert rooms["dashboard"]["event"] == "test_session_started"


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("created", "pending"),
        ("started", "running"),
        ("paused", "paused"),
        ("resumed", "running"),
        ("stopped", "paused"),  # stored before pause was its own move: it meant paused
        ("completed", "completed"),
        ("failed", "failed"),
    ],
)
def test_session_updates_name_the_status_the_event_leaves(kind: str, status: str) -> None:
    messages = dict(stored_event_messages(envelope("test_session", kind, {})))
    update = msgspec.json.decode(messages[f"test_session:{SESSION}"])
    assert update["event"] == "test_session_update" and update["data"]["status"] == status


def test_the_dashboard_hears_of_each_video_and_each_completion_once() -> None:
    """The Dashboard page adds one on `video_uploaded` and on `video_processed` alike, and
    one completed test on `test_session_completed` and on `test_completed` alike: each fact
    reaches room `dashboard` under one of those names only, or its live counts double."""
    decoded = decoder(dict)

    def dashboard_events(aggregate: str, kind: str) -> list[str]:
        env = decoded.decode(encode(envelope(aggregate, kind, {})))
        return [
            msgspec.json.decode(m)["event"]
            for room, m in stored_event_messages(env)
            if room == "dashboard"
        ]

    assert dashboard_events("video", "uploaded") == ["video_uploaded"]
    for kind in ("metadata_extracted", "quality_assessed", "rendition_recorded"):
        assert dashboard_events("video", kind) == []
    assert dashboard_events("test_session", "started") == ["test_session_started"]
    assert dashboard_events("test_session", "completed") == []


def test_test_completed_carries_the_metrics_the_dashboard_reads() -> None:
    body = data_of(completion_message(SESSION, uuid4(), make_counts(3, 1, 0), None, "dashboard"))
    assert body["id"] == body["sessionId"] == body["test_session_id"] == str(SESSION)
    assert body["metrics"] == {
        "accuracy": 75.0,
        "precision": 75.0,
        "recall": 100.0,
        "f1Score": 85.71,
    }
    assert body["status"] == "completed" and body["completedAt"] == body["timestamp"]


def test_device_events_and_allowed_devices_reach_no_room() -> None:
    """A device's events carry its password hash; a session's devices are no status."""
    device = envelope("device", "registered", {"deviceId": "cam-1", "passwordHash": "$2b$..."})
    allowed = envelope("test_session", "allowed_devices_changed", {"allowedDeviceIds": ["a"]})
    decoded = decoder(dict)
    assert stored_event_messages(decoded.decode(encode(device))) == []
    assert stored_event_messages(decoded.decode(encode(allowed))) == []


def test_envelope_and_reference_are_one_struct() -> None:
    env = envelope("project", "created", {"name": "p"})
    full = msgspec.json.decode(encode(env))
    assert "reference" not in full and "size" not in full and full["data"] == {"name": "p"}
    ref = decoder(dict).decode(reference_of(env, 10, "too large"))
    assert ref.reference and ref.truncated and ref.data is None and ref.size == 10


def test_one_casing_helper() -> None:
    assert to_snake("MetadataExtracted") == "metadata_extracted"
    assert to_snake("videoId") == "video_id" and to_camel("video_id") == "videoId"
    assert camel_keys({"a_b": [{"c_d": 1}]}) == {"aB": [{"cD": 1}]}
    shown = msgspec.json.decode(msgspec.json.encode(as_camel(Criteria(min_f1=0.5))))
    assert shown == camel_keys(msgspec.to_builtins(Criteria(min_f1=0.5)))
    assert shown["minF1"] == 0.5 and isinstance(as_camel(Criteria()), Criteria)

    @with_snake_twins
    class Out(msgspec.Struct, kw_only=True, rename="camel"):
        project_id: str
        name: str

    assert msgspec.json.decode(msgspec.json.encode(Out(project_id="p", name="n"))) == {
        "projectId": "p",
        "project_id": "p",
        "name": "n",
    }
    schema = msgspec.json.schema(Out)
    assert {"projectId", "project_id"} <= set(schema["$defs"]["Out"]["properties"])
