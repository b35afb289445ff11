"""Detections posted one per request by many clients at once: group-committed, each stored
exactly once, and a GET right after the last answer sees them all."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import api_client
from tests.e2e.test_detection_input import running_session
from tests.e2e.test_test_sessions_journey import frame
from verity.settings import Settings

pytestmark = pytest.mark.e2e

CLIENTS = 8
POSTS = 25
"""Per client, for each route."""
SMALL = {
    "detections": [{"classLabel": "cyclist", "box": {"x": 1, "y": 2, "width": 8, "height": 9}}] * 2
}
"""Two objects inside the 64x48 test video."""


def test_concurrent_posts_are_each_stored_once_and_share_transactions(
    settings: Settings, tmp_path: Path
) -> None:
    with api_client(settings) as client:
        sid = running_session(client, tmp_path)
        frames: Any = client.app.state.services.frames

        def single(k: int) -> list[str]:
            ids = []
            for i in range(POSTS):
                body = {"testSessionId": sid, "timestamp": (k * POSTS + i) / 30, "confidence": 0.5}
                r = client.post("/api/detection-events", json=body)
                assert r.status_code == 200, r.text
                ids.append(r.json()["detection_id"])  # T7 answers in snake_case
            return ids

        def batch(k: int) -> list[str]:
            """Every frame twice, from two clients: stored by one, `duplicate` for the other."""
            ids = []
            for seq in range(k // 2 * POSTS, (k // 2 + 1) * POSTS):
                r = client.post("/api/detection-events/batch", json=frame(sid, seq, **SMALL))
                assert r.status_code == 200, r.text
                if r.json()["status"] == "stored":
                    ids.extend(r.json()["detectionIds"])
            return ids

        calls = frames.calls
        with ThreadPoolExecutor(CLIENTS) as pool:
            answered = [d for ids in pool.map(single, range(CLIENTS)) for d in ids]
            answered += [d for ids in pool.map(batch, range(CLIENTS)) for d in ids]
        shared = frames.calls - calls
        listed = client.get(f"/api/test-sessions/{sid}/detections").json()
        session = client.get(f"/api/test-sessions/{sid}").json()

    posted_frames = CLIENTS * POSTS + CLIENTS // 2 * POSTS
    detections_per_frame = len(SMALL["detections"])
    expected = CLIENTS * POSTS + CLIENTS // 2 * POSTS * detections_per_frame
    assert len(answered) == len(set(answered)) == expected
    assert sorted(d["id"] for d in listed["detections"]) == sorted(answered)
    assert listed["total_detections"] == expected and session["frameCount"] == posted_frames
    assert shared < CLIENTS * POSTS * 2, "no store call held more than one post"


def test_a_refused_post_among_concurrent_ones_gets_its_own_error(
    settings: Settings, tmp_path: Path
) -> None:
    with api_client(settings) as client:
        sid = running_session(client, tmp_path)
        outside = {"x": 0, "y": 60, "width": 10, "height": 10}  # the video is 64x48

        def post(k: int) -> int:
            body: dict[str, Any] = {"testSessionId": sid, "timestamp": k / 30}
            if k % 4 == 0:
                body["boundingBox"] = outside
            return client.post("/api/detection-events", json=body).status_code

        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = list(pool.map(post, range(64)))
        count = client.get(f"/api/test-sessions/{sid}").json()["detectionCount"]

    assert statuses == [422 if k % 4 == 0 else 200 for k in range(64)]
    assert count == 48
