"""The pages' socket messages: what TestExecution.tsx and EnhancedTestExecution.tsx read."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import msgspec
import pytest

from commands.device_messages import decode_frame
from domain.evaluation import make_counts
from projections import page_messages as pages
from projections.live_messages import (
    completion_message,
    detection_message,
    encode,
    evaluation_failed_message,
    progress_message,
    session_room,
)
from projections.test_sessions import SessionCounts

pytestmark = pytest.mark.unit

SESSION = uuid4()
VIDEO = uuid4()
EVALUATION = uuid4()
ROOM = session_room(SESSION)


def info() -> pages.SessionInfo:
    return pages.SessionInfo(
        session_id=SESSION, video_id=VIDEO, video_name="clip.mp4", device_id="cam", started_at=None
    )


def page(messages: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for m in messages:
        body = msgspec.json.decode(m)
        assert set(body) == {"type", "payload"}
        out.append((body["type"], body["payload"]))
    return out


def update(status: str, **more: Any) -> bytes:
    return encode(
        "test_session_update", ROOM, {"sessionId": str(SESSION), "status": status, **more}
    )


DONE = completion_message(SESSION, EVALUATION, make_counts(8, 2, 1), "pass", ROOM)


def test_test_execution_reads_progress_result_completion_and_errors() -> None:
    feed = pages.TestExecutionFeed(info())
    counts = SessionCounts(status="running", frame_count=3, detection_count=5, progress=12.5)
    [(kind, progress)] = page(feed.translate(progress_message(SESSION, counts)))
    assert kind == "test_progress"
    assert progress == {
        "sessionId": str(SESSION),
        "status": "running",
        "frameCount": 3,
        "detectionCount": 5,
        "progress": 12.5,
    }
    started = page(feed.translate(update("running", timestamp="2026-12-06T08:00:00+00:00")))
    assert started == [("test_progress", {"sessionId": str(SESSION), "status": "running"})]

    (k1, result), (k2, completed) = page(feed.translate(DONE))
    assert (k1, k2) == ("test_result", "test_completed")
    assert result["id"] == str(EVALUATION) and result["videoId"] == str(VIDEO)
    assert result["status"] == "completed" and result["startedAt"] == "2026-12-06T08:00:00+00:00"
    assert result["results"]["precision"] == 80.0 and result["results"]["f1Score"] > 0
    assert {"detections", "processingTime", "errorCount"} <= set(result["results"])
    assert result["modelConfig"]["name"] == "cam"
    assert completed["testSessionId"] == str(SESSION) and completed["results"]["verdict"] == "pass"

    [(kind, error)] = page(feed.translate(update("failed", error="camera unplugged")))
    assert kind == "test_error" and error["message"] == "camera unplugged"
    [(kind, error)] = page(feed.translate(update("deleted")))
    assert kind == "test_error" and "deleted" in error["message"]
    frame = decode_frame(
        msgspec.json.encode(
            {
                "deviceId": "cam",
                "sessionId": str(SESSION),
                "seq": 1,
                "timestamp": 0.1,
                "detections": [],
            }
        )
    )
    assert feed.translate(detection_message(frame, 1, 0)) == []  # progress says it


def test_enhanced_test_reads_rows_and_the_end_of_the_session() -> None:
    feed = pages.EnhancedTestFeed(info())
    frame = decode_frame(
        msgspec.json.encode(
            {
                "deviceId": "cam",
                "sessionId": str(SESSION),
                "seq": 4,
                "frameNumber": 12,
                "timestamp": 1.2,
                "detections": [
                    {"classLabel": "pedestrian", "confidence": 0.7},
                    {"classLabel": "cyclist", "confidence": 0.9},
                ],
            }
        )
    )
    [(kind, row)] = page(feed.translate(detection_message(frame, 3, 5)))
    assert kind == "test_result" and row["status"] == "processing"
    assert row["id"] == "cam:4" and row["videoName"] == "clip.mp4" and row["confidence"] == 0.9
    assert row["details"] == "2 detections on frame 12 (+2 frames, 3 detections since)"
    assert row["timestamp"]

    (k1, success), (k2, done) = page(feed.translate(DONE))
    assert (k1, k2) == ("test_result", "session_complete")
    assert success["status"] == "success" and "precision 80.0%" in success["details"]
    assert done["sessionId"] == str(SESSION) and done["status"] == "completed"

    (k1, failed), (k2, done) = page(feed.translate(update("failed", error="broken")))
    assert (k1, k2) == ("test_result", "session_complete")
    assert failed["status"] == "failed" and failed["details"] == "broken"
    assert feed.translate(update("paused")) == []


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ('{"type": "ping"}', "pong"),
        ('{"type": "start"}', "error"),
        ("{not json", "error"),
        ("[1, 2]", "error"),
        ('{"type": 5}', "error"),
        (b"\xff\xfe", "error"),
    ],
)
def test_whatever_a_client_sends_gets_an_answer(raw: str | bytes, kind: str) -> None:
    [(got, _)] = page([pages.reply_to(raw)])
    assert got == kind


def test_an_unknown_session_is_named_in_the_error() -> None:
    [(kind, body)] = page([pages.unknown_session("nope")])
    assert kind == "test_error" and body["code"] == "unknown_session"
    assert "'nope'" in body["message"]


def test_a_session_that_cannot_be_evaluated_still_ends_on_both_pages() -> None:
    failed = evaluation_failed_message(SESSION, EVALUATION, "no ground truth", ROOM)
    [(kind, ended)] = page(pages.TestExecutionFeed(info()).translate(failed))
    assert kind == "test_completed" and ended["evaluated"] is False
    assert ended["testSessionId"] == str(SESSION) and ended["reason"] == "no ground truth"
    (k1, row), (k2, done) = page(pages.EnhancedTestFeed(info()).translate(failed))
    assert (k1, k2) == ("test_result", "session_complete")
    assert row["status"] == "failed" and "no ground truth" in row["details"]
    assert done["evaluated"] is False and done["sessionId"] == str(SESSION)
