"""A worker run alone (`verity worker NAME`) behaves as it does inside `verity serve`."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import msgspec
import pytest

from tests.e2e.helpers import api_client, next_event
from tests.e2e.test_ingest_journey import simulate, start_worker
from tests.e2e.test_test_sessions_journey import project_with_video
from verity.settings import Settings
from workers.device_simulator import HEIGHT as SIM_HEIGHT
from workers.device_simulator import WIDTH as SIM_WIDTH

pytestmark = pytest.mark.e2e


def wait_for_line(log: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_ingest_worker_alone_sends_test_progress_to_the_session_room(
    settings: Settings, tmp_path: Path
) -> None:
    """The API process runs no ingest; a `verity worker ingest` process stores the frames
    and its live messages (detections and the session's running counts) reach the room.

    No evaluator runs either: it sends `test_progress` too, and would hide a silent ingest."""
    settings = msgspec.structs.replace(settings, serve_ingest=False, serve_evaluator=False)
    log = tmp_path / "worker.log"
    with api_client(settings) as client:
        size = (int(SIM_WIDTH), int(SIM_HEIGHT))
        project_id, video_id = project_with_video(client, tmp_path, size=size)
        body = {"name": "alone", "projectId": project_id, "videoId": video_id}
        sid = client.post("/api/test-sessions", json=body).json()["id"]
        client.post(f"/api/test-sessions/{sid}/start")
        worker = start_worker(settings, log)
        try:
            wait_for_line(log, "ingest ready")
            with client.websocket_connect("/ws") as ws:
                next_event(ws, "connection_status")
                ws.send_json({"action": "join", "room": f"test_session:{sid}"})
                next_event(ws, "joined")
                sent: list[int] = []
                device = threading.Thread(
                    target=lambda: sent.append(simulate(settings, sid, fps=60, duration=2))
                )
                device.start()
                try:
                    detections = next_event(ws, "detection_event", timeout=15)
                    progress = next_event(ws, "test_progress", timeout=15)
                    # its counts are the read model's, which may not hold the first frames yet
                    deadline = time.monotonic() + 15
                    while progress["data"]["frameCount"] == 0:
                        left = deadline - time.monotonic()
                        progress = next_event(ws, "test_progress", timeout=max(left, 0.1))
                finally:
                    device.join(30)
            assert detections["room"] == f"test_session:{sid}"
            assert progress["room"] == f"test_session:{sid}"
            assert progress["data"]["sessionId"] == sid
            assert progress["data"]["frameCount"] > 0
            assert sent == [120]
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(15)
        assert "ingest stopped" in log.read_text()
