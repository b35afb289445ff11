"""Results of test sessions (contract T4 and issue 5): figures, comparisons, export, re-runs.

Scales: `GET .../results` keeps the original Results page's shape with percentages 0-100 under
camelCase and snake_case keys (contract decision 3). Every other endpoint here uses fractions
0-1. Accuracy is TP / (TP + FP + FN): detection has no true negatives, so this is the critical
success index (threat score), not (TP + TN) / N.
"""

from __future__ import annotations

import csv
import io
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, Parameter

from api.charts import confusion_svg, pr_curve_svg
from api.evaluation_views import (
    detailed,
    detailed_fields,
    evaluation_or_wait,
    headline_fractions,
    percent,
    report_of,
    run_evaluation,
    run_rerun,
    session_or_404,
)
from api.inputs import InputDTO, LimitQuery, SkipQuery
from api.result_dtos import (
    ComparisonOut,
    ComparisonsOut,
    DetailedOut,
    DetectionRef,
    EvaluatedOut,
    EvaluationSummaryOut,
    ExportOut,
    Labelled,
    PendingOut,
    PinOut,
    RerunOut,
    ResultsOut,
)
from api.services import services_of
from commands.evaluations import EvaluateSession, GroundTruthChoice, RerunEvaluation
from domain.casing import as_camel
from domain.errors import Conflict
from domain.limits import Fraction
from projections import evaluations as read

SVG = "image/svg+xml"
PENDING = {
    202: ResponseSpec(
        data_container=PendingOut,
        description="The session runs or its evaluation is not stored yet; `detail` says which",
    )
}

GROUND_TRUTH_RULE = (
    " Ground truth: the video's annotations that are not deleted and are human-made (source "
    "`manual` or `imported`), plus detector-sourced candidates once validated; keyframes of a "
    "track (same `detection_id`) are interpolated to every frame between them; `difficult` "
    "boxes count as ordinary ground truth (no ignore regions)."
)


class EvaluateIn(msgspec.Struct, kw_only=True):
    ground_truth: GroundTruthChoice | None = None
    """`pinned`: re-run the newest (or `evaluationId`) evaluation on exactly the ground truth it
    used; `latest`: re-run it on today's ground truth and report what changed; omitted: a fresh
    evaluation on today's ground truth."""
    evaluation_id: UUID | None = None
    confidence_threshold: Fraction | None = None
    """Keep detections scoring at least this (0-1); omitted: keep all."""


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


class ChartKind(StrEnum):
    PR_CURVE = "pr-curve"
    CONFUSION = "confusion"


_CSV_COLUMNS = (
    "status",
    "frame",
    "time_s",
    "gt_ref",
    "gt_label",
    "det_ref",
    "det_label",
    "confidence",
    "iou",
    "offset_ms",
)


def _comparison_out(r: read.ComparisonRow) -> ComparisonOut:
    return ComparisonOut(
        status=r.status,
        frame=r.frame,
        timestamp=r.time_s,
        ground_truth=None if r.gt_ref is None else Labelled(ref=r.gt_ref, label=r.gt_label),
        detection=None
        if r.det_ref is None
        else DetectionRef(ref=r.det_ref, label=r.det_label, confidence=r.confidence),
        iou=r.iou,
        offset_ms=r.offset_ms,
    )


class ResultsController(Controller):
    path = "/api/test-sessions/{session_id:uuid}"
    tags = ["results"]

    @get(
        "/results",
        operation_id="getTestSessionResults",
        summary="Results of a test session (T4; percentages 0-100, camel and snake keys)",
        description=(
            "The newest evaluation's headline figures in the original Results page's shape: "
            "accuracy, precision, recall and F1 as percentages 0-100 (0 where undefined), counts, "
            "under camelCase and snake_case keys. Accuracy = TP/(TP+FP+FN). 202 while the session "
            "runs or before its evaluation is stored; 404 for an unknown session; 409 when the "
            "evaluation could not run (e.g. no ground truth)."
        ),
        responses=PENDING,
    )
    async def results(self, state: State, session_id: FromPath[UUID]) -> ResultsOut:
        services = services_of(state)
        session = await session_or_404(services, session_id)
        row = await evaluation_or_wait(services, session, with_report=False)
        tp, fp, fn = row.tp or 0, row.fp or 0, row.fn or 0
        return ResultsOut(
            test_session_id=str(session.id),
            session_id=str(session.id),
            accuracy=percent(row.accuracy),
            precision=percent(row.precision),
            recall=percent(row.recall),
            f1_score=percent(row.f1),
            total_detections=tp + fp,
            true_positives=tp,
            false_positives=fp,
            false_negatives=fn,
            status=session.status,
            verdict=row.outcome,
            evaluation_id=str(row.id),
            evaluated_at=row.recorded_at.isoformat() if row.recorded_at else None,
        )

    @get(
        "/detailed-results",
        operation_id="getTestSessionDetailedResults",
        summary="Every figure of the newest evaluation (fractions 0-1)",
        description=(
            "Fractions 0-1. `metrics`: COCO `ap` (AP@[.50:.95], 101-point), `ap50`, `ap75`, "
            "`ar100`, and at the operating point (optimal one-to-one matching at the session's "
            "IoU threshold; box-less detections matched by time within its tolerance) "
            "`precision` = TP/(TP+FP), `recall` = TP/(TP+FN), `f1Score`, and `accuracy` = "
            "TP/(TP+FP+FN) (no true negatives exist in detection). `intervals`: Wilson for "
            "precision/recall, frame bootstrap for F1 and AP. `latency`: capturedAt minus the "
            "ground truth's time (ms) of matched detections. `groundTruth.position`: the global "
            "event position the pinned ground truth was read at." + GROUND_TRUTH_RULE
        ),
        responses=PENDING,
    )
    async def detailed_results(self, state: State, session_id: FromPath[UUID]) -> DetailedOut:
        services = services_of(state)
        session = await session_or_404(services, session_id)
        return detailed(await evaluation_or_wait(services, session), session)

    @get(
        "/evaluations",
        operation_id="listTestSessionEvaluations",
        summary="Every evaluation of a session, newest first (fractions 0-1)",
    )
    async def evaluations(
        self, state: State, session_id: FromPath[UUID]
    ) -> list[EvaluationSummaryOut]:
        services = services_of(state)
        await session_or_404(services, session_id)
        async with services.read_pool.connection() as conn:
            rows = await read.session_evaluations(conn, session_id)
        return [
            EvaluationSummaryOut(
                id=str(r.id),
                trigger=r.trigger,
                based_on=str(r.based_on) if r.based_on else None,
                status=r.status,
                created_at=r.created_at.isoformat(),
                ground_truth_position=r.gt_position,
                ground_truth_annotations=r.gt_annotations,
                detections=r.detections_count,
                precision=r.precision,
                recall=r.recall,
                f1_score=r.f1,
                accuracy=r.accuracy,
                ap=r.ap,
                ap50=r.ap50,
                ap75=r.ap75,
                verdict=r.outcome,
            )
            for r in rows
        ]

    @get(
        "/comparisons",
        operation_id="getTestSessionComparisons",
        summary="Each detection and ground-truth object with TP/FP/FN, IoU, offset (paginated)",
        description=(
            "Rows of the newest evaluation in frame order: TP (a matched pair with its IoU, or "
            "its temporal offset for box-less events), FP (a detection nothing matched), FN (a "
            "ground-truth object nothing matched), BELOW_THRESHOLD (a detection under the "
            "confidence threshold). `offsetMs` = detection time minus ground-truth time."
        ),
        responses=PENDING,
    )
    async def comparisons(
        self,
        state: State,
        session_id: FromPath[UUID],
        skip: SkipQuery = 0,
        limit: LimitQuery = 100,
        status: Annotated[str | None, Parameter(pattern="^(TP|FP|FN|BELOW_THRESHOLD)$")] = None,
    ) -> ComparisonsOut:
        services = services_of(state)
        session = await session_or_404(services, session_id)
        row = await evaluation_or_wait(services, session, with_report=False)
        async with services.read_pool.connection() as conn:
            total, rows = await read.comparisons(
                conn, row.id, status=status, offset=skip, limit=limit
            )
        return ComparisonsOut(
            session_id=str(session.id),
            evaluation_id=str(row.id),
            total=total,
            skip=skip,
            limit=limit,
            items=[_comparison_out(r) for r in rows],
        )

    @get(
        "/export",
        operation_id="exportTestSessionResults",
        summary="Export the newest evaluation: CSV (comparison rows) or JSON (everything)",
        responses=PENDING,
    )
    async def export(
        self,
        state: State,
        session_id: FromPath[UUID],
        format: FromQuery[ExportFormat] = ExportFormat.JSON,  # noqa: A002
    ) -> Response[ExportOut | str]:
        services = services_of(state)
        session = await session_or_404(services, session_id)
        row = await evaluation_or_wait(services, session)
        async with services.read_pool.connection() as conn:
            _, rows = await read.comparisons(conn, row.id, offset=0, limit=None)
        name = f"test-session-{session.id}-results"
        if format is ExportFormat.CSV:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(_CSV_COLUMNS)
            for r in rows:
                writer.writerow(["" if (v := getattr(r, c)) is None else v for c in _CSV_COLUMNS])
            return Response(
                buffer.getvalue(),
                media_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        body = ExportOut(
            **detailed_fields(row, session), comparisons=[_comparison_out(r) for r in rows]
        )
        return Response(
            body,
            media_type=MediaType.JSON,
            headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
        )

    @get(
        "/charts/{kind:str}",
        operation_id="getTestSessionChart",
        summary="PR curve (`pr-curve`) or confusion matrix (`confusion`) as an SVG image",
        media_type=SVG,
        responses=PENDING,
    )
    async def chart(
        self, state: State, session_id: FromPath[UUID], kind: FromPath[ChartKind]
    ) -> Response[str]:
        services = services_of(state)
        session = await session_or_404(services, session_id)
        row = await evaluation_or_wait(services, session)
        report = report_of(row)
        title = f"Test session {session.name}"
        svg = (
            pr_curve_svg(report, title)
            if kind is ChartKind.PR_CURVE
            else confusion_svg(report, title)
        )
        return Response(svg, media_type=SVG)

    @post(
        "/evaluate",
        operation_id="evaluateTestSession",
        summary="Evaluate now, or re-run an evaluation on pinned or latest ground truth",
        description=(
            "Body (optional): `groundTruth`: `pinned` re-runs the newest evaluation (or "
            "`evaluationId`) on exactly the annotation versions it used, so the figures are "
            "identical; `latest` re-runs it on the ground truth as it is now. Both answer with "
            "the previous and the new headline figures and their differences. Without "
            "`groundTruth` a fresh evaluation runs. Fractions 0-1. 409 when the video has no "
            "ground truth or there is nothing to re-run; 404 for an unknown session."
            + GROUND_TRUTH_RULE
        ),
        status_code=200,
        dto=InputDTO[EvaluateIn],
        return_dto=None,
    )
    async def evaluate(
        self,
        state: State,
        request: Request[Any, Any, Any],
        session_id: FromPath[UUID],
        data: JSONBody[EvaluateIn | None] = None,
    ) -> EvaluatedOut | RerunOut:
        services = services_of(state)
        session = await session_or_404(services, session_id)
        body = data or EvaluateIn()
        if body.ground_truth is None:
            done = await run_evaluation(
                services,
                request,
                EvaluateSession(
                    session_id=session.id, confidence_threshold=body.confidence_threshold
                ),
            )
            return EvaluatedOut(
                session_id=str(session.id),
                evaluation_id=str(done.evaluation_id),
                ground_truth=PinOut(
                    position=done.ground_truth.position,
                    annotations=len(done.ground_truth.annotations),
                ),
                metrics=headline_fractions(done.report),
                verdict=None if done.verdict is None else as_camel(done.verdict),
            )
        previous = body.evaluation_id
        if previous is None:
            async with services.read_pool.connection() as conn:
                latest = await read.latest_evaluation(conn, session.id, with_report=False)
            if latest is None or latest.status != "recorded":
                raise Conflict(
                    f"groundTruth: test session {session.id} has no recorded evaluation to "
                    "re-run; POST without groundTruth to evaluate it first"
                )
            previous = latest.id
        rerun = await run_rerun(
            services,
            request,
            session.id,
            RerunEvaluation(evaluation_id=previous, ground_truth=body.ground_truth),
        )
        verdict = rerun.evaluated.verdict
        return RerunOut(
            session_id=str(session.id),
            evaluation_id=str(rerun.evaluated.evaluation_id),
            based_on=str(rerun.based_on),
            ground_truth=rerun.ground_truth.value,
            pinned=PinOut(
                position=rerun.evaluated.ground_truth.position,
                annotations=len(rerun.evaluated.ground_truth.annotations),
            ),
            previous=as_camel(rerun.previous),
            current=as_camel(rerun.current),
            changes={k: as_camel(v) for k, v in rerun.changes.items()},
            ground_truth_changes=as_camel(rerun.ground_truth_changes),
            verdict=None if verdict is None else as_camel(verdict),
        )
