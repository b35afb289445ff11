"""Read-side views of evaluations shared by the results, validation and dashboard endpoints."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request

from api.result_dtos import (
    CountOut,
    DetailedOut,
    HeadlineFractions,
    IntervalsOut,
    PendingOut,
    PinOut,
)
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
from domain.casing import as_camel
from domain.errors import Conflict, NotFound
from domain.evaluation import EvaluationReport
from domain.evaluation.verdict import Criteria, Verdict
from projections import evaluations as read
from projections.evaluation_sources import load_sources
from projections.test_sessions import TestSessionRow, get_test_session

RUNNING = frozenset({"running"})
WAITING = frozenset({"pending", "running", "paused"})


async def session_or_404(services: Services, session_id: UUID) -> TestSessionRow:
    row = await get_test_session(services.read_pool, session_id)
    if row is None:
        raise NotFound("Test session", session_id, f"Test session {session_id} not found")
    return row


def report_of(row: read.EvaluationRow) -> EvaluationReport:
    if row.report is None:
        raise Conflict(f"Evaluation {row.id} has no recorded result")
    return msgspec.convert(row.report, EvaluationReport)


class NotReady(Exception):
    """The results will exist, but not yet: api/errors.py answers 202 with `body` (JSON,
    whatever the route's own media type: the chart route answers SVG once ready)."""

    def __init__(self, session: TestSessionRow, detail: str) -> None:
        super().__init__(detail)
        self.body = PendingOut(detail=detail, status=session.status, session_id=str(session.id))


def pending(session: TestSessionRow, detail: str) -> NotReady:
    return NotReady(session, detail)


async def evaluation_or_wait(
    services: Services, session: TestSessionRow, *, with_report: bool = True
) -> read.EvaluationRow:
    """The session's newest recorded evaluation; NotReady (202) while it is not ready,
    Conflict (409) if it failed."""
    async with services.read_pool.connection() as conn:
        row = await read.latest_evaluation(conn, session.id, with_report=with_report)
    if session.status in RUNNING:
        raise pending(session, f"Test session {session.id} is still running")
    if row is None:
        if session.status in WAITING or session.status == "completed":
            raise pending(
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
        raise pending(session, f"Evaluation {row.id} is being written")
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
    """Results page scale: 0-100 to two decimals (as the pages print it), and 0 where the ratio
    is undefined (no denominator)."""
    return 0.0 if value is None else round(100.0 * value, 2)


def headline_fractions(report: EvaluationReport) -> HeadlineFractions:
    c, coco = report.counts, report.coco
    return HeadlineFractions(
        ap=coco.ap,
        ap50=coco.ap50,
        ap75=coco.ap75,
        ar100=coco.ar100,
        precision=c.precision,
        recall=c.recall,
        f1_score=c.f1,
        accuracy=c.accuracy,
        true_positives=c.tp,
        false_positives=c.fp,
        false_negatives=c.fn,
        total_detections=c.tp + c.fp,
        total_ground_truth=c.tp + c.fn,
    )


def verdict_of(stored: dict[str, Any] | None) -> Verdict | None:
    """A verdict as the read model stores it (JSON), in its camelCase view."""
    return None if stored is None else as_camel(msgspec.convert(stored, Verdict))


def detailed_fields(row: read.EvaluationRow, session: TestSessionRow) -> dict[str, Any]:
    """The fields of `DetailedOut` (and of the export, which adds the comparison rows)."""
    report = report_of(row)
    return {
        "session_id": str(session.id),
        "session_status": session.status,
        "evaluation_id": str(row.id),
        "evaluated_at": row.recorded_at.isoformat() if row.recorded_at else None,
        "trigger": row.trigger,
        "based_on": str(row.based_on) if row.based_on else None,
        "scale": "fraction",
        "metrics": headline_fractions(report),
        "intervals": IntervalsOut(
            precision=as_camel(report.precision_interval),
            recall=as_camel(report.recall_interval),
            f1_score=as_camel(report.f1_interval),
            ap=as_camel(report.ap_interval),
            ap50=as_camel(report.ap50_interval),
        ),
        "latency": as_camel(report.latency),
        "temporal_offset": as_camel(report.offset),
        "tracking": None if report.tracking is None else as_camel(report.tracking),
        "per_class": tuple(as_camel(c) for c in report.per_class),
        "confusion": as_camel(report.confusion),
        "curve": as_camel(report.curve),
        "verdict": verdict_of(row.verdict),
        "criteria": None
        if row.criteria is None
        else as_camel(msgspec.convert(row.criteria, Criteria)),
        "parameters": as_camel(report.config),
        "ground_truth": PinOut(position=row.gt_position, annotations=row.gt_annotations),
        "detections": CountOut(count=row.detections_count),
    }


def detailed(row: read.EvaluationRow, session: TestSessionRow) -> DetailedOut:
    return DetailedOut(**detailed_fields(row, session))
