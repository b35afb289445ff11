"""Test sessions over HTTP and WebSocket: lifecycle, detections in, bad input out."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import TestClient

from tests.e2e.helpers import api_client, next_event, write_video
from verity.settings import Settings

pytestmark = pytest.mark.e2e

PROJECT = {
    "name": "Sessions",
    "cameraModel": "AX-200",
    "cameraView": "Front-facing VRU",
    "signalType": "GPIO",
}


@pytest.fixture
def client(settings: Settings) -> Any:
    with api_client(settings) as c:
        yield c


def project_with_video(
    client: TestClient[Any], tmp_path: Path, size: tuple[int, int] = (64, 48)
) -> tuple[str, str]:
    project = client.post("/api/projects", json=PROJECT).json()
    path = write_video(tmp_path / "clip.mp4", size=size)
    with path.open("rb") as f:
        response = client.post(
            f"/api/projects/{project['id']}/videos", files={"file": ("clip.mp4", f, "video/mp4")}
        )
    assert response.status_code == 200, response.text
    return project["id"], response.json()["id"]


def frame(session: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "deviceId": "cam-1",
        "sessionId": session,
        "seq": seq,
        "frameNumber": seq * 3,
        "timestamp": seq / 10,
        "capturedAt": "2026-11-21T10:00:00.123Z",
        "modelVersion": "yolov8n-vru-3",
        "detections": [
            {
                "classLabel": "pedestrian",
                "confidence": 0.91,
                "box": {"x": 10, "y": 20, "width": 50, "height": 120},
                "trackId": "7",
            },
            {"classLabel": "scooter", "confidence": 0.4},
        ],
        **extra,
    }


def test_session_lifecycle_detections_and_live_updates(
    client: TestClient[Any], tmp_path: Path
) -> None:
    project_id, video_id = project_with_video(client, tmp_path)
    created = client.post(
        "/api/test-sessions",
        json={"name": "run 1", "project_id": project_id, "video_id": video_id},
    )
    assert created.status_code == 200, created.text
    session = created.json()
    sid = session["id"]
    assert session["status"] == "pending" and session["toleranceMs"] == 100
    assert session["projectId"] == project_id and session["iouThreshold"] == 0.5

    with client.websocket_connect("/ws") as ws:
        next_event(ws, "connection_status")
        ws.send_json({"action": "join", "room": f"test_session:{sid}"})
        ws.send_json({"action": "join", "room": "dashboard"})
        next_event(ws, "joined")
        started = client.post(f"/api/test-sessions/{sid}/start")
        assert started.status_code == 200 and started.json()["status"] == "running"
        update = next_event(ws, "test_session_update", status="running")
        assert update["room"] == f"test_session:{sid}" and update["data"]["sessionId"] == sid
        next_event(ws, "test_session_started", sessionId=sid)

        again = client.post(f"/api/test-sessions/{sid}/start")
        assert again.status_code == 409 and "running" in again.json()["detail"]

        for seq in range(3):
            r = client.post("/api/detection-events/batch", json=frame(sid, seq))
            assert r.status_code == 200 and r.json()["status"] == "stored", r.text
        repeat = client.post("/api/detection-events/batch", json=frame(sid, 1))
        assert repeat.json()["status"] == "duplicate"
        snake = client.post(
            "/api/detection-events",
            json={
                "test_session_id": sid,
                "timestamp": 1.5,
                "confidence": 0.7,
                "class_label": "cyclist",
            },
        )
        assert snake.status_code == 200 and snake.json()["status"] == "processed"

        paused = client.post(f"/api/test-sessions/{sid}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        next_event(ws, "test_session_update", status="paused")
        resumed = client.post(f"/api/test-sessions/{sid}/resume")
        assert resumed.json()["status"] == "running"
        next_event(ws, "test_session_update", status="running")
        done = client.post(f"/api/test-sessions/{sid}/stop")  # the frontend's Stop ends it
        assert done.json()["status"] == "completed" and done.json()["completedAt"]
        next_event(ws, "test_session_update", status="completed")
        # the dashboard hears of a completion once, as the evaluator's test_completed (with
        # its figures), not also as test_session_completed (tests/unit/test_live_messages.py)

    got = client.get(f"/api/test-sessions/{sid}").json()
    assert got["frameCount"] == 4 and got["detectionCount"] == 7
    assert got["classCounts"] == {"pedestrian": 3, "scooter_rider": 3, "cyclist": 1}

    detections = client.get(f"/api/test-sessions/{sid}/detections").json()
    assert detections["total_detections"] == 7 and detections["session_status"] == "completed"
    first = detections["detections"][0]
    assert first["bounding_box"] == {"x": 10.0, "y": 20.0, "width": 50.0, "height": 120.0}
    assert first["class_label"] == "pedestrian" and first["track_id"] == "7"
    assert [d["timestamp"] for d in detections["detections"]] == sorted(
        d["timestamp"] for d in detections["detections"]
    )
    page = client.get(f"/api/test-sessions/{sid}/detections?skip=2&limit=2").json()
    assert [d["id"] for d in page["detections"]] == [d["id"] for d in detections["detections"][2:4]]

    by_video = client.get(f"/api/videos/{video_id}/detections").json()
    assert by_video["total_detections"] == 7 and by_video["test_sessions"] == [sid]
    assert by_video["detection_summary"]["by_class"]["scooter_rider"] == 3
    assert by_video["detection_summary"]["by_confidence"] == {"high": 3, "medium": 1, "low": 3}

    status = client.get(f"/api/test-sessions/{sid}/status").json()
    assert status["status"] == "completed" and status["progress"] == 100
    listed = client.get(f"/api/projects/{project_id}/test-sessions").json()
    assert [s["id"] for s in listed] == [sid]
    assert [s["id"] for s in client.get(f"/api/test-sessions?projectId={project_id}").json()] == [
        sid
    ]

    closed = client.post("/api/detection-events/batch", json=frame(sid, 99))
    assert closed.status_code == 409 and "completed" in closed.json()["detail"]


def test_bad_input_is_refused_with_the_field_named(client: TestClient[Any], tmp_path: Path) -> None:
    project_id, video_id = project_with_video(client, tmp_path)
    body = {"name": "s", "projectId": project_id, "videoIds": [video_id]}
    sid = client.post("/api/test-sessions", json=body).json()["id"]

    negative = client.post("/api/detection-events", json={"testSessionId": sid, "timestamp": -1})
    assert negative.status_code == 400
    assert negative.json()["detail"] == "Timestamp must be non-negative"
    confident = client.post(
        "/api/detection-events", json={"testSessionId": sid, "timestamp": 1, "confidence": 1.5}
    )
    assert confident.status_code == 400
    assert confident.json()["detail"] == "Confidence must be between 0 and 1"
    unknown = client.post(
        "/api/detection-events",
        json={"testSessionId": "00000000-0000-0000-0000-00000000abcd", "timestamp": 1},
    )
    assert unknown.status_code == 404 and unknown.json()["detail"] == "Test session not found"
    missing = client.post("/api/detection-events", json={"timestamp": 1})
    assert missing.status_code == 422 and "testSessionId" in missing.json()["detail"]

    blank = client.post("/api/test-sessions", json={**body, "name": " "})
    assert blank.status_code == 400 and "name" in blank.json()["detail"]
    two = client.post("/api/test-sessions", json={**body, "videoIds": [video_id, video_id]})
    assert two.status_code == 422 and "videoIds" in two.json()["detail"]
    tolerance = client.post("/api/test-sessions", json={**body, "toleranceMs": -5})
    assert tolerance.status_code == 422 and "toleranceMs" in tolerance.json()["detail"]
    no_video = client.post(
        "/api/test-sessions",
        json={**body, "videoIds": ["00000000-0000-0000-0000-00000000abcd"]},
    )
    assert no_video.status_code == 404 and no_video.json()["detail"] == "Video not found"

    garbage = client.post("/api/detection-events/batch", content=b"{not json")
    assert garbage.status_code == 400
    wrong_class = client.post(
        "/api/detection-events/batch",
        json=frame(sid, 1, detections=[{"classLabel": "car"}]),
    )
    assert wrong_class.status_code == 422 and "classLabel" in wrong_class.json()["detail"]
    negative_seq = client.post("/api/detection-events/batch", json=frame(sid, -1))
    assert negative_seq.status_code == 422 and "seq" in negative_seq.json()["detail"]

    assert client.get("/api/test-sessions/00000000-0000-0000-0000-00000000abcd").status_code == 404
    stop_pending = client.post(f"/api/test-sessions/{sid}/stop")
    assert stop_pending.status_code == 409
    assert stop_pending.json()["detail"].endswith("it is pending")

    no_gt = client.post(f"/api/projects/{project_id}/execute-test")
    assert no_gt.status_code == 400 and "ground truth" in no_gt.json()["detail"]


def test_execute_test_starts_on_the_first_project_video_with_ground_truth(
    client: TestClient[Any], tmp_path: Path
) -> None:
    project_id, bare = project_with_video(client, tmp_path)
    path = write_video(tmp_path / "second.mp4", size=(80, 60))
    with path.open("rb") as f:
        second = client.post(
            f"/api/projects/{project_id}/videos", files={"file": ("second.mp4", f, "video/mp4")}
        )
    annotated = second.json()["id"]
    box = {"x": 10, "y": 20, "width": 40, "height": 30}
    body = {"frameNumber": 3, "timestamp": 0.3, "vruType": "cyclist", "boundingBox": box}
    assert client.post(f"/api/videos/{annotated}/annotations", json=body).status_code == 200

    started = client.post(f"/api/projects/{project_id}/execute-test")
    assert started.status_code == 200, started.text
    assert started.json()["video_id"] == annotated and started.json()["video_count"] == 1
    session = client.get(f"/api/test-sessions/{started.json()['session_id']}").json()
    assert session["videoId"] == annotated and session["status"] == "running"
    chosen = client.post(f"/api/projects/{project_id}/execute-test", json={"videoId": bare})
    assert chosen.status_code == 400 and "ground truth" in chosen.json()["detail"]
    elsewhere = client.post(
        f"/api/projects/{project_id}/execute-test", json={"videoId": str(uuid4())}
    )
    assert elsewhere.status_code == 404


def test_a_running_session_can_be_failed_with_a_reason(
    client: TestClient[Any], tmp_path: Path
) -> None:
    project_id, video_id = project_with_video(client, tmp_path)
    created = client.post(
        "/api/test-sessions",
        json={"name": "broken rig", "projectId": project_id, "videoId": video_id},
    )
    sid = created.json()["id"]
    assert client.post(f"/api/test-sessions/{sid}/start").status_code == 200
    failed = client.post(f"/api/test-sessions/{sid}/fail", json={"reason": "camera lost power"})
    assert failed.status_code == 200, failed.text
    assert failed.json()["status"] == "failed"
    assert failed.json()["error"] == "camera lost power"
    assert client.get(f"/api/test-sessions/{sid}").json()["status"] == "failed"
    again = client.post(f"/api/test-sessions/{sid}/fail")
    assert again.status_code == 409 and "failed" in again.json()["detail"]
    unknown = client.post("/api/test-sessions/00000000-0000-0000-0000-00000000abcd/fail")
    assert unknown.status_code == 404


def test_a_project_with_test_sessions_is_kept_as_evidence(
    client: TestClient[Any], tmp_path: Path
) -> None:
    project_id, video_id = project_with_video(client, tmp_path)
    other = client.post("/api/projects", json={**PROJECT, "name": "Other"}).json()["id"]
    on_video = client.post(
        "/api/test-sessions", json={"name": "run", "projectId": other, "videoId": video_id}
    ).json()["id"]
    refused = client.delete(f"/api/projects/{project_id}")
    assert refused.status_code == 409, refused.text
    assert on_video in refused.json()["detail"] and "archived" in refused.json()["detail"]
    assert client.get(f"/api/projects/{project_id}").status_code == 200
    assert client.get(f"/api/videos/{video_id}").status_code == 200
    own = client.post(
        "/api/test-sessions", json={"name": "own", "projectId": project_id, "videoId": video_id}
    ).json()["id"]
    assert own in client.delete(f"/api/projects/{project_id}").json()["detail"]
    assert client.post(f"/api/test-sessions/{own}/start").status_code == 200
    empty = client.post("/api/projects", json={**PROJECT, "name": "Empty"}).json()["id"]
    assert client.delete(f"/api/projects/{empty}").status_code == 200


def test_a_project_counts_its_test_sessions(client: TestClient[Any], tmp_path: Path) -> None:
    project_id, video_id = project_with_video(client, tmp_path)

    def counts() -> tuple[int, int]:
        listed = {p["id"]: p["testsCount"] for p in client.get("/api/projects").json()}
        return listed[project_id], client.get(f"/api/projects/{project_id}").json()["testsCount"]

    assert counts() == (0, 0)  # and the list's body is now cached
    body = {"name": "run", "projectId": project_id, "videoId": video_id}
    for n in (1, 2):
        assert client.post("/api/test-sessions", json=body).status_code == 200
        assert counts() == (n, n)
    other = client.post("/api/projects", json={**PROJECT, "name": "No sessions"}).json()
    assert other["testsCount"] == 0
