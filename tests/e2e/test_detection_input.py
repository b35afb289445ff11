"""The detection routes answer any body with a 4xx naming what is wrong, never a 500 (issue 14).

The frame route takes the device wire format, so every message that jammed the ingest is
posted here too; a frame refused is not stored, and the next good one is stored and read back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.e2e.helpers import api_client
from tests.e2e.test_test_sessions_journey import frame, project_with_video
from verity.settings import Settings

pytestmark = pytest.mark.e2e

BATCH = "/api/detection-events/batch"


def one_object(**obj: Any) -> list[dict[str, Any]]:
    return [{"classLabel": "cyclist", **obj}]


UNDECODABLE = [
    b"1 x",
    b'"a"b',
    b'{"a":1}}',
    b"1e400",
    b"[" * 100_000,
    b"\xff\xfe",
    b"{",
    b'{"deviceId": "\x80"}',
]
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"seq": 2**63}, "$.seq"),
    ({"seq": -1}, "$.seq"),
    ({"frameNumber": 2**31}, "$.frameNumber"),
    ({"timestamp": 1e308}, "$.timestamp"),
    ({"modelVersion": "v\x001"}, "$.modelVersion"),
    ({"deviceId": "a" * 500}, "$.deviceId"),
    ({"detections": one_object(trackId="7\x00")}, "trackId"),
    ({"detections": one_object(box={"x": 1e308, "y": 0, "width": 1, "height": 1})}, "box.x"),
    ({"detections": one_object(box={"x": 0, "y": 0, "width": -1, "height": 1})}, "box.width"),
    ({"detections": one_object(confidence=2)}, "confidence"),
    ({"detections": one_object() * 1001}, "$.detections"),
    ({"detections": "nope"}, "$.detections"),
    ({"capturedAt": "9999-12-31T23:00:00-05:00"}, "capturedAt"),
]


def test_the_frame_route_refuses_every_bad_body_naming_why_and_stores_the_next_frame(
    settings: Settings, tmp_path: Path
) -> None:
    with api_client(settings) as client:
        sid = running_session(client, tmp_path)
        for body in UNDECODABLE:
            r = client.post(BATCH, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400, (body[:20], r.text)
            assert r.json()["detail"]
        for change, field in INVALID:
            r = client.post(BATCH, json={**frame(sid, 1), **change})
            assert r.status_code == 422, (change, r.text)
            assert field in r.json()["detail"], (change, r.json())
        # the upload is 64 x 48: a box wholly right of it is not something seen in it
        outside = one_object(box={"x": 100, "y": 0, "width": 10, "height": 10})
        r = client.post(BATCH, json={**frame(sid, 1), "detections": outside})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "detections[0].box"
        assert "width 64" in r.json()["detail"]

        good = client.post(BATCH, json=frame(sid, 2))
        assert good.status_code == 200 and good.json()["status"] == "stored"
        session = client.get(f"/api/test-sessions/{sid}").json()
        assert session["frameCount"] == 1
        listed = client.get(f"/api/test-sessions/{sid}/detections").json()["detections"]
        assert {d["seq"] for d in listed} == {2}


def test_the_single_detection_route_names_its_own_fields(
    settings: Settings, tmp_path: Path
) -> None:
    with api_client(settings) as client:
        sid = running_session(client, tmp_path)
        base = {"testSessionId": sid, "timestamp": 1.0, "classLabel": "pedestrian"}
        cases: list[tuple[dict[str, Any], str]] = [
            ({"frameNumber": 2**31}, "rame"),
            ({"trackId": "7\x00"}, "rack"),
            ({"modelVersion": "m" * 500}, "odel"),
        ]
        for change, field in cases:
            r = client.post("/api/detection-events", json={**base, **change})
            assert r.status_code in {400, 422}, (change, r.text)
            assert field in r.json()["detail"] or field in str(r.json().get("errors")), r.json()
        outside = {"x": 0, "y": 60, "width": 10, "height": 10}
        r = client.post("/api/detection-events", json={**base, "boundingBox": outside})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "bounding_box"
        blank = client.post("/api/detection-events", json={**base, "trackId": ""})
        assert blank.status_code == 200, blank.text  # the original's clients send "" for none
        assert client.get(f"/api/test-sessions/{sid}").json()["frameCount"] == 1


def running_session(client: TestClient[Any], tmp_path: Path) -> str:
    project_id, video_id = project_with_video(client, tmp_path)
    body = {"name": "s", "projectId": project_id, "videoId": video_id}
    sid: str = client.post("/api/test-sessions", json=body).json()["id"]
    assert client.post(f"/api/test-sessions/{sid}/start").status_code in {200, 202}
    return sid
