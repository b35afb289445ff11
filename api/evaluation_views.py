"""Read-side views of evaluations shared by the results, validation and dashboard endpoints."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import MediaType, Request, Response

from api.casing import camel
from api.services import Services, caught_up, execute
from commands.application import Verity
from commands.evaluations import (
    Evaluated,
    EvaluateSession,
    Rerun,
    RerunEvaluation,
    annotation_history,
    evaluate_session,
    rerun_evaluation,
)
from domain.errors import Conflict, NotFound
from domain.evaluation import EvaluationReport
from projections import evaluations as read
from projections.evaluation_sources import load_sources
from projections.test_sessions import TestSessionRow, get_test_session

RUNNING = frozenset({"running"})
WAITING = frozenset({"created", "running", "stopped"})


async def session_or_404(services: Services, session_id: UUID) -> TestSessionRow:
    row = await get_test_session(services.read_pool, session_id)
    if row is None:
        raise NotFound("Test session", session_id, f"Test session {session_id} not found")
    return row


def report_of(row: read.EvaluationRow) -> EvaluationReport:
    if row.report is None:
        raise Conflict(f"Evaluation {row.id} has no recorded result")
    return msgspec.convert(row.report, EvaluationReport)


def pending(session: TestSessionRow, detail: str) -> Response[Any]:
    """202: the results will exist, but not yet."""
    body = {
        "detail": detail,
        "status": session.status,
        "sessionId": str(session.id),
        "session_id": str(session.id),
    }
    # JSON whatever the route's own media type (the chart route answers SVG once ready).
    return Response(body, status_code=202, media_type=MediaType.JSON)


async def evaluation_or_wait(
    services: Services, session: TestSessionRow, *, with_report: bool = True
) -> read.EvaluationRow | Response[Any]:
    """The session's newest recorded evaluation, a 202 while it is not ready, 409 if it failed."""
    async with services.read_pool.connection() as conn:
        row = await read.latest_evaluation(conn, session.id, with_report=with_report)
    if session.status in RUNNING:
        return pending(session, f"Test session {session.id} is still running")
    if row is None:
        if session.status in WAITING or session.status == "completed":
            return pending(
                session,
                f"Test session {session.id} has not been evaluated yet (status "
                f"{session.status}); it is evaluated when it completes",
            )
        raise Conflict(
            f"Test session {session.id} {session.status} without an evaluation; "
            "POST /api/test-sessions/{id}/evaluate to evaluate what it recorded"
        )
    if row.status == "failed":
        raise Conflict(row.failure or f"Evaluation {row.id} failed")
    if row.status != "recorded":
        return pending(session, f"Evaluation {row.id} is being written")
    return row


async def run_evaluation(
    services: Services, request: Request[Any, Any, Any], cmd: EvaluateSession
) -> Evaluated:
    sources = await load_sources(
        services.read_pool,
        cmd.session_id,
        position=services.read_side.position,
        history=annotation_history(services.app),
    )

    def handler(c: EvaluateSession, app: Verity) -> Evaluated:
        return evaluate_session(c, app, sources)

    done = await execute(services, request, handler, cmd)
    await caught_up(services, done.position, "evaluations_v1")
    return done


async def run_rerun(
    services: Services, request: Request[Any, Any, Any], session_id: UUID, cmd: RerunEvaluation
) -> Rerun:
    sources = await load_sources(
        services.read_pool,
        session_id,
        position=services.read_side.position,
        history=annotation_history(services.app),
    )

    def handler(c: RerunEvaluation, app: Verity) -> Rerun:
        return rerun_evaluation(c, app, sources)

    done = await execute(services, request, handler, cmd)
    await caught_up(services, done.evaluated.position, "evaluations_v1")
    return done


def percent(value: float | None) -> float:
    """Results page scale: 0-100, and 0 where the ratio is undefined (no denominator)."""
    return 0.0 if value is None else round(100.0 * value, 4)


def headline_fractions(report: EvaluationReport) -> dict[str, Any]:
    c, coco = report.counts, report.coco
    return {
        "ap": coco.ap,
        "ap50": coco.ap50,
        "ap75": coco.ap75,
        "ar100": coco.ar100,
        "precision": c.precision,
        "recall": c.recall,
        "f1Score": c.f1,
        "accuracy": c.accuracy,
        "truePositives": c.tp,
        "falsePositives": c.fp,
        "falseNegatives": c.fn,
        "totalDetections": c.tp + c.fp,
        "totalGroundTruth": c.tp + c.fn,
    }


def detailed(row: read.EvaluationRow, session: TestSessionRow) -> dict[str, Any]:
    report = report_of(row)
    return {
        "sessionId": str(session.id),
        "sessionStatus": session.status,
        "evaluationId": str(row.id),
        "evaluatedAt": row.recorded_at.isoformat() if row.recorded_at else None,
        "trigger": row.trigger,
        "basedOn": str(row.based_on) if row.based_on else None,
        "scale": "fraction",
        "metrics": headline_fractions(report),
        "intervals": {
            "precision": camel(report.precision_interval),
            "recall": camel(report.recall_interval),
            "f1Score": camel(report.f1_interval),
            "ap": camel(report.ap_interval),
            "ap50": camel(report.ap50_interval),
        },
        "latency": camel(report.latency),
        "temporalOffset": camel(report.offset),
        "tracking": camel(report.tracking),
        "perClass": camel(report.per_class),
        "confusion": camel(report.confusion),
        "curve": camel(report.curve),
        "verdict": camel(row.verdict),
        "criteria": camel(row.criteria),
        "parameters": camel(report.config),
        "groundTruth": {
            "position": row.gt_position,
            "annotations": row.gt_annotations,
        },
        "detections": {"count": row.detections_count},
    }
