"""Bulk review of a detector's candidates: accepted ones become ground truth that an evaluation
scores against; rejected ones are gone; bad filters are 422 naming the field."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from litestar.testing import TestClient

from domain.ground_truth import counts_as_ground_truth
from tests.e2e.helpers import api_client
from tests.e2e.identity import bearer, cli_token
from tests.e2e.test_evaluation_journey import (
    BOX,
    annotate,
    hit,
    project_with_video,
    run_session,
    wait_results,
)
from verity.settings import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(settings: Settings) -> Any:
    with api_client(settings) as c:
        yield c


def candidate(
    client: TestClient[Any], video_id: str, frame: int, confidence: float, vru: str = "pedestrian"
) -> str:
    box = {**BOX, "confidence": confidence}
    return annotate(client, video_id, frame, source="detector", vru_type=vru, bounding_box=box)


def review(client: TestClient[Any], video_id: str, token: str = "", **body: Any) -> Any:
    """As the holder of `token` (an annotator's), or anonymously."""
    headers = bearer(token) if token else {}
    return client.post(f"/api/videos/{video_id}/candidates/review", json=body, headers=headers)


def events_of(settings: Settings, ident: str) -> list[tuple[str, bytes]]:
    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT topic, state FROM verity_events WHERE originator_id = %s"
            " ORDER BY originator_version",
            (ident,),
        ).fetchall()
    return [(r[0].rsplit(".", 1)[-1], bytes(r[1])) for r in rows]


def test_review_by_confidence_class_and_frames_feeds_the_evaluation(
    client: TestClient[Any], tmp_path: Path, settings: Settings
) -> None:
    project_id, video_id = project_with_video(client, tmp_path)
    assert client.get(f"/api/videos/{video_id}").json()["groundTruthGenerated"] is False
    c0 = candidate(client, video_id, 0, 0.9)
    c3 = candidate(client, video_id, 3, 0.8)
    c6 = candidate(client, video_id, 6, 0.95, "cyclist")
    c9 = candidate(client, video_id, 9, 0.3)
    c20 = candidate(client, video_id, 20, 0.85)
    video = client.get(f"/api/videos/{video_id}").json()
    assert video["groundTruthGenerated"] is True and video["groundTruthStatus"] == "completed"

    reviewer_1 = cli_token(settings, "--name", "reviewer-1", "--role", "annotator")
    reviewer_2 = cli_token(settings, "--name", "reviewer-2", "--role", "annotator")
    accepted = review(
        client,
        video_id,
        reviewer_1,
        action="accept",
        minConfidence=0.7,
        classes=["pedestrian"],
        frameFrom=0,
        frameTo=10,
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {
        "videoId": video_id,
        "action": "accept",
        "matched": 2,
        "accepted": 2,
        "rejected": 0,
        "skipped": 0,
        "remaining": 3,
    }
    rejected = review(client, video_id, reviewer_2, action="reject", maxConfidence=0.5)
    assert rejected.json()["rejected"] == 1 and rejected.json()["remaining"] == 2
    again = review(client, video_id, action="accept", minConfidence=0.7, frameTo=10)
    assert again.json()["matched"] == 1  # c6 (a cyclist); c0 and c3 are no longer candidates
    assert again.json()["accepted"] == 1
    c6_kept = review(client, video_id, action="reject", classes=["cyclist"])
    assert c6_kept.json()["matched"] == 0  # accepted just now: not a candidate any more

    kinds = events_of(settings, c0)
    assert [k for k, _ in kinds] == ["Created", "Validated"]
    assert b'"actor":"token:reviewer-1"' in kinds[-1][1]
    gone = events_of(settings, c9)
    assert [k for k, _ in gone] == ["Created", "Deleted"]
    assert b"rejected in review" in gone[-1][1] and b'"actor":"token:reviewer-2"' in gone[-1][1]

    rows = client.get(f"/api/videos/{video_id}/annotations").json()
    truth = {
        r["id"]
        for r in rows
        if counts_as_ground_truth(
            SimpleNamespace(source=r["source"], validated=r["validated"], deleted=False)
        )
    }
    assert truth == {c0, c3, c6}
    assert {r["id"] for r in rows} == {c0, c3, c6, c20}  # c9 rejected, c20 still a candidate

    # detections on frames 0, 3 (accepted: found), 20 (the unreviewed candidate: not truth)
    sid = run_session(client, project_id, video_id, [])
    for seq, (frame_number, detections) in enumerate(
        [(0, [hit(x=12)]), (3, [hit(y=22)]), (20, [hit()])]
    ):
        body = {
            "deviceId": "cam-1",
            "sessionId": sid,
            "seq": seq,
            "frameNumber": frame_number,
            "timestamp": frame_number / 10,
            "detections": detections,
        }
        assert client.post("/api/detection-events/batch", json=body).status_code == 200
    assert client.post(f"/api/test-sessions/{sid}/complete").status_code == 200
    r = wait_results(client, sid).json()
    # truth: frames 0, 3 (pedestrians) and 6 (the accepted cyclist, never detected)
    assert (r["true_positives"], r["false_positives"], r["false_negatives"]) == (2, 1, 1)


BAD_INPUTS: list[tuple[dict[str, Any], str]] = [
    ({"action": "approve"}, "action"),
    ({}, "action"),
    ({"action": "accept", "minConfidence": 1.5}, "minConfidence"),
    ({"action": "accept", "maxConfidence": -0.1}, "maxConfidence"),
    ({"action": "accept", "minConfidence": 0.9, "maxConfidence": 0.1}, "maxConfidence"),
    ({"action": "accept", "classes": ["truck"]}, "classes"),
    ({"action": "accept", "frameFrom": -1}, "frameFrom"),
    ({"action": "reject", "frameTo": 10**12}, "frameTo"),
    ({"action": "reject", "frameFrom": 10, "frameTo": 5}, "frameTo"),
]


def test_review_inputs_out_of_range_are_422_naming_the_field(
    client: TestClient[Any], tmp_path: Path
) -> None:
    _, video_id = project_with_video(client, tmp_path)
    candidate(client, video_id, 0, 0.9)
    for body, field in BAD_INPUTS:
        response = review(client, video_id, **body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"].startswith(field), (body, response.json())
    assert review(client, video_id, action="accept").json()["accepted"] == 1  # nothing was done


def test_review_of_an_unknown_video_is_404(client: TestClient[Any]) -> None:
    missing = uuid4()
    response = review(client, str(missing), action="accept")
    assert response.status_code == 404
    assert str(missing) in response.json()["detail"] or "Video" in response.json()["detail"]
