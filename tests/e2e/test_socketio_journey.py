"""The frontend's Socket.IO dialect, spoken by a real python-socketio client to real
`verity serve` processes: live detections from `verity simulate-device`, session commands,
junk, and two API processes sharing one feed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from domain.vru import VRU_CLASSES
from tests.conftest import fresh_database
from tests.e2e.helpers import served, verity_env
from tests.e2e.socketio_client import PageSocket
from tests.e2e.test_test_sessions_journey import project_with_video
from verity.settings import Settings
from workers.device_simulator import HEIGHT as SIM_HEIGHT
from workers.device_simulator import WIDTH as SIM_WIDTH

pytestmark = pytest.mark.e2e

WORKERS = ("RELAY", "INGEST", "EVALUATOR", "VIDEO", "DETECTOR")
ONLY_THE_API = {f"VERITY_SERVE_{name}": "false" for name in WORKERS}
"""A second API process: projections, HTTP and both live doors, no workers."""


@pytest.fixture(scope="module")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url, "verity_socketio_e2e") as url:
        yield url


def new_session(base: str, tmp_path: Path) -> tuple[str, str]:
    """(project id, session id) of a new session on a video the simulator's boxes fit, with a
    pedestrian annotated in each of its 30 frames (10 fps), so the simulator at 10 fps sees one
    in every frame and Stop ends in an evaluation."""
    with httpx.Client(base_url=base, timeout=30) as http:
        size = (int(SIM_WIDTH), int(SIM_HEIGHT))
        project_id, video_id = project_with_video(http, tmp_path, size=size)  # type: ignore[arg-type]
        for frame in range(30):
            truth = {
                "frame_number": frame,
                "timestamp": frame / 10,
                "vru_type": "pedestrian",
                "bounding_box": {"x": 400, "y": 300, "width": 80, "height": 200},
            }
            annotated = http.post(f"/api/videos/{video_id}/annotations", json=truth)
            assert annotated.status_code in (200, 201), annotated.text
        body = {"name": "live", "projectId": project_id, "videoId": video_id}
        created = http.post("/api/test-sessions", json=body)
        assert created.status_code == 200, created.text
        return project_id, created.json()["id"]


@asynccontextmanager
async def page_socket(base: str) -> AsyncIterator[PageSocket]:
    page = await PageSocket().connect(base)
    try:
        status = await page.next("connection_status")
        assert status["status"] == "connected" and status["message"]
        yield page
    finally:
        await page.close()


async def simulate_device(settings: Settings, session: str, duration: float) -> None:
    """`verity simulate-device` as an operator runs it."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "verity.cli", "simulate-device", "--session", session),
        *("--fps", "10", "--duration", str(duration)),
        env=verity_env(settings),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]


def assert_page_detection(event: dict[str, Any], session: str) -> None:
    """What Test Execution reads of a `detection_event`, and what the plain /ws carries."""
    assert event["sessionId"] == event["session_id"] == session
    assert event["id"].startswith(f"{session}:sim-1:")
    assert isinstance(event["timestamp"], float) and event["validationResult"] == "PENDING"
    if not event["detections"]:  # the device missed the newest frame's pedestrian
        assert event["classLabel"] is None and event["coalescedDetections"] > 0
        return
    assert event["classLabel"] in VRU_CLASSES
    assert event["classLabel"] in {d["classLabel"] for d in event["detections"]}
    assert max(d["confidence"] for d in event["detections"]) == event["confidence"] <= 1.0


async def test_a_page_hears_the_simulated_device_and_runs_its_session(
    settings: Settings, tmp_path: Path
) -> None:
    with served(settings, tmp_path / "api.log") as base:
        project_id, sid = new_session(base, tmp_path)
        async with (
            page_socket(base) as page,
            page_socket(base) as dashboard,
            httpx.AsyncClient(base_url=base, timeout=30) as http,
        ):
            await dashboard.call("subscribe_dashboard_updates", {"clientId": "dashboard"})
            assert (await dashboard.next("dashboard_joined"))["room"] == "dashboard"

            # Test Execution's Start: camelCase, no room joined first
            start = {"sessionId": sid, "projectId": project_id}
            started = await page.call("start_test_session", start)
            assert started["id"] == sid and started["status"] == "running"
            update = await page.next("test_session_update", status="running")
            assert update["id"] == update["sessionId"] == sid
            await dashboard.next("test_session_started", sessionId=sid)
            assert (await http.get(f"/api/test-sessions/{sid}")).json()["status"] == "running"

            # pause and resume are their own moves, as over HTTP
            paused = await page.call("pause_test_session", {"sessionId": sid})
            assert paused["status"] == "paused"
            await page.next("test_session_update", status="paused")
            assert (await http.get(f"/api/test-sessions/{sid}")).json()["status"] == "paused"
            resumed = await page.call("resume_test_session", {"session_id": sid})
            assert resumed["status"] == "running"
            await page.next("test_session_update", status="running")

            device = asyncio.create_task(simulate_device(settings, sid, duration=3))
            seen = [await page.next("detection_event", wait=30) for _ in range(3)]
            for event in seen:
                assert_page_detection(event, sid)
            assert seen[-1]["seq"] > seen[0]["seq"]
            progress = await page.next("test_progress", wait=30)
            while progress.get("frameCount", 0) == 0:  # the first may precede the read model
                progress = await page.next("test_progress", wait=30)
            assert progress["sessionId"] == progress["session_id"] == sid
            await device

            # Stop from the page ends the run: completed, evaluated, results pushed
            stopped = await page.call("stop_test_session", {"session_id": sid})
            assert stopped["id"] == sid and stopped["status"] == "completed"
            await page.next("test_session_update", status="completed")
            after = (await http.get(f"/api/test-sessions/{sid}")).json()
            assert after["status"] == "completed" and after["frameCount"] == 30
            for listener in (page, dashboard):
                done = await listener.next("test_completed", wait=60)
                assert done["test_session_id"] == done["sessionId"] == sid
                assert set(done["results"]) >= {"precision", "recall", "f1Score", "accuracy"}
                assert done["metrics"]["accuracy"] == done["results"]["accuracy"]

            # the same checks as HTTP: an illegal transition is the route's 409
            again = await page.call("stop_test_session", {"sessionId": sid})
            http_again = await http.post(f"/api/test-sessions/{sid}/stop")
            assert again["status"] == http_again.status_code == 409
            assert again["detail"] == http_again.json()["detail"]
            assert (await page.next("error", event="stop_test_session"))["status"] == 409

            await answers_the_small_events(page, sid)
            await refuses_junk(page, sid)
            assert page.sio.connected and dashboard.sio.connected
            assert (await http.get("/health")).status_code == 200
            assert (await http.get(f"/api/test-sessions/{sid}")).json()["status"] == after["status"]


async def answers_the_small_events(page: PageSocket, sid: str) -> None:
    """Room membership and the acknowledged-only events the pages send."""
    video = str(uuid4())
    assert (await page.call("join_room", {"room": f"video:{video}"}))["room"] == f"video_{video}"
    assert (await page.next("room_joined"))["room"] == f"video_{video}"
    assert (await page.call("leave_room", {"room": f"video_{video}"}))["room"] == f"video_{video}"
    await page.next("room_left")
    joined = await page.call("join_annotation_session", {"session_id": sid, "video_id": video})
    assert joined["rooms"] == [f"annotation_session_{sid}", f"video_{video}"]
    await page.next("annotation_session_joined")
    time_update = {"sessionId": sid, "currentTime": 1.5, "frameNumber": 45}
    assert await page.call("video_time_update", time_update) == {"status": "received"}
    progress = {"video_id": video, "current_frame": 3, "total_frames": 30, "annotator": "ann"}
    assert await page.call("annotation_progress", progress) == {"status": "received"}
    await page.call("ping", {"timestamp": 1})
    await page.next("pong")


async def refuses_junk(page: PageSocket, sid: str) -> None:
    """Each bad payload gets an `error` naming the field; the connection stays."""
    junk: list[tuple[str, Any, str, int]] = [
        ("start_test_session", "junk", "payload", 422),
        ("start_test_session", [1, 2], "payload", 422),
        ("start_test_session", None, "sessionId", 422),
        ("start_test_session", {"sessionId": "nope"}, "sessionId", 422),
        ("start_test_session", {"sessionId": 7}, "sessionId", 422),
        ("start_test_session", {"sessionId": "a" * 10_000}, "sessionId", 422),
        ("start_test_session", {"sessionId": str(uuid4())}, "sessionId", 404),
        ("start_test_session", {"sessionId": sid, "session_id": str(uuid4())}, "sessionId", 422),
        ("start_test_session", {"sessionId": sid, "projectId": str(uuid4())}, "projectId", 422),
        ("join_test_session", {"session_id": "x"}, "session_id", 422),
        ("join_room", {"room": "test_sessions"}, "room", 422),
        ("join_room", {"room": "test_session_" + "f" * 10_000}, "room", 422),
        ("join_room", {}, "room", 422),
        ("annotation_progress", {"current_frame": -1}, "current_frame", 422),
        ("no_such_event", {"x": 1}, "event", 400),
    ]
    for event, payload, field, status in junk:
        reply = await page.call(event, payload)
        error = await page.next("error", event=event)
        assert reply == error, (event, payload)
        assert error["status"] == status and error["field"] == field, (event, payload, error)
        assert error["detail"].startswith(f"{field}:"), error


async def test_two_api_processes_share_one_feed(settings: Settings, tmp_path: Path) -> None:
    with (
        served(settings, tmp_path / "a.log") as a,
        served(settings, tmp_path / "b.log", **ONLY_THE_API) as b,
    ):
        _, sid = new_session(a, tmp_path)
        async with (
            page_socket(a) as on_a,
            page_socket(b) as on_b,
            httpx.AsyncClient(base_url=a, timeout=30) as http_a,
            httpx.AsyncClient(base_url=b, timeout=30) as http_b,
        ):
            for page in (on_a, on_b):
                joined = await page.call("join_test_session", {"session_id": sid})
                assert joined["room"] == f"test_session_{sid}"
                await page.next("test_session_joined", sessionId=sid)
            await on_a.call("join_dashboard")

            # a write on A over HTTP reaches a client on B
            assert (await http_a.post(f"/api/test-sessions/{sid}/start")).status_code == 200
            assert (await on_b.next("test_session_update", status="running"))["id"] == sid

            # frames ingested by A reach B's clients
            await simulate_device(settings, sid, duration=1)
            assert_page_detection(await on_b.next("detection_event", wait=30), sid)

            # a Socket.IO command run by B reaches A's clients; both reads agree
            stopped = await on_b.call("stop_test_session", {"sessionId": sid})
            await on_a.next("test_session_update", status=stopped["status"])
            for http in (http_a, http_b):
                got = (await http.get(f"/api/test-sessions/{sid}")).json()
                assert got["status"] == stopped["status"]

            # and an HTTP write on B reaches A's dashboard
            project = {"name": "from B", "cameraModel": "X", "cameraView": "Front-facing VRU"}
            created = await http_b.post("/api/projects", json={**project, "signalType": "GPIO"})
            assert created.status_code in (200, 201), created.text
            heard = await on_a.next("project_created", wait=15)
            assert heard["projectId"] == created.json()["id"]
