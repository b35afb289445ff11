"""Values a read-model column or NATS cannot hold are refused at the HTTP edge (issue 14).

Each case was found by an attacker: the write side stored the value as an event, the
projection then failed on it forever, and every later write answered 202. Here the bad request
gets a 4xx naming the field, and a normal write afterwards is visible at once (200, not 202).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.e2e.helpers import api_client, write_video
from verity.settings import Settings

pytestmark = pytest.mark.e2e

PROJECT = {
    "name": "bounds",
    "cameraModel": "cam",
    "cameraView": "Front-facing VRU",
    "signalType": "GPIO",
}
ANNOTATION = {
    "frame_number": 3,
    "vru_type": "pedestrian",
    "bounding_box": {"x": 10, "y": 20, "width": 40, "height": 80},
}
BEYOND_INT32 = 2**31
BEYOND_INT64 = 2**63


@pytest.fixture
def client(settings: Settings) -> Any:
    with api_client(settings) as c:
        yield c


@pytest.fixture
def video_id(client: TestClient[Any], tmp_path: Path) -> str:
    path = write_video(tmp_path / "clip.mp4", size=(320, 240))
    with path.open("rb") as f:
        response = client.post("/api/videos", files={"file": ("clip.mp4", f, "video/mp4")})
    assert response.status_code == 200, response.text
    ident: str = response.json()["id"]
    return ident


def refused(response: Any, field: str) -> None:
    assert response.status_code in (400, 422), response.text
    assert field in response.json()["detail"], response.text


def assert_read_side_moves(client: TestClient[Any]) -> None:
    """A normal write is answered 200 with its own row, and /health stays healthy."""
    created = client.post("/api/projects", json={**PROJECT, "name": "after"})
    assert created.status_code == 200, created.text
    listed = client.get("/api/projects", params={"limit": 1000}).json()
    assert created.json()["id"] in {p["id"] for p in listed}
    health = client.get("/health")
    assert health.status_code == 200, health.text


def test_annotation_frame_number_beyond_int32_is_refused(
    client: TestClient[Any], video_id: str
) -> None:
    url = f"/api/videos/{video_id}/annotations"
    refused(client.post(url, json={**ANNOTATION, "frame_number": BEYOND_INT32}), "frameNumber")
    camel = {k: v for k, v in ANNOTATION.items() if k != "frame_number"}
    refused(client.post(url, json={**camel, "frameNumber": 10**30}), "frameNumber")
    refused(
        client.post(f"{url}/bulk", json=[{**ANNOTATION, "frame_number": BEYOND_INT32}]),
        "[0].frameNumber",
    )

    created = client.post(url, json=ANNOTATION)
    assert created.status_code == 200, created.text
    aid = created.json()["id"]
    refused(
        client.put(f"/api/annotations/{aid}", json={"frameNumber": BEYOND_INT32}), "frameNumber"
    )
    moved = client.put(f"/api/annotations/{aid}", json={"frameNumber": 7})
    assert moved.status_code == 200 and moved.json()["frameNumber"] == 7, moved.text
    assert_read_side_moves(client)


def test_annotation_session_total_frames_beyond_int32_is_refused(
    client: TestClient[Any], video_id: str
) -> None:
    started = client.post("/api/annotation-sessions", json={"videoId": video_id})
    assert started.status_code == 200, started.text
    url = f"/api/annotation-sessions/{started.json()['id']}"
    refused(client.put(url, json={"totalFrames": 484710358388901}), "totalFrames")
    refused(client.put(url, json={"currentFrame": BEYOND_INT32}), "currentFrame")

    updated = client.put(url, json={"currentFrame": 5, "totalFrames": 30})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["currentFrame"], updated.json()["totalFrames"]) == (5, 30)
    assert_read_side_moves(client)


def test_project_description_of_two_million_characters_is_refused(
    client: TestClient[Any],
) -> None:
    huge = "d" * 2_000_000
    refused(client.post("/api/projects", json={**PROJECT, "description": huge}), "description")
    created = client.post("/api/projects", json=PROJECT)
    assert created.status_code == 200, created.text
    url = f"/api/projects/{created.json()['id']}"
    refused(client.put(url, json={"description": huge}), "description")
    refused(client.put(url, json={"name": "nul\x00inside"}), "name")

    described = client.put(url, json={"description": "line one\nline two\tand a tab"})
    assert described.status_code == 200, described.text
    assert client.get(url).json()["description"] == "line one\nline two\tand a tab"
    assert_read_side_moves(client)


LISTS = (
    "/api/projects",
    "/api/videos",
    "/api/test-sessions",
    "/api/test-sessions/{sid}/detections",
    "/api/videos/{vid}/detections",
    "/api/test-sessions/{sid}/comparisons",
)


def test_skip_beyond_bigint_is_a_client_error_naming_skip(
    client: TestClient[Any], video_id: str
) -> None:
    sid = "00000000-0000-0000-0000-00000000abcd"
    for path in LISTS:
        url = path.format(sid=sid, vid=video_id)
        refused(client.get(url, params={"skip": BEYOND_INT64}), "skip")
        refused(client.get(url, params={"skip": -1}), "skip")
        assert client.get(url, params={"skip": 0}).status_code in (200, 404), url
    assert_read_side_moves(client)


def test_detection_ids_in_the_path_are_checked(client: TestClient[Any]) -> None:
    refused(client.get("/api/annotations/detection/a%00b"), "detectionId")
    refused(client.get(f"/api/annotations/detection/{'x' * 500}/frames"), "detectionId")
    assert client.get("/api/annotations/detection/DET_1").status_code == 200
