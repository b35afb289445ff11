"""Socket.IO under the same access table as HTTP: a real `verity serve` with anonymous access
off; the connect is checked (a token in `auth.token`), every event against SOCKET_IO, and a
session command recorded as done by the token's principal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import socketio

from tests.conftest import fresh_database
from tests.e2e.helpers import served
from tests.e2e.identity import bearer, cli_token
from tests.e2e.socketio_client import PageSocket
from tests.e2e.test_test_sessions_journey import project_with_video
from verity.settings import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url, "verity_socketio_access") as url:
        yield url


def guarded_session(base: str, admin: str, tmp_path: Path) -> str:
    with httpx.Client(base_url=base, timeout=30, headers=bearer(admin)) as http:
        project_id, video_id = project_with_video(http, tmp_path)  # type: ignore[arg-type]
        body = {"name": "guarded", "projectId": project_id, "videoId": video_id}
        created = http.post("/api/test-sessions", json=body)
        assert created.status_code == 200, created.text
        return str(created.json()["id"])


async def test_socketio_connect_and_events_follow_the_access_table(
    settings: Settings, tmp_path: Path
) -> None:
    admin = cli_token(settings, "--name", "sio-admin", "--role", "admin")
    viewer = cli_token(settings, "--name", "sio-viewer", "--role", "viewer")
    analyst = cli_token(settings, "--name", "sio-analyst", "--role", "analyst")
    with served(settings, tmp_path / "api.log", VERITY_ANONYMOUS_ROLE="none") as base:
        sid = guarded_session(base, admin, tmp_path)

        anonymous = PageSocket()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await anonymous.connect(base)
        bad = PageSocket()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await bad.connect(base, token="vrt_0_forged")

        watcher = await PageSocket().connect(base, token=viewer)
        try:
            await watcher.next("connection_status")
            joined = await watcher.call("join_test_session", {"sessionId": sid})
            assert joined["sessionId"] == sid
            refused = await watcher.call("start_test_session", {"sessionId": sid})
            assert refused["status"] == 403
            assert "token:sio-viewer" in refused["detail"] and "run_tests" in refused["detail"]
            assert (await watcher.next("error", event="start_test_session"))["status"] == 403
        finally:
            await watcher.close()

        runner = await PageSocket().connect(base, token=analyst)
        try:
            await runner.next("connection_status")
            started = await runner.call("start_test_session", {"sessionId": sid})
            assert started["status"] == "running", started
        finally:
            await runner.close()

        async with httpx.AsyncClient(base_url=base, timeout=30, headers=bearer(admin)) as http:
            found = await http.get("/api/audit/events", params={"aggregateId": sid})
            log = found.json()["events"]
    started_events = [e for e in log if e["type"] == "started"]
    assert [e["actor"] for e in started_events] == ["token:sio-analyst"]
