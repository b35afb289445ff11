"""The frontend pages' plain sockets and `/api/sessions*` on real servers, with a device
publishing over NATS: what TestExecution.tsx and EnhancedTestExecution.tsx read."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgspec
import nats
import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient, WebSocketTestSession

from commands.device_messages import FrameMessage
from tests.e2e.helpers import api_client, next_message
from tests.e2e.test_evaluation_journey import wait_results
from tests.e2e.test_test_sessions_journey import project_with_video
from verity.settings import Settings
from workers.device_simulator import HEIGHT as SIM_HEIGHT
from workers.device_simulator import WIDTH as SIM_WIDTH
from workers.device_simulator import frames, load_ground_truth, publish
from workers.ingest import HEADER_REASON

pytestmark = pytest.mark.e2e

BOX = {"x": 100, "y": 120, "width": 60, "height": 150}
FPS = 10.0
SECONDS = 3.0


@pytest.fixture
def client(settings: Settings) -> Any:
    with api_client(settings) as c:
        yield c


def annotated_video(client: TestClient[Any], tmp_path: Path) -> tuple[str, str]:
    """A project and a 3 s, 10 fps video with a pedestrian annotated on every third frame."""
    size = (int(SIM_WIDTH), int(SIM_HEIGHT))  # the simulator's false positives land anywhere
    project_id, video_id = project_with_video(client, tmp_path, size=size)
    for frame in range(0, 30, 3):
        body = {
            "frame_number": frame,
            "timestamp": frame / FPS,
            "vru_type": "pedestrian",
            "bounding_box": BOX,
            "detection_id": "walker",
        }
        response = client.post(f"/api/videos/{video_id}/annotations", json=body)
        assert response.status_code in (200, 201), response.text
    return project_id, video_id


def next_page(
    ws: WebSocketTestSession, kind: str, timeout: float = 10.0, **payload: Any
) -> dict[str, Any]:
    """The payload of the next `{type: kind}` message whose payload has the given items."""
    message = next_message(ws, ("type", "payload"), kind, timeout, **payload)
    assert set(message) == {"type", "payload"}
    body: dict[str, Any] = message["payload"]
    return body


def device(settings: Settings, session: str, fps: float = FPS, seconds: float = SECONDS) -> int:
    """A simulated camera (what `verity simulate-device` runs) following the ground truth."""

    async def run() -> int:
        truth = load_ground_truth(settings.database_url or "", UUID(session))
        nc = await nats.connect(settings.nats_url or "")
        try:
            messages = frames(UUID(session), "sim-1", fps, seconds, truth)
            return await publish(nc, settings.detections_subject, messages, fps)
        finally:
            await nc.drain()

    return asyncio.run(run())


def dead_letter_of_late_frame(settings: Settings, session: str, seq: int) -> str:
    """Publish one more frame and return the reason it was dead-lettered with."""

    async def run() -> str:
        nc = await nats.connect(settings.nats_url or "")
        try:
            dlq = await nc.subscribe(f"{settings.detections_subject}.dlq")
            late = FrameMessage(
                device_id="sim-1", session_id=UUID(session), seq=seq, timestamp=0.1, detections=[]
            )
            await nc.jetstream().publish(
                f"{settings.detections_subject}.{session}",
                msgspec.json.encode(late),
                headers={"Nats-Msg-Id": late.msg_id},
            )
            while True:
                msg = await dlq.next_msg(timeout=15)
                if (msg.headers or {}).get("Verity-Original-Msg-Id") == late.msg_id:
                    return str((msg.headers or {})[HEADER_REASON])
        finally:
            await nc.drain()

    return asyncio.run(run())


def wait_for_frames(client: TestClient[Any], sid: str, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/api/test-sessions/{sid}").json()["frameCount"] < n:
        assert time.monotonic() < deadline, f"fewer than {n} frames stored"
        time.sleep(0.2)


def test_test_execution_socket_follows_a_run_from_start_to_its_evaluation(
    client: TestClient[Any], settings: Settings, tmp_path: Path
) -> None:
    project_id, video_id = annotated_video(client, tmp_path)
    created = client.post(
        "/api/test-sessions",
        json={"name": "page run", "projectId": project_id, "videoIds": [video_id]},
    ).json()
    sid = created["id"]
    assert created["status"] == "pending" and created["videoIds"] == [video_id]

    with client.websocket_connect(f"/ws/test-execution/{sid}") as ws:
        now = next_page(ws, "test_progress", status="pending")
        assert now["sessionId"] == sid and now["frameCount"] == 0
        assert client.post(f"/api/test-sessions/{sid}/start").json()["status"] == "running"
        next_page(ws, "test_progress", status="running")

        sent: list[int] = []
        camera = threading.Thread(target=lambda: sent.append(device(settings, sid)))
        camera.start()
        progress = next_page(ws, "test_progress", timeout=15)
        while "frameCount" not in progress or progress["frameCount"] == 0:
            progress = next_page(ws, "test_progress", timeout=15)
        assert progress["sessionId"] == sid and progress["detectionCount"] > 0
        assert 0 <= progress["progress"] <= 100  # newest frame over the video's duration

        assert client.post(f"/api/test-sessions/{sid}/pause").json()["status"] == "paused"
        next_page(ws, "test_progress", status="paused")
        assert client.post(f"/api/test-sessions/{sid}/resume").json()["status"] == "running"
        next_page(ws, "test_progress", status="running")
        camera.join(30)
        assert sent == [30]
        wait_for_frames(client, sid, 30)

        stopped = client.post(f"/api/test-sessions/{sid}/stop")  # TestExecution.tsx's Stop
        assert stopped.status_code == 200 and stopped.json()["status"] == "completed"
        result = next_page(ws, "test_result", timeout=30)
        completed = next_page(ws, "test_completed")

    assert result["sessionId"] == sid and result["videoId"] == video_id
    assert result["status"] == "completed" and result["startedAt"]
    assert set(result["results"]) >= {
        "accuracy",
        "precision",
        "recall",
        "f1Score",
        "detections",
        "processingTime",
        "errorCount",
    }
    assert result["modelConfig"]["name"]
    assert completed["testSessionId"] == sid and completed["evaluationId"] == result["id"]

    # read back over HTTP at once: test_completed waits for the results read model
    evaluation = client.get(f"/api/test-sessions/{sid}/results")
    assert evaluation.status_code == 200, evaluation.text
    body = evaluation.json()
    assert body["evaluationId"] == result["id"]
    assert body["precision"] == result["results"]["precision"] > 50
    assert client.get(f"/api/test-sessions/{sid}").json()["metrics"]["evaluationId"] == result["id"]

    # a device still sending after the end is dead-lettered as before
    assert dead_letter_of_late_frame(settings, sid, seq=99) == "session_closed"

    # a page that connects later still gets the result at once
    with client.websocket_connect(f"/ws/test-execution/{sid}") as late:
        assert next_page(late, "test_progress")["status"] == "completed"
        assert next_page(late, "test_result")["id"] == result["id"]
        next_page(late, "test_completed", evaluationId=result["id"])


def test_enhanced_test_page_sessions_routes_and_socket(
    client: TestClient[Any], settings: Settings, tmp_path: Path
) -> None:
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/health").json()["status"] == client.get("/health").json()["status"]
    with client.websocket_connect("/ws/test") as check:  # the page's connection check
        assert json.loads(check.receive_text())["type"] == "connection_established"

    project_id, video_id = annotated_video(client, tmp_path)
    body = {  # what EnhancedTestExecution.tsx posts
        "name": "enhanced",
        "description": "from the page",
        "projectId": project_id,
        "videoIds": [video_id],
        "config": {"batchSize": 1, "sequentialPlayback": True, "latencyMs": 100},
        "status": "created",
        "createdAt": "2026-12-06T08:00:00.000Z",
    }
    created = client.post("/api/sessions", json=body)
    assert created.status_code == 200, created.text
    session = created.json()
    sid = session["id"]
    assert session["status"] == "pending" and session["videoIds"] == [video_id]
    assert session["description"] == "from the page" and session["createdAt"]
    assert (
        client.get(f"/api/sessions/{sid}").json() == client.get(f"/api/test-sessions/{sid}").json()
    )
    assert sid in [s["id"] for s in client.get("/api/sessions").json()]

    with client.websocket_connect(f"/ws/test/{sid}") as ws:
        started = client.post(f"/api/sessions/{sid}/start")
        assert started.status_code == 200 and started.json()["status"] == "running"
        sent: list[int] = []
        camera = threading.Thread(target=lambda: sent.append(device(settings, sid)))
        camera.start()
        row = next_page(ws, "test_result", status="processing", timeout=15)
        assert row["sessionId"] == sid and row["videoId"] == video_id
        assert row["videoName"] == "clip.mp4" and row["timestamp"]
        assert "detections on frame" in row["details"]
        camera.join(30)
        wait_for_frames(client, sid, 30)
        stopped = client.post(f"/api/sessions/{sid}/stop")
        assert stopped.json()["status"] == "completed"
        success = next_page(ws, "test_result", status="success", timeout=30)
        done = next_page(ws, "session_complete")
    assert "precision" in success["details"] and done["sessionId"] == sid
    assert done["evaluationId"] == success["id"]

    deleted = client.delete(f"/api/sessions/{sid}")
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert sid not in [s["id"] for s in client.get("/api/sessions").json()]
    assert sid not in [
        s["id"] for s in client.get(f"/api/projects/{project_id}/test-sessions").json()
    ]
    assert client.get(f"/api/sessions/{sid}").json()["status"] == "deleted"  # still readable
    assert wait_results(client, sid).status_code == 200
    again = client.delete(f"/api/sessions/{sid}")
    assert again.status_code == 409 and again.json()["detail"].endswith("it is deleted")

    # a pending session deleted is closed to detections too
    other = client.post("/api/sessions", json=body).json()["id"]
    assert client.delete(f"/api/test-sessions/{other}").json()["status"] == "deleted"
    frame = {"deviceId": "cam-1", "sessionId": other, "seq": 0, "timestamp": 0.0, "detections": []}
    refused = client.post("/api/detection-events/batch", json=frame)
    assert refused.status_code == 409 and "deleted" in refused.json()["detail"]


def test_junk_and_unknown_sessions_get_an_error_message(
    client: TestClient[Any], tmp_path: Path
) -> None:
    for path, kind in (("/ws/test-execution", "test_error"), ("/ws/test", "error")):
        for raw_id in ("not-a-uuid", str(uuid4())):
            with client.websocket_connect(f"{path}/{raw_id}") as ws:
                message = json.loads(ws.receive_text())
                assert message["type"] == kind, message
                assert message["payload"]["code"] == "unknown_session"
                assert raw_id in message["payload"]["message"]
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_text()
                assert closed.value.code == 1008

    project_id, video_id = project_with_video(client, tmp_path)
    body = {"name": "junk", "projectId": project_id, "videoId": video_id}
    sid = client.post("/api/test-sessions", json=body).json()["id"]
    for path in (f"/ws/test-execution/{sid}", f"/ws/test/{sid}", "/ws/test"):
        with client.websocket_connect(path) as ws:
            json.loads(ws.receive_text())  # the session as it stands, or the greeting
            ws.send_text("{not json")
            assert next_page(ws, "error")["message"].startswith("Not a JSON object")
            ws.send_bytes(b"\xff\xfe")
            next_page(ws, "error")
            ws.send_text('{"type": "ping"}')
            next_page(ws, "pong")
            ws.send_text('{"type": "start", "sessionId": "x"}')
            assert "'start'" in next_page(ws, "error")["message"]


def test_a_run_without_ground_truth_still_ends_on_the_page(
    client: TestClient[Any], tmp_path: Path
) -> None:
    project_id, video_id = project_with_video(client, tmp_path)  # nothing annotated
    body = {"name": "no truth", "projectId": project_id, "videoId": video_id}
    sid = client.post("/api/test-sessions", json=body).json()["id"]
    with client.websocket_connect(f"/ws/test-execution/{sid}") as ws:
        next_page(ws, "test_progress", status="pending")
        client.post(f"/api/test-sessions/{sid}/start")
        assert client.post(f"/api/test-sessions/{sid}/stop").json()["status"] == "completed"
        ended = next_page(ws, "test_completed", timeout=30)
    assert ended["evaluated"] is False and ended["testSessionId"] == sid and ended["reason"]
    results = wait_results(client, sid)
    assert results.status_code == 409 and results.json()["detail"]
    with client.websocket_connect(f"/ws/test/{sid}") as late:  # a page that opens later
        assert next_page(late, "test_result", status="failed")["details"].startswith("Not")
        assert next_page(late, "session_complete")["evaluated"] is False
