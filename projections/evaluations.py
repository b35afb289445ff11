"""Read model of evaluations: headline figures, the full report, and per-object comparisons."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from domain.evaluation import FrameCounts
from domain.evaluations import OUTCOMES_PER_EVENT, Evaluation
from projections.base import Statement

_json = msgspec.json.Encoder()

_REQUESTED = (
    "INSERT INTO rm_evaluations (id, session_id, project_id, video_id, trigger, based_on,"
    " status, config, gt_position, gt_annotations, gt_pin, detections_count, created_at,"
    " version) VALUES (%s, %s, %s, %s, %s, %s, 'requested', %s::jsonb, %s, %s, %s::jsonb, %s,"
    " %s, %s)"
)
_RECORDED = (
    "UPDATE rm_evaluations SET status = 'recorded', recorded_at = %s, tp = %s, fp = %s, fn = %s,"
    " precision = %s, recall = %s, f1 = %s, accuracy = %s, ap = %s, ap50 = %s, ap75 = %s,"
    " latency_p95_ms = %s, outcome = %s, report = %s::jsonb, verdict = %s::jsonb,"
    " criteria = %s::jsonb, version = %s WHERE id = %s"
)
_FAILED = (
    "UPDATE rm_evaluations SET status = 'failed', recorded_at = %s, outcome = NULL,"
    " failure = %s, version = %s WHERE id = %s"
)
_COMPARISON = (
    "INSERT INTO rm_evaluation_comparisons (evaluation_id, seq, status, frame, time_s, gt_ref,"
    " gt_label, det_ref, det_label, confidence, iou, offset_ms)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _encode(value: Any) -> str | None:
    return None if value is None else _json.encode(value).decode()


class EvaluationsProjection:
    name: str = "evaluations_v1"
    event_classes: tuple[type[Any], ...] = (
        Evaluation.Requested,
        Evaluation.OutcomesRecorded,
        Evaluation.Recorded,
        Evaluation.Failed,
    )
    tables: tuple[str, ...] = ("rm_evaluations", "rm_evaluation_comparisons")

    def handle(self, event: Any) -> Iterable[Statement]:
        eid, at, version = event.originator_id, event.timestamp, event.originator_version
        if isinstance(event, Evaluation.Requested):
            yield (
                _REQUESTED,
                (
                    eid,
                    event.session_id,
                    event.project_id,
                    event.video_id,
                    event.trigger.value,
                    event.based_on,
                    _encode(event.config),
                    event.ground_truth.position,
                    len(event.ground_truth.annotations),
                    _encode(event.ground_truth.annotations),
                    event.detections.count,
                    at,
                    version,
                ),
            )
        elif isinstance(event, Evaluation.OutcomesRecorded):
            base = event.chunk * OUTCOMES_PER_EVENT
            for i, r in enumerate(event.rows):
                yield (
                    _COMPARISON,
                    (
                        eid,
                        base + i,
                        r.status.value,
                        r.frame,
                        r.time_s,
                        r.gt_ref,
                        r.gt_label,
                        r.det_ref,
                        r.det_label,
                        r.confidence,
                        r.iou,
                        r.offset_ms,
                    ),
                )
        elif isinstance(event, Evaluation.Recorded):
            rep, c = event.report, event.report.counts
            yield (
                _RECORDED,
                (
                    at,
                    c.tp,
                    c.fp,
                    c.fn,
                    c.precision,
                    c.recall,
                    c.f1,
                    c.accuracy,
                    rep.coco.ap,
                    rep.coco.ap50,
                    rep.coco.ap75,
                    rep.latency.p95_ms,
                    event.verdict.outcome.value if event.verdict is not None else None,
                    _encode(rep),
                    _encode(event.verdict),
                    _encode(event.criteria),
                    version,
                    eid,
                ),
            )
        elif isinstance(event, Evaluation.Failed):
            yield _FAILED, (at, event.reason, version, eid)


class EvaluationRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    session_id: UUID
    project_id: UUID | None
    video_id: UUID | None
    trigger: str
    based_on: UUID | None
    status: str
    """requested | recorded | failed"""
    config: dict[str, Any]
    gt_position: int
    gt_annotations: int
    detections_count: int
    created_at: datetime
    recorded_at: datetime | None
    tp: int | None
    fp: int | None
    fn: int | None
    precision: float | None
    recall: float | None
    f1: float | None
    accuracy: float | None
    ap: float | None
    ap50: float | None
    ap75: float | None
    latency_p95_ms: float | None
    outcome: str | None
    failure: str | None
    report: dict[str, Any] | None
    verdict: dict[str, Any] | None
    criteria: dict[str, Any] | None


_COLUMNS = (
    "id, session_id, project_id, video_id, trigger, based_on, status, config, gt_position,"
    " gt_annotations, detections_count, created_at, recorded_at, tp, fp, fn, precision, recall,"
    " f1, accuracy, ap, ap50, ap75, latency_p95_ms, outcome, failure, report, verdict, criteria"
)
_SUMMARY_COLUMNS = _COLUMNS.replace(
    ", report, verdict, criteria", ", NULL::jsonb AS report, verdict, criteria"
)


async def latest_evaluation(
    conn: AsyncConnection[Any], session_id: UUID, *, with_report: bool = True
) -> EvaluationRow | None:
    """The session's newest evaluation (recorded or failed, or still being written)."""
    columns = _COLUMNS if with_report else _SUMMARY_COLUMNS
    async with conn.cursor(row_factory=class_row(EvaluationRow)) as cur:
        await cur.execute(
            f"SELECT {columns} FROM rm_evaluations WHERE session_id = %s"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (session_id,),
            prepare=True,
        )
        return await cur.fetchone()


async def session_evaluations(conn: AsyncConnection[Any], session_id: UUID) -> list[EvaluationRow]:
    """Every evaluation of the session, newest first, without the large report."""
    async with conn.cursor(row_factory=class_row(EvaluationRow)) as cur:
        await cur.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM rm_evaluations WHERE session_id = %s"
            " ORDER BY created_at DESC, id DESC",
            (session_id,),
            prepare=True,
        )
        return await cur.fetchall()


async def latest_recorded(conn: AsyncConnection[Any]) -> list[EvaluationRow]:
    """The newest recorded evaluation of every session, oldest first (for dashboards)."""
    async with conn.cursor(row_factory=class_row(EvaluationRow)) as cur:
        await cur.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM (SELECT DISTINCT ON (session_id) * FROM"
            " rm_evaluations WHERE status = 'recorded'"
            " ORDER BY session_id, created_at DESC, id DESC) latest ORDER BY created_at, id",
            prepare=True,
        )
        return await cur.fetchall()


async def latest_recorded_of(
    conn: AsyncConnection[Any], session_ids: list[UUID]
) -> dict[UUID, EvaluationRow]:
    """The newest recorded evaluation of each of these sessions (one query for a list)."""
    if not session_ids:
        return {}
    async with conn.cursor(row_factory=class_row(EvaluationRow)) as cur:
        await cur.execute(
            f"SELECT DISTINCT ON (session_id) {_SUMMARY_COLUMNS} FROM rm_evaluations"
            " WHERE status = 'recorded' AND session_id = ANY(%s)"
            " ORDER BY session_id, created_at DESC, id DESC",
            (session_ids,),
        )
        return {row.session_id: row for row in await cur.fetchall()}


async def completed_unevaluated(conn: AsyncConnection[Any]) -> list[UUID]:
    """Completed sessions without a completion evaluation (for the evaluator's sweep)."""
    cur = await conn.execute(
        "SELECT s.id FROM rm_test_sessions s WHERE s.status = 'completed' AND NOT EXISTS"
        " (SELECT 1 FROM rm_evaluations e WHERE e.session_id = s.id"
        " AND e.trigger = 'completed')"
    )
    return [row[0] for row in await cur.fetchall()]


async def detection_outcomes(
    conn: AsyncConnection[Any], session_ids: Iterable[UUID], detection_ids: Iterable[UUID]
) -> dict[UUID, str]:
    """Each detection's status (`TP`, `FP`, `BELOW_THRESHOLD`) in the newest recorded
    evaluation of its session; detections no recorded evaluation scored are absent."""
    sessions = list(session_ids)
    refs = [str(d) for d in detection_ids]
    if not sessions or not refs:
        return {}
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT det_ref, status FROM rm_evaluation_comparisons"
            " WHERE evaluation_id IN (SELECT DISTINCT ON (session_id) id FROM rm_evaluations"
            " WHERE status = 'recorded' AND session_id = ANY(%s)"
            " ORDER BY session_id, created_at DESC, id DESC) AND det_ref = ANY(%s)",
            (sessions, refs),
        )
        return {UUID(ref): status for ref, status in await cur.fetchall()}


class ComparisonRow(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    status: str
    frame: int
    time_s: float | None
    gt_ref: str | None
    gt_label: str | None
    det_ref: str | None
    det_label: str | None
    confidence: float | None
    iou: float | None
    offset_ms: float | None


async def comparisons(
    conn: AsyncConnection[Any],
    evaluation_id: UUID,
    *,
    status: str | None = None,
    offset: int = 0,
    limit: int | None = 100,
) -> tuple[int, list[ComparisonRow]]:
    """(total matching rows, one page of them in frame order)."""
    where = "evaluation_id = %s" + (" AND status = %s" if status else "")
    params: tuple[Any, ...] = (evaluation_id, status) if status else (evaluation_id,)
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT count(*) FROM rm_evaluation_comparisons WHERE {where}", params)
        row = await cur.fetchone()
    total = int(row[0]) if row else 0
    async with conn.cursor(row_factory=class_row(ComparisonRow)) as cur:
        await cur.execute(
            "SELECT seq, status, frame, time_s, gt_ref, gt_label, det_ref, det_label, confidence,"
            f" iou, offset_ms FROM rm_evaluation_comparisons WHERE {where}"
            " ORDER BY seq OFFSET %s LIMIT %s",
            (*params, offset, limit),
        )
        return total, await cur.fetchall()


async def frame_counts(conn: AsyncConnection[Any], evaluation_id: UUID) -> FrameCounts:
    """Per-frame TP/FP/FN at the operating point (the bootstrap's resampling unit)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT frame, count(*) FILTER (WHERE status = 'TP'),"
            " count(*) FILTER (WHERE status = 'FP'), count(*) FILTER (WHERE status = 'FN')"
            " FROM rm_evaluation_comparisons WHERE evaluation_id = %s GROUP BY frame"
            " ORDER BY frame",
            (evaluation_id,),
            prepare=True,
        )
        rows = await cur.fetchall()
    return FrameCounts(
        frames=tuple(int(r[0]) for r in rows),
        tp=tuple(int(r[1]) for r in rows),
        fp=tuple(int(r[2]) for r in rows),
        fn=tuple(int(r[3]) for r in rows),
    )
