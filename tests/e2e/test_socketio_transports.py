"""Every Socket.IO transport hears a room's events from a real `verity serve`: long-polling
(a client whose proxy blocks WebSocket upgrades, or whose `transports` allow only it),
websocket, and the default path that starts on polling and upgrades, with none lost or
doubled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import fresh_database
from tests.e2e.helpers import served
from tests.e2e.socketio_client import PageSocket
from tests.e2e.test_test_sessions_journey import project_with_video
from verity.settings import Settings

pytestmark = pytest.mark.e2e

PROJECT = {"name": "p", "cameraModel": "X", "cameraView": "Front-facing VRU", "signalType": "GPIO"}
BURST = 8
"""Projects created one after another while the upgrading client connects."""


@pytest.fixture(scope="module")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url, "verity_socketio_transports") as url:
        yield url


def new_session(base: str, tmp_path: Path) -> str:
    with httpx.Client(base_url=base, timeout=30) as http:
        project_id, video_id = project_with_video(http, tmp_path)  # type: ignore[arg-type]
        body = {"name": "t", "projectId": project_id, "videoId": video_id}
        return str(http.post("/api/test-sessions", json=body).json()["id"])


@asynccontextmanager
async def page_on(base: str, transports: list[str]) -> AsyncIterator[PageSocket]:
    page = await PageSocket().connect(base, transports=transports)
    try:
        assert (await page.next("connection_status"))["status"] == "connected"
        yield page
    finally:
        if page.sio.transport() == "polling":
            # not waiting for its open long-poll, which engine.io ends only at its timeout
            await page.sio.eio.disconnect(abort=True)
        else:
            await page.close()


async def listen(page: PageSocket, session_id: str) -> None:
    joined = await page.call("join_test_session", {"sessionId": session_id})
    assert joined["room"] == f"test_session_{session_id}"
    await page.next("test_session_joined", sessionId=session_id)
    assert (await page.call("join_dashboard"))["room"] == "dashboard"


async def test_polling_and_websocket_clients_hear_the_same_events(
    settings: Settings, tmp_path: Path
) -> None:
    with served(settings, tmp_path / "api.log") as base:
        session_id = new_session(base, tmp_path)
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))
            polling = await stack.enter_async_context(page_on(base, ["polling"]))
            websocket = await stack.enter_async_context(page_on(base, ["websocket"]))
            assert polling.sio.transport() == "polling"
            assert websocket.sio.transport() == "websocket"
            for page in (polling, websocket):
                await listen(page, session_id)

            assert (await http.post(f"/api/test-sessions/{session_id}/start")).status_code == 200
            created = await http.post("/api/projects", json=PROJECT)
            assert created.status_code in (200, 201), created.text
            for page in (polling, websocket):
                update = await page.next("test_session_update", status="running")
                assert update["id"] == session_id
                heard = await page.next("project_created", projectId=created.json()["id"])
                assert heard["projectId"] == created.json()["id"]
            assert polling.sio.transport() == "polling"  # it never upgraded

            # the default transports (polling, then the upgrade, which python-engineio's client
            # makes before it joins anything) while dashboard events are flowing: it hears an
            # unbroken tail of them, each once (tests/unit/test_socketio_polling.py upgrades
            # mid-burst as socket.io-client does)
            made: list[str] = []

            async def create_projects() -> None:
                for _ in range(BURST):
                    reply = await http.post("/api/projects", json=PROJECT)
                    assert reply.status_code in (200, 201), reply.text
                    made.append(reply.json()["id"])

            burst = asyncio.create_task(create_projects())
            upgrading = await stack.enter_async_context(page_on(base, ["polling", "websocket"]))
            await upgrading.call("join_dashboard")
            await burst
            for page in (polling, websocket, upgrading):
                await page.next("project_created", projectId=made[-1], wait=15)
            assert upgrading.sio.transport() == "websocket"
            for page in (polling, websocket):
                assert project_ids(page)[-BURST:] == made
            tail = project_ids(upgrading)
            assert tail and tail == made[len(made) - len(tail) :], (tail, made)
    # the polling client's last long-poll was still open at the stop: the process closed it
    # instead of waiting out engine.io's 45 s (or uvicorn's graceful-shutdown limit)
    assert "graceful shutdown exceeded" not in (tmp_path / "api.log").read_text()


def project_ids(page: PageSocket) -> list[str]:
    return [str(data["projectId"]) for event, data in page.heard if event == "project_created"]
