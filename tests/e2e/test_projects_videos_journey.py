"""A user's journey through projects and videos, over HTTP and WebSocket, on real servers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest
from litestar.testing import TestClient

from domain.projects import CENTRAL_STORE_ID
from tests.e2e.helpers import api_client, next_event, write_video
from verity.settings import Settings

pytestmark = pytest.mark.e2e

NEW_PROJECT = {
    "name": "Front camera A",
    "description": "Pedestrian crossing tests",
    "cameraModel": "AX-200",
    "cameraView": "Front-facing VRU",
    "signalType": "GPIO",
    "frameRate": 30,
}


@pytest.fixture
def client(settings: Settings) -> Any:
    with api_client(settings) as c:
        yield c


def create_project(client: TestClient[Any], **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/projects", json={**NEW_PROJECT, **overrides})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def upload(client: TestClient[Any], url: str, path: Path, name: str | None = None) -> Any:
    with path.open("rb") as f:
        return client.post(url, files={"file": (name or path.name, f, "video/mp4")})


def test_create_project_is_visible_at_once_stored_as_events_and_announced(
    client: TestClient[Any], settings: Settings
) -> None:
    with client.websocket_connect("/ws") as ws:
        assert next_event(ws, "connection_status")["data"]["status"] == "connected"
        ws.send_json({"action": "join", "room": "dashboard"})
        assert next_event(ws, "joined")["room"] == "dashboard"
        started = time.monotonic()
        project = create_project(client)
        announced = next_event(ws, "project_created", timeout=1.0, projectId=project["id"])
        assert time.monotonic() - started < 1.0
    assert announced["data"]["projectId"] == project["id"]
    assert announced["data"]["name"] == "Front camera A"
    assert project["cameraView"] == "Front-facing VRU" and project["status"] == "active"

    listed = client.get("/api/projects").json()
    assert project["id"] in [p["id"] for p in listed]
    assert str(CENTRAL_STORE_ID) not in [p["id"] for p in listed]

    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT topic, state FROM verity_events WHERE originator_id = %s", (project["id"],)
        ).fetchall()
    assert [r[0] for r in rows] == ["domain.projects:Project.Created"]
    assert b'"correlation_id"' in bytes(rows[0][1])


def test_websocket_bad_messages_get_an_error_not_a_hang_up(client: TestClient[Any]) -> None:
    with client.websocket_connect("/ws") as ws:
        next_event(ws, "connection_status")
        ws.send_text("not json")
        assert "JSON" in next_event(ws, "error")["data"]["detail"]
        ws.send_json({"action": "join", "room": "../etc"})
        assert next_event(ws, "error")["data"]["detail"].startswith("room:")
        ws.send_json({"action": "dance"})
        assert "Unknown action" in next_event(ws, "error")["data"]["detail"]
        ws.send_json({"action": "ping"})
        assert next_event(ws, "pong")["event"] == "pong"


def test_deleting_a_project_deletes_its_videos_and_files(
    client: TestClient[Any], tmp_path: Path, settings: Settings
) -> None:
    project = create_project(client)
    video = upload(client, f"/api/projects/{project['id']}/videos", write_video(tmp_path / "a.mp4"))
    stored = settings.uploads_dir / video.json()["storedName"]
    assert stored.exists()
    assert client.delete(f"/api/projects/{project['id']}").status_code == 200
    assert client.get(f"/api/videos/{video.json()['id']}").status_code == 404
    assert not stored.exists()


def test_update_then_delete_project(client: TestClient[Any]) -> None:
    project = create_project(client)
    updated = client.put(
        f"/api/projects/{project['id']}", json={"status": "testing", "lens_type": "wide"}
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["status"], updated.json()["lensType"]) == ("testing", "wide")
    assert updated.json()["version"] == 2
    assert client.delete(f"/api/projects/{project['id']}").json() == {
        "message": "Project deleted successfully"
    }
    gone = client.get(f"/api/projects/{project['id']}")
    assert gone.status_code == 404 and gone.json()["detail"] == "Project not found"
    again = client.put(f"/api/projects/{project['id']}", json={"name": "x"})
    assert again.status_code == 404 and "was deleted" in again.json()["detail"]


def test_upload_link_and_unlink_a_generated_video(client: TestClient[Any], tmp_path: Path) -> None:
    project = create_project(client)
    video_file = write_video(tmp_path / "crossing.mp4", frames=30, fps=10.0)
    response = upload(client, f"/api/projects/{project['id']}/videos", video_file)
    assert response.status_code == 200, response.text
    video = response.json()
    assert (
        video["projectId"] == project["id"]
        and video["originalName"] == video["name"] == "crossing.mp4"
    )

    listed = client.get(f"/api/projects/{project['id']}/videos").json()
    assert [v["id"] for v in listed] == [video["id"]]
    item = listed[0]
    assert item["fps"] == pytest.approx(10.0)
    assert item["duration"] == pytest.approx(3.0)
    assert item["size"] == item["fileSize"] == video_file.stat().st_size
    assert (item["width"], item["height"]) == (64, 48)
    assert (
        client.get(item["url"].split("testserver.local")[-1].split(":8000")[-1]).content
        == video_file.read_bytes()
    )

    central = upload(client, "/api/videos", video_file, "second.mp4").json()
    assert central["projectId"] == str(CENTRAL_STORE_ID)
    available = client.get("/api/ground-truth/videos/available").json()
    assert central["id"] in [v["id"] for v in available] and "file_size" in available[0]

    linked = client.post(
        f"/api/projects/{project['id']}/videos/link", json={"video_ids": [central["id"]]}
    )
    assert linked.json()["linked_count"] == 1
    assert {v["id"] for v in client.get(f"/api/projects/{project['id']}/videos/linked").json()} == {
        video["id"],
        central["id"],
    }
    assert (
        client.delete(f"/api/projects/{project['id']}/videos/{central['id']}/unlink").status_code
        == 200
    )
    assert client.get(f"/api/videos/{central['id']}").json()["projectId"] == str(CENTRAL_STORE_ID)
    page = client.get("/api/videos", params={"unassigned": "true"}).json()
    assert central["id"] in [v["id"] for v in page["videos"]] and page["total"] >= 1
    assert video["id"] not in [v["id"] for v in page["videos"]]
    # `false` is no filter, as in the original (the Ground Truth page asks with it)
    for params in ({"unassigned": "false"}, {}):
        every = client.get("/api/videos", params={**params, "limit": 1000}).json()
        assert {video["id"], central["id"]} <= {v["id"] for v in every["videos"]}
        assert every["total"] == len(every["videos"]) > page["total"]


def test_bad_input_is_refused_with_a_named_field(
    client: TestClient[Any], tmp_path: Path, settings: Settings
) -> None:
    missing = "11111111-1111-1111-1111-111111111111"
    assert client.get(f"/api/projects/{missing}").json()["detail"] == "Project not found"
    assert client.get(f"/api/videos/{missing}").status_code == 404
    bad_enum = client.post("/api/projects", json={**NEW_PROJECT, "signalType": "Bluetooth"})
    assert bad_enum.status_code == 422
    assert bad_enum.json()["detail"].startswith("signalType: Invalid enum value 'Bluetooth'")
    assert "CAN Bus" in bad_enum.json()["detail"]
    blank = client.post("/api/projects", json={**NEW_PROJECT, "name": "  "})
    assert blank.status_code == 422 and blank.json()["detail"].startswith("name")

    project = create_project(client)
    url = f"/api/projects/{project['id']}/videos"
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    assert upload(client, url, text_file).status_code == 400
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all" * 100)
    refused = upload(client, url, fake)
    assert refused.status_code == 400 and "not a readable video" in refused.json()["detail"]
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert upload(client, url, empty).status_code == 400
    escaping = upload(client, url, write_video(tmp_path / "ok.mp4"), "../../etc/evil.mp4")
    assert escaping.status_code == 200
    assert escaping.json()["originalName"] == "evil.mp4"
    stored = sorted(p.name for p in settings.uploads_dir.iterdir())
    assert stored == [escaping.json()["storedName"]]  # nothing of the refused uploads was kept
    assert client.get(url).json()[0]["id"] == escaping.json()["id"]


def test_oversized_upload_is_413_and_leaves_nothing(settings: Settings, tmp_path: Path) -> None:
    import msgspec

    small = msgspec.structs.replace(settings, max_upload_bytes=2000)
    with api_client(small) as client:
        project = create_project(client)
        big = write_video(tmp_path / "big.mp4", frames=60, size=(160, 120))
        assert big.stat().st_size > 2000
        response = upload(client, f"/api/projects/{project['id']}/videos", big)
        assert response.status_code == 413 and "size limit" in response.json()["detail"]
        assert client.get(f"/api/projects/{project['id']}/videos").json() == []
        assert list(small.uploads_dir.iterdir()) == []


def test_relay_publishes_every_event_with_its_store_and_position(
    client: TestClient[Any], settings: Settings
) -> None:
    project = create_project(client)
    client.put(f"/api/projects/{project['id']}", json={"name": "renamed"})

    async def read_stream() -> list[tuple[str, str, dict[str, Any]]]:
        import msgspec

        nc = await nats.connect(settings.nats_url or "")
        js = nc.jetstream()
        sub = await js.subscribe(f"{settings.events_subject}.project.>", ordered_consumer=True)
        found = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                continue
            env = msgspec.json.decode(msg.data)
            if env["aggregateId"] == project["id"]:
                found.append((msg.subject, (msg.headers or {})["Nats-Msg-Id"], env))
            if len(found) == 2:
                break
        await nc.close()
        return found

    found = asyncio.run(read_stream())
    assert [f[0] for f in found] == [
        f"{settings.events_subject}.project.created",
        f"{settings.events_subject}.project.updated",
    ]
    with psycopg.connect(settings.database_url or "") as conn:
        row = conn.execute("SELECT id FROM store_identity").fetchone()
    assert row is not None
    for _, msg_id, env in found:
        assert msg_id == f"{row[0]}:{env['position']}"  # unique per store, not just position
        assert env["actor"] == "anonymous" and env["correlationId"]
    assert found[1][2]["data"]["changes"] == {"name": "renamed"}
