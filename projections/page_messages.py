"""The frontend pages' own socket messages, translated from the live feed of `/ws`.

TestExecution.tsx (`/ws/test-execution/{id}`) and EnhancedTestExecution.tsx (`/ws/test/{id}`)
read `{"type": TYPE, "payload": {...}}`, not `{"event", "room", "data"}`. A page socket joins
the session's room on the same hub as `/ws` and each message the hub hands it is turned into
what its page reads, here (pure functions, so both the API and the tests use them):

- TestExecution: `test_progress` (the room's `test_progress`, and status changes with
  `status`), `test_result` (one per evaluated session: the `TestResults` the page lists, with
  the evaluation's figures in percent), `test_completed` (after the result; alone, with
  `evaluated: false` and the `reason`, when the session cannot be evaluated), `test_error`
  (the session failed or was deleted, or is unknown; `message` says which).
- EnhancedTestExecution: `test_result` (a row of its results table: `processing` for each
  (coalesced) detection message, `success` with the figures once evaluated, `failed` when it
  failed, was deleted or cannot be evaluated),
  `session_complete` after the last row, and `test_progress` as above.
Both: `error` for a client message that is not understood, `pong` for `{"type": "ping"}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

from projections.live_messages import LiveMessage

_decode_live = msgspec.json.Decoder(LiveMessage[dict[str, Any]]).decode
_encoder = msgspec.json.Encoder()


class PageMessage(msgspec.Struct):
    type: str
    payload: dict[str, Any]


class ClientMessage(msgspec.Struct):
    type: str


def page_message(kind: str, **payload: Any) -> bytes:
    return _encoder.encode(PageMessage(kind, payload))


def reply_to(raw: str | bytes) -> bytes:
    """The answer to what a page's client sent: `pong` to a ping, else an `error`."""
    try:
        kind = msgspec.json.decode(raw, type=ClientMessage).type
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        return page_message("error", message=f"Not a JSON object with a string `type`: {err}")
    if kind == "ping":
        return page_message("pong")
    return page_message(
        "error",
        message=f"Unknown message type {kind!r}; this socket only sends (a ping is answered)",
    )


def unknown_session(raw_id: str, kind: str = "test_error") -> bytes:
    """Sent before closing a socket opened for a session id that names no session."""
    return page_message(
        kind, message=f"No test session {raw_id!r}", code="unknown_session", sessionId=raw_id
    )


@dataclass
class SessionInfo:
    """What a page's messages carry that the live feed does not."""

    session_id: UUID
    video_id: UUID
    video_name: str | None
    device_id: str | None
    started_at: str | None
    """ISO time; filled in from the live feed when the session starts after the page opened."""


_FINAL = {"failed": "The test session failed", "deleted": "The test session was deleted"}


def _progress(data: dict[str, Any]) -> dict[str, Any]:
    drop = ("session_id", "sessionId")
    return {k: v for k, v in data.items() if k not in drop}


class TestExecutionFeed:
    """What TestExecution.tsx reads on `/ws/test-execution/{sessionId}`."""

    __test__ = False

    def __init__(self, session: SessionInfo) -> None:
        self.session = session

    def translate(self, raw: bytes) -> list[bytes]:
        live = _decode_live(raw)
        sid = str(self.session.session_id)
        data = live.data
        if live.event == "test_progress":
            return [page_message("test_progress", sessionId=sid, **_progress(data))]
        if live.event == "test_session_update":
            status = str(data.get("status"))
            if status == "running" and self.session.started_at is None:
                self.session.started_at = data.get("timestamp")
            if status in _FINAL:
                reason = data.get("error") or _FINAL[status]
                return [page_message("test_error", sessionId=sid, status=status, message=reason)]
            return [page_message("test_progress", sessionId=sid, status=status)]
        if live.event == "test_completed":
            return [self._result(data), page_message("test_completed", **data)]
        if live.event == "evaluation_failed":  # the run is over, but no figures
            ended = {**data, "testSessionId": sid, "evaluated": False, "results": None}
            return [page_message("test_completed", **ended)]
        return []

    def _result(self, done: dict[str, Any]) -> bytes:
        s = self.session
        results = done.get("results") or {}
        device = s.device_id or "device"
        return page_message(
            "test_result",
            id=done.get("evaluationId"),
            sessionId=str(s.session_id),
            videoId=str(s.video_id),
            modelConfig={"id": device, "name": device, "type": "device", "config": {}},
            results={
                "accuracy": results.get("accuracy"),
                "precision": results.get("precision"),
                "recall": results.get("recall"),
                "f1Score": results.get("f1Score"),
                "truePositives": results.get("truePositives"),
                "falsePositives": results.get("falsePositives"),
                "falseNegatives": results.get("falseNegatives"),
                "detections": [],
                "processingTime": None,
                "errorCount": 0,
                "verdict": results.get("verdict"),
                "scale": "percent",
            },
            status="completed",
            startedAt=s.started_at,
            completedAt=done.get("timestamp"),
        )


class EnhancedTestFeed:
    """What EnhancedTestExecution.tsx reads on `/ws/test/{sessionId}`."""

    def __init__(self, session: SessionInfo) -> None:
        self.session = session

    def _row(self, row_id: str, status: str, timestamp: Any, **more: Any) -> bytes:
        s = self.session
        return page_message(
            "test_result",
            id=row_id,
            sessionId=str(s.session_id),
            videoId=str(s.video_id),
            videoName=s.video_name,
            status=status,
            timestamp=timestamp,
            **more,
        )

    def translate(self, raw: bytes) -> list[bytes]:
        live = _decode_live(raw)
        sid = str(self.session.session_id)
        data = live.data
        if live.event == "detection_event":
            return [self._detections(data)]
        if live.event == "test_progress":
            return [page_message("test_progress", sessionId=sid, **_progress(data))]
        if live.event == "evaluation_failed":
            row = self._row(
                str(data.get("evaluationId")),
                "failed",
                data.get("timestamp"),
                details=f"Not evaluated: {data.get('reason')}",
            )
            ended = {**data, "status": "completed", "evaluated": False}
            return [row, page_message("session_complete", **ended)]
        if live.event == "test_session_update" and data.get("status") in _FINAL:
            status = str(data["status"])
            reason = data.get("error") or _FINAL[status]
            row = self._row(f"{sid}:{status}", "failed", data.get("timestamp"), details=reason)
            return [row, page_message("session_complete", sessionId=sid, status=status)]
        if live.event == "test_completed":
            results = data.get("results") or {}
            details = (
                f"precision {results.get('precision')}%, recall {results.get('recall')}%,"
                f" F1 {results.get('f1Score')}% ({results.get('truePositives')} TP,"
                f" {results.get('falsePositives')} FP, {results.get('falseNegatives')} FN)"
            )
            row = self._row(
                str(data.get("evaluationId")),
                "success",
                data.get("timestamp"),
                details=details,
                metadata={"results": results, "scale": "percent"},
            )
            done = page_message("session_complete", **{**data, "status": "completed"})
            return [row, done]
        return []

    def _detections(self, data: dict[str, Any]) -> bytes:
        detections = data.get("detections") or []
        confidences = [d["confidence"] for d in detections if d.get("confidence") is not None]
        folded = data.get("coalesced") or 0
        details = f"{len(detections)} detections on frame {data.get('frameNumber')}"
        if folded:
            details += f" (+{folded} frames, {data.get('coalescedDetections')} detections since)"
        return self._row(
            f"{data.get('deviceId')}:{data.get('seq')}",
            "processing",
            data.get("capturedAt") or data.get("sentAt"),
            confidence=max(confidences) if confidences else None,
            details=details,
            detections=detections,
            metadata={"frameNumber": data.get("frameNumber"), "coalesced": folded},
        )
