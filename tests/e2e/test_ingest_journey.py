"""Devices to WebSocket, and the ingest worker killed mid-stream, on real servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import nats
import pytest

from commands.device_messages import BoxIn, DetectionIn, FrameMessage
from commands.projects import CreateProject, create_project
from commands.test_sessions import CreateTestSession, create_test_session
from commands.videos import RegisterUpload, register_upload
from domain.detections import frame_id
from domain.projects import CameraView, SignalType
from tests.conftest import fresh_database
from tests.e2e.helpers import api_client, next_event
from tests.e2e.test_test_sessions_journey import PROJECT, project_with_video
from tests.stored_frames import count_stored, stored_frame_copies
from verity.bootstrap import open_application
from verity.settings import Settings
from workers.device_simulator import HEIGHT as SIM_HEIGHT
from workers.device_simulator import WIDTH as SIM_WIDTH
from workers.device_simulator import frames, publish

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of its own: every later test's relay replays the shared one from the start,
    and tens of thousands of frames there would slow them all."""
    with fresh_database(postgres_admin_url, "verity_ingest_e2e") as url:
        yield url


def simulate(settings: Settings, session: str, fps: float, duration: float) -> int:
    async def run() -> int:
        nc = await nats.connect(settings.nats_url or "")
        try:
            messages = frames(UUID(session), "sim-1", fps, duration, [])
            return await publish(nc, settings.detections_subject, messages, fps)
        finally:
            await nc.drain()

    return asyncio.run(run())


def test_websocket_sees_status_and_detections_while_the_simulator_runs(
    settings: Settings, tmp_path: Path
) -> None:
    with api_client(settings) as client:
        # the simulator's synthetic objects cross a 1920 x 1080 frame; boxes wholly outside
        # the video would be refused
        size = (int(SIM_WIDTH), int(SIM_HEIGHT))
        project_id, video_id = project_with_video(client, tmp_path, size=size)
        body = {"name": "live", "projectId": project_id, "videoId": video_id}
        sid = client.post("/api/test-sessions", json=body).json()["id"]
        with client.websocket_connect("/ws") as ws:
            next_event(ws, "connection_status")
            ws.send_json({"action": "join", "room": f"test_session:{sid}"})
            next_event(ws, "joined")
            client.post(f"/api/test-sessions/{sid}/start")
            next_event(ws, "test_session_update", status="running")

            sent: list[int] = []
            device = threading.Thread(
                target=lambda: sent.append(simulate(settings, sid, fps=60, duration=3))
            )
            device.start()
            seen = [next_event(ws, "detection_event", timeout=10) for _ in range(3)]
            progress = next_event(ws, "test_progress", timeout=10)
            device.join(30)
            for message in seen:
                assert message["room"] == f"test_session:{sid}"
                assert message["data"]["sessionId"] == sid and message["data"]["detections"]
            assert seen[-1]["data"]["seq"] > seen[0]["data"]["seq"]
            assert progress["data"]["frameCount"] > 0

            deadline = time.monotonic() + 15
            while (now := client.get(f"/api/test-sessions/{sid}").json())["frameCount"] < 180:
                if time.monotonic() > deadline:
                    pytest.fail(f"frames missing: {now}; consumer: {consumer_state(settings)}")
                time.sleep(0.2)
            client.post(f"/api/test-sessions/{sid}/complete")
            assert next_event(ws, "test_session_update", status="completed", timeout=10)
        assert sent == [180]
        got = client.get(f"/api/test-sessions/{sid}").json()
        assert got["frameCount"] == 180 and got["detectionCount"] > 180


def consumer_state(settings: Settings) -> Any:
    """What JetStream says about the ingest consumer, to explain a stall."""

    async def run() -> Any:
        nc = await nats.connect(settings.nats_url or "")
        info = await nc.jetstream().consumer_info(settings.detections_stream, "verity-ingest")
        sinfo = await nc.jetstream().stream_info(settings.detections_stream)
        await nc.close()
        return info, sinfo.state

    return asyncio.run(run())


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VERITY_DATABASE_URL": settings.database_url or "",
        "VERITY_NATS_URL": settings.nats_url or "",
        "VERITY_NATS_PREFIX": settings.nats_prefix,
        "VERITY_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "verity.cli", "worker", "ingest"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_kill_9_mid_stream_then_restart_loses_nothing_and_doubles_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    n = 20_000
    database_url = settings.database_url or ""
    app = open_application(database_url, pool_size=2)
    project = CreateProject(
        name=PROJECT["name"],
        camera_model="m",
        camera_view=CameraView.FRONT_FACING_VRU,
        signal_type=SignalType.GPIO,
    )
    create_project(project, app)
    video = RegisterUpload(
        project_id=project.id, filename="v", original_name="v", size=1, sha256="x", metadata=None
    )
    register_upload(video, app)
    session = CreateTestSession(name="crash", project_id=project.id, video_id=video.id, start=True)
    create_test_session(session, app)
    app.close()
    ids = [frame_id("cam-9", session.id, seq) for seq in range(n)]
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)

    async def flood() -> None:
        nc = await nats.connect(settings.nats_url or "")
        js = nc.jetstream()
        # the worker creates the stream; wait for it rather than race it
        deadline = time.monotonic() + 20
        while True:
            try:
                await js.stream_info(settings.detections_stream)
                break
            except nats.js.errors.NotFoundError:
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.1)
        encoder = msgspec.json.Encoder()
        for start in range(0, n, 1000):
            acks = []
            for seq in range(start, start + 1000):
                message = FrameMessage(
                    device_id="cam-9",
                    session_id=session.id,
                    seq=seq,
                    timestamp=seq / 30,
                    detections=[
                        DetectionIn(
                            class_label="pedestrian", box=BoxIn(x=1, y=2, width=3, height=4)
                        )
                    ],
                )
                acks.append(
                    await js.publish_async(
                        f"{settings.detections_subject}.{session.id}",
                        encoder.encode(message),
                        headers={"Nats-Msg-Id": message.msg_id},
                    )
                )
            await asyncio.gather(*acks)
        await nc.drain()

    failed: list[BaseException] = []

    def publish() -> None:
        try:
            asyncio.run(flood())
        except BaseException as err:  # reported by the test thread below
            failed.append(err)

    publisher = threading.Thread(target=publish)
    try:
        publisher.start()  # the worker is killed while frames are still being published
        deadline = time.monotonic() + 30
        while (before := count_stored(database_url, session.id, ids)) < 1000:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert before < n, "the worker finished before it could be killed"
        publisher.join(60)
        assert not publisher.is_alive() and not failed, failed

        worker = start_worker(settings, log)
        deadline = time.monotonic() + 60
        while (after := count_stored(database_url, session.id, ids)) < n:
            assert time.monotonic() < deadline, f"{after}/{n}: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        time.sleep(1.0)
        copies = stored_frame_copies(database_url, session.id)
        assert sorted(copies.values()) == [1] * n  # all there, none twice (ids or otherwise)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(15)

        async def drop() -> None:
            nc = await nats.connect(settings.nats_url or "")
            await nc.jetstream().delete_stream(settings.detections_stream)
            await nc.drain()

        asyncio.run(drop())
