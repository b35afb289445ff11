"""Statistics over evaluations (contract M4, M5) and sessions side by side; fractions 0-1.

Nothing here is a constant: Wilson intervals for precision, recall and accuracy from the
evaluation's counts; the F1 interval and the paired comparison are frame bootstraps over the
per-frame TP/FP/FN stored with the evaluation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import anyio.to_thread
import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, Parameter

from api.evaluation_views import NotReady, evaluation_or_wait, session_or_404
from api.inputs import InputDTO
from api.services import Services, services_of
from api.validation_dtos import (
    BatchOut,
    BatchSessionOut,
    ComparisonFields,
    ConfidenceIntervalsOut,
    MethodsOut,
    MetricSummaryOut,
    PairedOut,
    PointOut,
    StatisticalRunOut,
    TrendOut,
)
from domain.errors import Conflict, NotFound
from domain.evaluation import (
    FrameCounts,
    Interval,
    PairedComparison,
    bootstrap_f1,
    paired_f1_comparison,
    wilson_interval,
)
from projections import evaluations as read
from projections.test_sessions import TestSessionRow, sessions_of_video

Level = Annotated[float, msgspec.Meta(ge=0.5, le=0.99)]
Resamples = Annotated[int, msgspec.Meta(ge=100, le=20_000)]


class StatisticalRunIn(msgspec.Struct, kw_only=True):
    test_session_id: UUID
    confidence_level: Level = 0.95
    baseline_session_id: UUID | None = None
    """Compare with this session (same video); default: the newest earlier evaluated session
    on the same video."""
    n_resamples: Resamples = 2000


class BatchIn(msgspec.Struct, kw_only=True):
    session_ids: Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=100)]
    confidence_level: Level = 0.95


def _pair(interval: Interval) -> list[float | None]:
    return [interval.low, interval.high]


class Evaluated(msgspec.Struct, frozen=True, kw_only=True):
    session: TestSessionRow
    row: read.EvaluationRow
    frames: FrameCounts


async def _evaluated(services: Services, session_id: UUID, field: str) -> Evaluated:
    """The newest recorded evaluation with its frame counts; 404 unknown, 409 not evaluated."""
    try:
        session = await session_or_404(services, session_id)
    except NotFound:
        raise NotFound(
            "Test session", session_id, f"{field}: test session {session_id} not found"
        ) from None
    try:
        row = await evaluation_or_wait(services, session, with_report=False)
    except NotReady:
        raise Conflict(
            f"{field}: test session {session_id} has no evaluation yet (status {session.status})"
        ) from None
    async with services.read_pool.connection() as conn:
        frames = await read.frame_counts(conn, row.id)
    return Evaluated(session=session, row=row, frames=frames)


def intervals(e: Evaluated, level: float, n_resamples: int = 2000) -> ConfidenceIntervalsOut:
    """CPU-bound (a frame bootstrap): call it off the event loop."""
    tp, fp, fn = e.row.tp or 0, e.row.fp or 0, e.row.fn or 0
    f1 = bootstrap_f1(e.frames, n_resamples=n_resamples, confidence=level)
    return ConfidenceIntervalsOut(
        precision=_pair(wilson_interval(tp, tp + fp, level)),
        recall=_pair(wilson_interval(tp, tp + fn, level)),
        f1_score=_pair(f1),
        accuracy=_pair(wilson_interval(tp, tp + fp + fn, level)),
        confidence_level=level,
        sample_size=tp + fp + fn,
        frames=len(e.frames.frames),
        methods=MethodsOut(
            precision="wilson", recall="wilson", accuracy="wilson", f1_score=f1.method
        ),
        point=PointOut(
            precision=e.row.precision,
            recall=e.row.recall,
            f1_score=e.row.f1,
            accuracy=e.row.accuracy,
        ),
    )


async def _baseline(
    services: Services, current: Evaluated, chosen: UUID | None
) -> Evaluated | None:
    if chosen is not None:
        baseline = await _evaluated(services, chosen, "baseline_session_id")
        if baseline.session.video_id != current.session.video_id:
            raise Conflict(
                "baseline_session_id: a paired comparison needs both sessions on the same video"
            )
        return baseline
    earlier = [
        s
        for s in await sessions_of_video(services.read_pool, current.session.video_id)
        if s.id != current.session.id and s.created_at <= current.session.created_at
    ]
    for s in sorted(earlier, key=lambda s: s.created_at, reverse=True):
        try:
            return await _evaluated(services, s.id, "baseline_session_id")
        except Conflict:
            continue
    return None


def _trend(cmp: PairedComparison, level: float) -> str:
    if cmp.low is None or cmp.high is None or cmp.difference is None:
        return "unknown"
    if cmp.low > 0:
        return "improving"
    if cmp.high < 0:
        return "declining"
    return "stable"


def comparison_out(cmp: PairedComparison, baseline: UUID, level: float) -> ComparisonFields:
    return ComparisonFields(
        baseline_session_id=str(baseline),
        f1_baseline=cmp.f1_a,
        f1_current=cmp.f1_b,
        difference=cmp.difference,
        difference_interval=[cmp.low, cmp.high],
        p_value=cmp.p_value,
        frames=cmp.n_frames,
        resamples=cmp.n_resamples,
        performance=_trend(cmp, level),
    )


def _statistical_run(
    current: Evaluated, baseline: Evaluated | None, data: StatisticalRunIn
) -> StatisticalRunOut:
    """The M4 body; CPU-bound (two frame bootstraps), so it runs in a worker thread."""
    level = data.confidence_level
    p_value: float | None = None
    if baseline is None:
        trend = TrendOut(detail="no earlier evaluated session on this video to compare with")
    else:
        cmp = paired_f1_comparison(
            baseline.frames, current.frames, n_resamples=data.n_resamples, confidence=level
        )
        trend = TrendOut(**msgspec.structs.asdict(comparison_out(cmp, baseline.session.id, level)))
        p_value = cmp.p_value
    return StatisticalRunOut(
        id=str(uuid.uuid4()),
        test_session_id=str(current.session.id),
        evaluation_id=str(current.row.id),
        confidence_level=level,
        confidence_interval=intervals(current, level, data.n_resamples),
        p_value=p_value,
        statistical_significance=p_value is not None and p_value < 1 - level,
        trend_analysis=trend,
        created_at=datetime.now(UTC).isoformat(),
    )


def _batch(rows: list[BatchSessionOut], evaluated: list[Evaluated], level: float) -> BatchOut:
    """Intervals, summary and paired comparisons of the evaluated sessions; CPU-bound."""
    by_session = {e.session.id: e for e in evaluated}
    rows = [
        msgspec.structs.replace(r, intervals=intervals(by_session[UUID(r.session_id)], level, 1000))
        if r.evaluated
        else r
        for r in rows
    ]
    summary: dict[str, MetricSummaryOut] = {}
    for metric, attr in (
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1Score", "f1"),
        ("accuracy", "accuracy"),
        ("ap", "ap"),
    ):
        values = [(getattr(e.row, attr), e.session.id) for e in evaluated]
        known = [(v, s) for v, s in values if v is not None]
        if known:
            best = max(known, key=lambda vs: vs[0])
            summary[metric] = MetricSummaryOut(
                mean=sum(v for v, _ in known) / len(known),
                min=min(v for v, _ in known),
                max=best[0],
                best_session_id=str(best[1]),
            )
    paired: list[PairedOut] = []
    first_on_video: dict[UUID, Evaluated] = {}
    for e in evaluated:
        base = first_on_video.setdefault(e.session.video_id, e)
        if base is not e:
            cmp = paired_f1_comparison(base.frames, e.frames, n_resamples=1000, confidence=level)
            fields = msgspec.structs.asdict(comparison_out(cmp, base.session.id, level))
            paired.append(PairedOut(session_id=str(e.session.id), **fields))
    return BatchOut(
        scale="fraction",
        confidence_level=level,
        sessions=rows,
        summary=summary,
        paired_comparisons=paired,
    )


class ValidationController(Controller):
    tags = ["validation"]

    @post(
        "/api/validation/statistical/run",
        operation_id="runStatisticalValidation",
        summary="Intervals and a paired F1 comparison with a baseline session (M4)",
        description=(
            "Fractions 0-1. `confidence_interval`: Wilson (precision, recall, accuracy) and frame "
            "bootstrap (F1) at `confidence_level`. `p_value`: two-sided paired frame bootstrap "
            "of F1(current) - F1(baseline) on the same video; null without a baseline. "
            "`statistical_significance`: p_value < 1 - confidence_level. Computed from stored "
            "results on each call; not itself stored. camelCase and snake_case keys."
        ),
        status_code=200,
        dto=InputDTO[StatisticalRunIn],
        return_dto=None,
    )
    async def statistical_run(
        self, state: State, data: JSONBody[StatisticalRunIn]
    ) -> StatisticalRunOut:
        services = services_of(state)
        current = await _evaluated(services, data.test_session_id, "test_session_id")
        baseline = await _baseline(services, current, data.baseline_session_id)
        return await anyio.to_thread.run_sync(_statistical_run, current, baseline, data)

    @get(
        "/api/validation/confidence-intervals/{session_id:uuid}",
        operation_id="getConfidenceIntervals",
        summary="Confidence intervals of the newest evaluation (M5; fractions 0-1)",
        description=(
            "`precision`, `recall`, `accuracy`: Wilson score intervals from the counts; "
            "`f1_score`: percentile bootstrap over frames. `sample_size` = TP + FP + FN. "
            "camelCase and snake_case keys."
        ),
    )
    async def confidence_intervals(
        self,
        state: State,
        session_id: FromPath[UUID],
        confidence_level: Annotated[float, Parameter(ge=0.5, le=0.99)] = 0.95,
    ) -> ConfidenceIntervalsOut:
        current = await _evaluated(services_of(state), session_id, "sessionId")
        return await anyio.to_thread.run_sync(intervals, current, confidence_level)

    @post(
        "/api/results/batch-analysis",
        operation_id="batchAnalysis",
        summary="Many sessions side by side, with paired comparisons on shared videos",
        description="Fractions 0-1; camelCase keys.",
        status_code=200,
        dto=InputDTO[BatchIn],
        return_dto=None,
    )
    async def batch_analysis(self, state: State, data: JSONBody[BatchIn]) -> BatchOut:
        services = services_of(state)
        rows: list[BatchSessionOut] = []
        evaluated: list[Evaluated] = []
        for sid in dict.fromkeys(data.session_ids):
            session = await session_or_404(services, sid)
            try:
                e = await _evaluated(services, sid, "session_ids")
            except Conflict as err:
                rows.append(
                    BatchSessionOut(
                        session_id=str(sid),
                        name=session.name,
                        status=session.status,
                        evaluated=False,
                        detail=err.detail,
                    )
                )
                continue
            evaluated.append(e)
            r = e.row
            rows.append(
                BatchSessionOut(
                    session_id=str(sid),
                    name=session.name,
                    video_id=str(session.video_id),
                    status=session.status,
                    evaluated=True,
                    evaluation_id=str(r.id),
                    precision=r.precision,
                    recall=r.recall,
                    f1_score=r.f1,
                    accuracy=r.accuracy,
                    ap=r.ap,
                    ap50=r.ap50,
                    ap75=r.ap75,
                    latency_p95_ms=r.latency_p95_ms,
                    verdict=r.outcome,
                )
            )
        return await anyio.to_thread.run_sync(_batch, rows, evaluated, data.confidence_level)
