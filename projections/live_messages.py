"""Every WebSocket message clients receive, built here only (contract section 4 names).

`{"event": NAME, "room": ROOM, "data": {...}}` with camelCase data keys; `session_id` /
`test_session_id` twins where the original's pages read them (contract section 4). Stored events
become messages in `stored_event_messages` (the API's fan-out); workers publish the rest —
`detection_event`, `test_progress`, `test_completed` — already built, on the live subject.
Here, beside the envelope, so api/ and workers/ build the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from commands.device_messages import BoxIn, FrameMessage
from commands.evaluations import Evaluated
from domain.casing import to_snake
from domain.evaluation import Counts
from domain.running_evaluation import RunningEvaluation
from domain.test_sessions import STATUS_AFTER
from projections.envelopes import AnyEnvelope
from projections.test_sessions import SessionCounts

D = TypeVar("D")
_encoder = msgspec.json.Encoder()


class LiveMessage(msgspec.Struct, Generic[D]):
    event: str
    room: str | None
    data: D


class LiveHeader(msgspec.Struct):
    """What the gateway reads of a ready message from the live subject."""

    event: str
    room: str


def encode(event: str, room: str | None, data: Any) -> bytes:
    return _encoder.encode(LiveMessage(event, room, data))


def live_subject(prefix: str, room: str) -> str:
    """`<prefix>.test_session.<id>` for room `test_session:<id>`."""
    return f"{prefix}.{room.replace(':', '.')}"


def session_room(session_id: UUID | str) -> str:
    return f"test_session:{session_id}"


def now() -> str:
    return datetime.now(UTC).isoformat()


# --- detection_event ------------------------------------------------------------------------


class LiveDetection(msgspec.Struct, kw_only=True, rename="camel"):
    class_label: str
    confidence: float | None
    box: BoxIn | None
    track_id: str | None
    validation_result: str = "PENDING"


class DetectionEventData(msgspec.Struct, kw_only=True, rename="camel"):
    """The newest stored frame of a session; `coalesced` further frames were folded in."""

    session_id: str
    session_id_snake: str = msgspec.field(name="session_id")
    device_id: str
    seq: int
    frame_number: int | None
    timestamp: float
    captured_at: str | None
    model_version: str | None
    detections: list[LiveDetection]
    coalesced: int
    coalesced_detections: int
    sent_at: str


def detection_message(frame: FrameMessage, frames: int, detections: int) -> bytes:
    """`frame`, standing for `frames` frames with `detections` detections in all."""
    sid = str(frame.session_id)
    data = DetectionEventData(
        session_id=sid,
        session_id_snake=sid,
        device_id=frame.device_id,
        seq=frame.seq,
        frame_number=frame.frame_number,
        timestamp=frame.timestamp,
        captured_at=frame.captured_at.isoformat() if frame.captured_at else None,
        model_version=frame.model_version,
        detections=[
            LiveDetection(
                class_label=d.class_label, confidence=d.confidence, box=d.box, track_id=d.track_id
            )
            for d in frame.detections
        ],
        coalesced=frames - 1,
        coalesced_detections=detections - len(frame.detections),
        sent_at=now(),
    )
    return encode("detection_event", session_room(sid), data)


# --- test_progress --------------------------------------------------------------------------


class ProgressData(msgspec.Struct, kw_only=True, rename="camel"):
    """The read model's counts (ingest), the evaluator's running figures, or both."""

    session_id: str
    session_id_snake: str = msgspec.field(name="session_id")
    status: str | UnsetType = UNSET
    frame_count: int | UnsetType = UNSET
    detection_count: int | UnsetType = UNSET
    progress: float | UnsetType = UNSET
    running: bool | UnsetType = UNSET
    frames_evaluated: int | UnsetType = UNSET
    frames_this_tick: int | UnsetType = UNSET
    true_positives: int | UnsetType = UNSET
    false_positives: int | UnsetType = UNSET
    false_negatives: int | UnsetType = UNSET
    precision: float | UnsetType | None = UNSET
    """Fractions 0-1; None until the video has ground truth."""
    recall: float | UnsetType | None = UNSET
    f1_score: float | UnsetType | None = UNSET
    ground_truth_objects: int | UnsetType = UNSET
    scale: str | UnsetType = UNSET
    timestamp: str | UnsetType = UNSET


def progress_message(
    session_id: UUID,
    counts: SessionCounts | None = None,
    figures: tuple[Counts, RunningEvaluation, int] | None = None,
) -> bytes:
    """`counts` from the read model and/or running `figures` (counts so far, the running
    evaluation, frames folded in this tick)."""
    sid = str(session_id)
    fields: dict[str, Any] = {} if counts is None else msgspec.structs.asdict(counts)
    if figures is not None:
        c, running, frames = figures
        has_gt = len(running.gt) > 0
        fields.update(
            running=True,
            frames_evaluated=int(running.frames_seen),
            frames_this_tick=frames,
            true_positives=c.tp,
            false_positives=c.fp,
            false_negatives=c.fn,
            precision=c.precision if has_gt else None,
            recall=c.recall if has_gt else None,
            f1_score=c.f1 if has_gt else None,
            ground_truth_objects=len(running.gt),
            scale="fraction",
            timestamp=now(),
        )
    data = ProgressData(session_id=sid, session_id_snake=sid, **fields)
    return encode("test_progress", session_room(sid), data)


# --- test_completed -------------------------------------------------------------------------


class CompletedResults(msgspec.Struct, kw_only=True, rename="camel"):
    """Percentages 0-100, as the Results page reads them (contract decision 3)."""

    accuracy: float
    precision: float
    recall: float
    f1_score: float
    true_positives: int
    false_positives: int
    false_negatives: int
    total_detections: int
    verdict: str | None


class CompletedMetrics(msgspec.Struct, kw_only=True, rename="camel"):
    """Percentages 0-100: what the Dashboard reads from `test_completed` (`metrics.accuracy`
    for its Detection Accuracy card and the recent session's row), as a session's `metrics`."""

    accuracy: float
    precision: float
    recall: float
    f1_score: float


class CompletedData(msgspec.Struct, kw_only=True, rename="camel"):
    test_session_id_snake: str = msgspec.field(name="test_session_id")
    test_session_id: str
    session_id: str
    id: str
    """The session's id under the name the Dashboard keys its recent sessions by."""
    evaluation_id: str
    results: CompletedResults
    metrics: CompletedMetrics
    status: str
    completed_at: str
    timestamp: str


def _pct(v: float | None) -> float:
    return 0.0 if v is None else round(100 * v, 2)


def completed_message(session_id: UUID, done: Evaluated, room: str) -> bytes:
    verdict = None if done.verdict is None else done.verdict.outcome.value
    return completion_message(session_id, done.evaluation_id, done.report.counts, verdict, room)


def completion_message(
    session_id: UUID, evaluation_id: UUID, c: Counts, verdict: str | None, room: str
) -> bytes:
    """`test_completed` from an evaluation's figures (as recorded, or read back later)."""
    sid = str(session_id)
    at = now()
    metrics = CompletedMetrics(
        accuracy=_pct(c.accuracy),
        precision=_pct(c.precision),
        recall=_pct(c.recall),
        f1_score=_pct(c.f1),
    )
    data = CompletedData(
        test_session_id_snake=sid,
        test_session_id=sid,
        session_id=sid,
        id=sid,
        evaluation_id=str(evaluation_id),
        results=CompletedResults(
            accuracy=metrics.accuracy,
            precision=metrics.precision,
            recall=metrics.recall,
            f1_score=metrics.f1_score,
            true_positives=c.tp,
            false_positives=c.fp,
            false_negatives=c.fn,
            total_detections=c.tp + c.fp,
            verdict=verdict,
        ),
        metrics=metrics,
        status="completed",
        completed_at=at,
        timestamp=at,
    )
    return encode("test_completed", room, data)


class EvaluationFailedData(msgspec.Struct, kw_only=True, rename="camel"):
    session_id: str
    session_id_snake: str = msgspec.field(name="session_id")
    evaluation_id: str
    reason: str
    timestamp: str


def evaluation_failed_message(
    session_id: UUID, evaluation_id: UUID, reason: str, room: str
) -> bytes:
    """`evaluation_failed` in the session's room: it completed but cannot be evaluated (the
    stored event reaches only room `evaluation:{id}`, which no page knows)."""
    sid = str(session_id)
    data = EvaluationFailedData(
        session_id=sid,
        session_id_snake=sid,
        evaluation_id=str(evaluation_id),
        reason=reason,
        timestamp=now(),
    )
    return encode("evaluation_failed", room, data)


# --- video_processing_progress ------------------------------------------------------------


class VideoProgressData(msgspec.Struct, kw_only=True, rename="camel"):
    video_id: str
    stage: str
    done: int
    total: int
    progress: float
    """0-100."""
    sent_at: str


def video_progress_message(
    video_id: UUID, done: int, total: int, stage: str = "quality"
) -> tuple[bytes, str]:
    """(message, room): how far the video worker has got with a stage (`quality`: frames
    sampled; `rendition`: frames transcoded)."""
    room = f"video:{video_id}"
    data = VideoProgressData(
        video_id=str(video_id),
        stage=stage,
        done=done,
        total=total,
        progress=round(100.0 * done / total, 1) if total > 0 else 0.0,
        sent_at=now(),
    )
    return encode("video_processing_progress", room, data), room


# --- stored events --------------------------------------------------------------------------

# --- detection_progress / ground_truth_generated --------------------------------------------


class DetectionProgressData(msgspec.Struct, kw_only=True, rename="camel"):
    run_id: str
    video_id: str
    video_id_snake: str = msgspec.field(name="video_id")
    mode: str
    status: str
    frames_done: int
    frames_total: int
    progress: float
    """Percent 0-100 of the frames the run will process."""
    frames_per_second: float | None
    eta_seconds: float | None
    detections: int
    timestamp: str


def detection_progress_message(
    run_id: UUID,
    video_id: UUID,
    mode: str,
    status: str,
    counts: tuple[int, int, int],
    frames_per_second: float | None,
) -> bytes:
    """`detection_progress` in the video's room; `counts` = (done, total, detections)."""
    done, total, detections = counts
    left = max(total - done, 0)
    eta = left / frames_per_second if frames_per_second and total else None
    data = DetectionProgressData(
        run_id=str(run_id),
        video_id=str(video_id),
        video_id_snake=str(video_id),
        mode=mode,
        status=status,
        frames_done=done,
        frames_total=total,
        progress=round(100.0 * done / total, 2) if total else 0.0,
        frames_per_second=frames_per_second,
        eta_seconds=eta,
        detections=detections,
        timestamp=now(),
    )
    return encode("detection_progress", f"video:{video_id}", data)


class GroundTruthData(msgspec.Struct, kw_only=True, rename="camel"):
    video_id: str
    video_id_snake: str = msgspec.field(name="video_id")
    run_id: str
    candidates: int
    status: str
    timestamp: str


def ground_truth_message(video_id: UUID, run_id: UUID, candidates: int, room: str) -> bytes:
    """`ground_truth_generated`: a detector's candidates for a video are stored."""
    vid = str(video_id)
    data = GroundTruthData(
        video_id=vid,
        video_id_snake=vid,
        run_id=str(run_id),
        candidates=candidates,
        status="completed",
        timestamp=now(),
    )
    return encode("ground_truth_generated", room, data)


# (aggregate, event type) -> contract event name; others are named `<aggregate>_<type>`
NAMES: dict[tuple[str, str], str] = {
    ("project", "created"): "project_created",
    ("project", "updated"): "project_updated",
    ("project", "deleted"): "project_deleted",
    ("video", "uploaded"): "video_uploaded",
    ("video", "metadata_extracted"): "video_processed",
    ("video", "processing_started"): "video_processing",
    ("video", "quality_assessed"): "video_processed",
    ("video", "processing_failed"): "video_processing_failed",
    ("video", "rendition_recorded"): "video_rendition_ready",
    ("video", "rendition_failed"): "video_rendition_failed",
    ("video", "linked"): "video_linked",
    ("video", "unlinked"): "video_unlinked",
    ("video", "deleted"): "video_deleted",
    ("annotation", "created"): "annotation_created",
    ("annotation", "box_moved"): "annotation_updated",
    ("annotation", "class_changed"): "annotation_updated",
    ("annotation", "flags_changed"): "annotation_updated",
    ("annotation", "changed"): "annotation_updated",
    ("annotation", "reverted"): "annotation_updated",
    ("annotation", "restored"): "annotation_updated",
    ("annotation", "validated"): "annotation_validated",
    ("annotation", "unvalidated"): "annotation_validated",
    ("annotation_session", "created"): "annotation_session_created",
    ("annotation_session", "updated"): "annotation_progress_update",
    ("annotation_import", "started"): "import_progress",
    ("annotation_import", "progressed"): "import_progress",
    ("annotation_import", "completed"): "import_progress",
    ("annotation_import", "failed"): "import_progress",
}

_VIDEO_DASHBOARD = frozenset({"uploaded", "processing_failed"})
"""Video events the dashboard hears of: one per video counted. The Dashboard page adds one to
its video count on `video_uploaded` and on `video_processed` alike (the same handler), so
`quality_assessed` (`video_processed`) stays in the video's own rooms."""

SILENT = frozenset({"device_frame", "frame_batch", "device", "account", "api_token"})
"""Aggregates whose events reach no WebSocket room as stored: detections arrive coalesced on
the live subject (workers/live.py), not one message per stored frame; devices' events carry
their password hash, which no room (anyone may join `device:<id>`) should hear; principals'
and tokens' events are access administration, not anything a page shows."""
_SESSION_SILENT = frozenset({"allowed_devices_changed"})
"""Test-session events that are no status change (`test_session_update` says the status)."""

_SESSION_STATUS = {to_snake(name): status.value for name, status in STATUS_AFTER.items()}
_SESSION_DASHBOARD = {
    "started": "test_session_started",
    "failed": "test_session_failed",
}
"""Session moves the dashboard hears of. A completion reaches it once, as the evaluator's
`test_completed` (with the figures): the Dashboard page counts a completed test on
`test_session_completed` and on `test_completed` alike (the same handler)."""


def _rooms(env: AnyEnvelope, data: dict[str, Any]) -> list[str]:
    aggregate, ident = env.aggregate, env.aggregate_id
    rooms = [f"{aggregate}:{ident}"]
    if aggregate == "project" or (aggregate == "video" and env.type in _VIDEO_DASHBOARD):
        rooms.append("dashboard")
    rooms.extend(f"project:{data[k]}" for k in ("projectId", "previousProjectId") if k in data)
    if aggregate.startswith("annotation") and "videoId" in data:
        rooms.append(f"video:{data['videoId']}")
    return rooms


def _stamp(env: AnyEnvelope) -> dict[str, Any]:
    return {
        "timestamp": env.occurred_at,
        "version": env.version,
        "position": env.position,
        "actor": env.actor,
    }


def _test_session_messages(env: AnyEnvelope, data: dict[str, Any]) -> list[tuple[str, bytes]]:
    """`test_session_update` in the session's room; started/completed on the dashboard."""
    ident, kind = env.aggregate_id, env.type
    status = _SESSION_STATUS.get(kind, kind)
    body = {
        "sessionId": ident,
        "session_id": ident,
        "status": status,
        "message": f"Test session {status}",
        **data,
        **_stamp(env),
    }
    messages = [(session_room(ident), "test_session_update")]
    if kind in _SESSION_DASHBOARD:
        messages.append(("dashboard", _SESSION_DASHBOARD[kind]))
    if "projectId" in data:
        messages.append((f"project:{data['projectId']}", "test_session_created"))
    return [(room, encode(name, room, body)) for room, name in messages]


def stored_event_messages(env: AnyEnvelope) -> list[tuple[str, bytes]]:
    """Encoded messages for every room that should hear the stored event `env`."""
    aggregate, kind, data = env.aggregate, env.type, env.data or {}
    if aggregate in SILENT:
        return []
    if aggregate == "test_session":
        return [] if kind in _SESSION_SILENT else _test_session_messages(env, data)
    name = NAMES.get((aggregate, kind), f"{aggregate}_{kind}")
    id_key = f"{aggregate.split('_')[0]}Id" if "_" not in aggregate else "id"
    body = {id_key: env.aggregate_id, **data, **_stamp(env)}
    return [(room, encode(name, room, body)) for room in dict.fromkeys(_rooms(env, data))]


def gateway_reply(event: str, room: str | None = None, **data: Any) -> str:
    """The gateway's own answers: connection_status, joined, left, pong, error."""
    return encode(event, room, data).decode()


# --- projection_rebuild_progress ------------------------------------------------------------

ADMIN_ROOM = "admin"
"""Operators' room: read-model rebuilds report here."""


class RebuildProgressData(msgspec.Struct, kw_only=True, rename="camel"):
    name: str
    """The read model."""
    state: str
    """`running`, `done` or `failed`."""
    processed: int
    total: int
    progress: float
    """0-100."""
    position: int
    """How far in the log the new tables have got."""
    head: int
    """The position the rebuild is reading up to."""
    events_per_second: float
    error: str | None = None
    sent_at: str


def rebuild_progress_message(
    name: str,
    state: str,
    *,
    processed: int,
    total: int,
    position: int,
    head: int,
    events_per_second: float,
    error: str | None = None,
) -> bytes:
    data = RebuildProgressData(
        name=name,
        state=state,
        processed=processed,
        total=total,
        progress=round(100.0 * processed / total, 1) if total > 0 else 100.0,
        position=position,
        head=head,
        events_per_second=round(events_per_second, 1),
        error=error,
        sent_at=now(),
    )
    return encode("projection_rebuild_progress", ADMIN_ROOM, data)
