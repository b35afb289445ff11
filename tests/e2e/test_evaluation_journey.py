"""Evaluation over HTTP, WebSocket and NATS on real servers: completion, results, re-runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from litestar.testing import TestClient

from tests.e2e.helpers import api_client, next_event, write_video
from verity.settings import Settings

pytestmark = pytest.mark.e2e

PROJECT = {
    "name": "Evaluation",
    "cameraModel": "AX-200",
    "cameraView": "Front-facing VRU",
    "signalType": "GPIO",
}
BOX = {"x": 10, "y": 20, "width": 50, "height": 120}


@pytest.fixture
def client(settings: Settings) -> Any:
    with api_client(settings) as c:
        yield c


def project_with_video(client: TestClient[Any], tmp_path: Path) -> tuple[str, str]:
    project = client.post("/api/projects", json=PROJECT).json()
    path = write_video(tmp_path / f"clip-{uuid4().hex[:6]}.mp4", size=(640, 480))
    with path.open("rb") as f:
        response = client.post(
            f"/api/projects/{project['id']}/videos", files={"file": ("clip.mp4", f, "video/mp4")}
        )
    assert response.status_code == 200, response.text
    return project["id"], response.json()["id"]


def annotate(client: TestClient[Any], video_id: str, frame: int, **extra: Any) -> str:
    body = {
        "frame_number": frame,
        "timestamp": frame / 10,
        "vru_type": "pedestrian",
        "bounding_box": BOX,
        **extra,
    }
    response = client.post(f"/api/videos/{video_id}/annotations", json=body)
    assert response.status_code in (200, 201), response.text
    ident: str = response.json()["id"]
    return ident


def frame(session: str, seq: int, frame_number: int, detections: list[dict[str, Any]]) -> Any:
    return {
        "deviceId": "cam-1",
        "sessionId": session,
        "seq": seq,
        "frameNumber": frame_number,
        "timestamp": frame_number / 10,
        "capturedAt": "2026-11-21T10:00:00.123Z",
        "detections": detections,
    }


def hit(**box: float) -> dict[str, Any]:
    return {"classLabel": "pedestrian", "confidence": 0.9, "box": {**BOX, **box}}


def run_session(
    client: TestClient[Any], project_id: str, video_id: str, frames: list[list[dict[str, Any]]]
) -> str:
    sid: str = client.post(
        "/api/test-sessions", json={"name": "run", "projectId": project_id, "videoId": video_id}
    ).json()["id"]
    assert client.post(f"/api/test-sessions/{sid}/start").status_code == 200
    for seq, detections in enumerate(frames):
        r = client.post("/api/detection-events/batch", json=frame(sid, seq, 3 * seq, detections))
        assert r.status_code == 200, r.text
    return sid


def wait_results(client: TestClient[Any], sid: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/test-sessions/{sid}/results")
        if response.status_code != 202:
            return response
        time.sleep(0.2)
    raise AssertionError(f"results of {sid} still pending after {timeout}s")


def test_completion_results_reruns_and_statistics(
    client: TestClient[Any], tmp_path: Path, settings: Settings
) -> None:
    project_id, video_id = project_with_video(client, tmp_path)
    criteria = client.post(
        f"/api/projects/{project_id}/criteria/configure",
        json={"min_precision": 0.5, "min_recall": 0.5, "min_f1_score": 0.5, "max_latency_ms": 500},
    )
    assert criteria.status_code == 200, criteria.text
    got = client.get(f"/api/projects/{project_id}/criteria").json()
    assert got["min_precision"] == got["minPrecision"] == 0.5
    assert got["max_latency_ms"] == 500

    gt = [annotate(client, video_id, f) for f in (0, 3, 6)]
    annotate(client, video_id, 9, source="detector")  # an unvalidated candidate: not truth

    # frame 0 found, frame 3 found plus a false alarm, frame 6 missed
    frames = [[hit(x=12)], [hit(y=22), hit(x=400, y=300)], []]
    sid = run_session(client, project_id, video_id, [])
    with client.websocket_connect("/ws") as ws:
        next_event(ws, "connection_status")
        ws.send_json({"action": "join", "room": f"test_session:{sid}"})
        next_event(ws, "joined")
        for seq, detections in enumerate(frames):
            client.post("/api/detection-events/batch", json=frame(sid, seq, 3 * seq, detections))
        progress = next_event(ws, "test_progress", timeout=10.0, running=True)
        assert client.get(f"/api/test-sessions/{sid}/results").status_code == 202
        assert client.post(f"/api/test-sessions/{sid}/complete").status_code == 200
        completed = next_event(ws, "test_completed", timeout=20.0, sessionId=sid)
    assert progress["data"]["precision"] is not None and progress["data"]["recall"] is not None
    assert progress["data"]["frameCount"] >= 1 and "progress" in progress["data"]
    assert completed["data"]["results"]["truePositives"] == 2
    assert completed["data"]["results"]["precision"] == 66.67  # percent, two decimals

    results = wait_results(client, sid)
    assert results.status_code == 200, results.text
    r = results.json()
    assert (r["true_positives"], r["false_positives"], r["false_negatives"]) == (2, 1, 1)
    assert r["truePositives"] == 2 and r["totalDetections"] == r["total_detections"] == 3
    assert r["precision"] == r["recall"] == 66.67  # 2/3 as the pages print it: two decimals
    assert r["accuracy"] == pytest.approx(50.0)
    assert r["f1Score"] == r["f1_score"] == 66.67
    # the frontend reads TestSession.metrics in lists and on the session itself
    listed = client.get(f"/api/test-sessions?projectId={project_id}").json()
    one = client.get(f"/api/test-sessions/{sid}").json()
    for session in (next(s for s in listed if s["id"] == sid), one):
        m = session["metrics"]
        assert (m["truePositives"], m["falsePositives"], m["falseNegatives"]) == (2, 1, 1)
        assert m["precision"] == pytest.approx(r["precision"])
        assert m["accuracy"] == pytest.approx(50.0) and m["f1Score"] == pytest.approx(r["f1Score"])

    d = client.get(f"/api/test-sessions/{sid}/detailed-results").json()
    m = d["metrics"]
    assert m["precision"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(0.5)
    assert 0 <= m["ap"] <= m["ap50"] <= 1 and m["ap75"] is not None
    assert d["intervals"]["precision"]["method"] == "wilson"
    assert d["groundTruth"]["annotations"] == 3 and d["groundTruth"]["position"] > 0
    assert d["verdict"]["outcome"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert d["latency"]["count"] == 2 and d["confusion"]["labels"][-1] == "background"

    page = client.get(f"/api/test-sessions/{sid}/comparisons", params={"limit": 1}).json()
    assert page["total"] == 4 and len(page["items"]) == 1
    tps = client.get(f"/api/test-sessions/{sid}/comparisons", params={"status": "TP"}).json()
    assert tps["total"] == 2 and all(i["iou"] > 0.9 for i in tps["items"])
    assert {i["groundTruth"]["ref"] for i in tps["items"]} == set(gt[:2])

    csv = client.get(f"/api/test-sessions/{sid}/export", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert len(csv.text.strip().splitlines()) == 5
    exported = client.get(f"/api/test-sessions/{sid}/export", params={"format": "json"}).json()
    assert len(exported["comparisons"]) == 4
    for kind in ("pr-curve", "confusion"):
        svg = client.get(f"/api/test-sessions/{sid}/charts/{kind}")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg")
        assert svg.text.startswith("<svg")

    ci = client.get(f"/api/validation/confidence-intervals/{sid}").json()
    lo, hi = ci["precision"]
    assert lo < 2 / 3 < hi and ci["sample_size"] == 4 and ci["confidence_level"] == 0.95

    stats = client.get("/api/dashboard/stats").json()
    # the dashboard spans every session in the database (other tests' too): compare with the
    # newest recorded evaluation of each session, read straight from the read model
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT avg(accuracy), count(*) FROM (SELECT DISTINCT ON (session_id) accuracy FROM"
            " rm_evaluations WHERE status = 'recorded' ORDER BY session_id, created_at DESC) x"
        ).fetchone()
    assert row is not None
    average = stats["averageAccuracy"]
    assert average == stats["average_accuracy"] == pytest.approx(100 * row[0], abs=0.005)
    assert stats["evaluated_sessions"] == row[1] >= 1 and stats["testCount"] >= 1
    charts = client.get("/api/dashboard/charts").json()
    assert 0 < charts["accuracyTrend"][-1]["accuracy"] <= 100
    # the page prints these percentages as they come: two decimals at most
    intervals = stats["confidence_intervals"]
    trend = stats["trend_analysis"]
    assert {trend["accuracy"], trend["detectionRate"]} <= {"improving", "declining", "stable"}
    shown = [average, trend["accuracyChange"], trend["detectionRateChange"]]
    shown += [v for key in ("precision", "recall", "f1_score") for v in intervals[key]]
    shown += [point["accuracy"] for point in charts["accuracyTrend"]]
    assert all(v is not None and round(v, 2) == v for v in shown), shown
    assert any(round(v, 1) != v for v in shown), "no figure to round: the check proves nothing"

    # Edit the ground truth: frame 3's box moves away, frame 6's object is deleted.
    moved = client.put(f"/api/annotations/{gt[1]}", json={"bounding_box": {**BOX, "x": 500}})
    assert moved.status_code == 200, moved.text
    assert client.delete(f"/api/annotations/{gt[2]}").status_code == 200

    pinned = client.post(f"/api/test-sessions/{sid}/evaluate", json={"groundTruth": "pinned"})
    assert pinned.status_code == 200, pinned.text
    p = pinned.json()
    assert p["current"] == p["previous"]
    assert all(c["delta"] in (0, None) for c in p["changes"].values())

    latest = client.post(f"/api/test-sessions/{sid}/evaluate", json={"ground_truth": "latest"})
    assert latest.status_code == 200, latest.text
    lt = latest.json()
    assert (lt["current"]["tp"], lt["current"]["fp"], lt["current"]["fn"]) == (1, 2, 1)
    assert lt["changes"]["tp"]["delta"] == -1
    assert lt["groundTruthChanges"] == {"added": 0, "removed": 1, "changed": 1, "unchanged": 1}
    now = client.get(f"/api/test-sessions/{sid}/results").json()
    assert now["precision"] == 33.33
    history = client.get(f"/api/test-sessions/{sid}/evaluations").json()
    assert [h["trigger"] for h in history] == ["rerun_latest", "rerun_pinned", "completed"]

    # A second run on the same video: the statistical run compares it with the first.
    second = run_session(client, project_id, video_id, [[hit()], [hit()], [hit(x=1)]])
    client.post(f"/api/test-sessions/{second}/complete")
    assert wait_results(client, second).status_code == 200
    run = client.post(
        "/api/validation/statistical/run",
        json={"test_session_id": second, "confidence_level": 0.9},
    )
    assert run.status_code == 200, run.text
    body = run.json()
    assert body["trend_analysis"]["baseline_session_id"] == sid
    assert 0 < body["p_value"] <= 1 and body["pValue"] == body["p_value"]
    batch = client.post("/api/results/batch-analysis", json={"sessionIds": [sid, second]})
    assert batch.status_code == 200, batch.text
    assert len(batch.json()["sessions"]) == 2 and len(batch.json()["pairedComparisons"]) == 1


def test_bad_input_is_refused_with_the_field_or_the_missing_thing(
    client: TestClient[Any], tmp_path: Path
) -> None:
    unknown = uuid4()
    for url in (
        f"/api/test-sessions/{unknown}/results",
        f"/api/test-sessions/{unknown}/detailed-results",
        f"/api/test-sessions/{unknown}/comparisons",
        f"/api/validation/confidence-intervals/{unknown}",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/api/test-sessions/{unknown}/evaluate").status_code == 404

    project_id, video_id = project_with_video(client, tmp_path)
    for body, field in (
        ({"min_precision": 1.5}, "min_precision"),
        ({"min_recall": -0.1}, "min_recall"),
        ({"min_f1_score": 2}, "min_f1_score"),
        ({"max_latency_ms": 0}, "max_latency_ms"),
        ({"maxLatencyMs": -3}, "max_latency_ms"),
    ):
        r = client.post(f"/api/projects/{project_id}/criteria/configure", json=body)
        assert r.status_code == 422 and field in r.json()["detail"], (body, r.text)
    assert client.post(f"/api/projects/{uuid4()}/criteria/configure", json={}).status_code == 404

    # A video nobody annotated: the session completes, its evaluation says what is missing.
    sid = run_session(client, project_id, video_id, [[hit()]])
    client.post(f"/api/test-sessions/{sid}/complete")
    results = wait_results(client, sid)
    assert results.status_code == 409 and "ground truth" in results.json()["detail"]
    again = client.post(f"/api/test-sessions/{sid}/evaluate")
    assert again.status_code == 409 and "ground truth" in again.json()["detail"]
    pinned = client.post(f"/api/test-sessions/{sid}/evaluate", json={"groundTruth": "pinned"})
    assert pinned.status_code == 409 and "groundTruth" in pinned.json()["detail"]
    wrong = client.post(f"/api/test-sessions/{sid}/evaluate", json={"groundTruth": "newest"})
    assert wrong.status_code == 422 and "groundTruth" in wrong.json()["detail"]
    level = client.post(
        "/api/validation/statistical/run", json={"test_session_id": sid, "confidence_level": 0.3}
    )
    assert level.status_code == 422 and "confidenceLevel" in level.json()["detail"]


def test_detections_carry_their_outcome_and_videos_their_detection_count(
    client: TestClient[Any], tmp_path: Path
) -> None:
    project_id, video_id = project_with_video(client, tmp_path)
    annotate(client, video_id, 0)
    sid = run_session(client, project_id, video_id, [[hit(x=12)], [hit(x=400, y=300)]])
    video = client.get(f"/api/videos/{video_id}").json()
    assert video["detectionCount"] == 2
    listed = client.get(f"/api/projects/{project_id}/videos").json()
    assert [v["detectionCount"] for v in listed] == [2]
    before = client.get(f"/api/test-sessions/{sid}/detections").json()["detections"]
    assert [d["validation_result"] for d in before] == [None, None]
    assert client.post(f"/api/test-sessions/{sid}/complete").status_code == 200
    assert wait_results(client, sid).status_code == 200
    after = client.get(f"/api/test-sessions/{sid}/detections").json()["detections"]
    assert [(d["frame_number"], d["validation_result"]) for d in after] == [(0, "TP"), (3, "FP")]
    on_video = client.get(f"/api/videos/{video_id}/detections").json()["detections"]
    assert {d["detection_id"]: d["validation_result"] for d in on_video} == {
        d["detection_id"]: d["validation_result"] for d in after
    }
