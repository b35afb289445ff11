"""Detection runs over HTTP: request, follow, cancel; contract M1 and V7 on top of them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from api.detector_models import resolve_model
from api.inputs import InputDTO, decode_input
from api.services import ReadModel, Services, caught_up, execute, services_of
from commands.detection_runs import CancelRun, RequestRun
from commands.detection_runs import cancel_run as cancel_run_handler
from commands.detection_runs import request_run as request_run_handler
from domain.detection_runs import RunMode, RunParameters
from domain.errors import Conflict, NotFound
from domain.limits import (
    MAX_LIST,
    ComputeDevice,
    Fraction,
    FrameStride,
    Identifier,
    InferenceBatch,
    Label,
)
from projections import detection_runs as read
from projections.projects import get_project
from projections.test_sessions import DetectionRow, session_detections
from projections.videos import get_video

READ_MODEL: ReadModel = "detection_runs_v1"
"""Its projection's name (tests/unit/test_read_models.py keeps the names equal)."""
TargetClasses = Annotated[list[Label], msgspec.Meta(max_length=MAX_LIST)]


class RunIn(msgspec.Struct, kw_only=True):
    video_id: UUID
    model_id: Identifier
    """The model's id, name, or `name:version`."""
    mode: RunMode = RunMode.TEST_SESSION
    session_id: UUID | None = None
    confidence: Fraction | None = None
    nms_iou: Fraction | None = None
    target_classes: TargetClasses = []
    frame_stride: FrameStride = 1
    batch_size: InferenceBatch = 8
    tracking: bool = False
    device: ComputeDevice = "auto"


class RunOut(read.RunRow, frozen=True, kw_only=True, rename="camel"):
    frames_total: int
    progress: float
    """Percent 0-100 of the frames the run processes (every `frameStride`-th)."""
    eta_seconds: float | None


class PipelineIn(msgspec.Struct, kw_only=True):
    """Contract M1's body."""

    video_id: UUID
    model_name: Identifier | None = None
    confidence_threshold: Fraction | None = None
    nms_threshold: Fraction | None = None
    target_classes: TargetClasses = []


class BoxOut(msgspec.Struct, kw_only=True):
    x: float
    y: float
    width: float
    height: float


class PipelineDetection(msgspec.Struct, kw_only=True):
    """One detection as contract M1's page reads it (snake_case, with its synonyms)."""

    id: UUID
    frame_number: int | None
    timestamp: float
    class_label: str
    class_name: str
    vru_type: str
    confidence: float | None
    bounding_box: BoxOut
    bbox: tuple[float, float, float, float]
    """[x1, y1, x2, y2]."""
    track_id: str | None


class PipelineOut(msgspec.Struct, kw_only=True):
    """Contract M1's answer: the run's detections (its test session holds them)."""

    video_id: UUID
    run_id: UUID
    session_id: UUID
    detections: list[PipelineDetection]
    processing_time: float
    processingTime: float  # noqa: N815 - the page reads both spellings
    model_used: str
    total_detections: int
    confidence_distribution: dict[str, int]
    status: str = "success"


class GroundTruthIn(msgspec.Struct, kw_only=True):
    model_id: Identifier | None = None


class GroundTruthOut(msgspec.Struct, kw_only=True):
    """Contract V7 (snake_case, as the page reads it), with the run to follow."""

    video_id: UUID
    status: str
    message: str
    run_id: UUID | None = None


def run_out(row: read.RunRow) -> RunOut:
    total = row.planned_frames
    left = max(total - row.frames_done, 0)
    fps = row.frames_per_second
    eta = left / fps if fps and row.status == "running" else None
    return RunOut(
        **msgspec.structs.asdict(row),
        frames_total=total,
        progress=round(100.0 * row.frames_done / total, 2) if total else 0.0,
        eta_seconds=None if eta is None else round(eta, 2),
    )


async def load_run_row(services: Services, run_id: UUID) -> read.RunRow:
    async with services.read_pool.connection() as conn:
        row = await read.get_run(conn, run_id)
    if row is None:
        raise NotFound("Detection run", run_id, f"Detection run {run_id} not found")
    return row


async def _video_exists(services: Services, video_id: UUID) -> Any:
    async with services.read_pool.connection() as conn:
        video = await get_video(conn, video_id)
    if video is None:
        raise NotFound("Video", video_id, f"videoId: video {video_id} not found")
    return video


async def start_run(
    services: Services, request: Request[Any, Any, Any], data: RunIn
) -> read.RunRow:
    """Store the request, hand it to the detector queue, answer the run's row."""
    await _video_exists(services, data.video_id)
    model = await resolve_model(services, data.model_id)
    params = RunParameters(
        confidence=model.confidence if data.confidence is None else data.confidence,
        nms_iou=model.nms_iou if data.nms_iou is None else data.nms_iou,
        target_classes=tuple(data.target_classes),
        frame_stride=data.frame_stride,
        batch_size=data.batch_size,
        tracking=data.tracking,
        device=data.device,
    )
    cmd = RequestRun(
        model_id=model.id,
        video_id=data.video_id,
        mode=data.mode,
        parameters=params,
        session_id=data.session_id,
    )
    position = await execute(services, request, request_run_handler, cmd)
    if services.detector_queue is not None:
        await services.detector_queue.run(cmd.id)
    await caught_up(services, position, READ_MODEL)
    return await load_run_row(services, cmd.id)


async def _until_finished(services: Services, run_id: UUID, timeout: float) -> read.RunRow:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        row = await load_run_row(services, run_id)
        if row.finished_at is not None or time.monotonic() >= deadline:
            return row
        await asyncio.sleep(0.2)


def _m1_detection(d: DetectionRow) -> PipelineDetection:
    x, y, w, h = d.box or (0.0, 0.0, 0.0, 0.0)
    return PipelineDetection(
        id=d.id,
        frame_number=d.frame_number,
        timestamp=d.timestamp,
        class_label=d.class_label,
        class_name=d.class_label,
        vru_type=d.class_label,
        confidence=d.confidence,
        bounding_box=BoxOut(x=x, y=y, width=w, height=h),
        bbox=(x, y, x + w, y + h),
        track_id=d.track_id,
    )


class DetectionRunsController(Controller):
    tags = ["detection"]

    @post(
        "/api/detection/runs",
        operation_id="requestDetectionRun",
        summary="Run a registered model over a video, as a test session or as ground-truth"
        " candidates; a detector worker takes it",
        status_code=200,
        dto=InputDTO[RunIn],
        return_dto=None,
    )
    async def request_run(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[RunIn]
    ) -> RunOut:
        return run_out(await start_run(services_of(state), request, data))

    @get(
        "/api/detection/runs/{run_id:uuid}",
        operation_id="getDetectionRun",
        summary="A run: status, frames done of total, frames/s, ETA, error",
    )
    async def get_run(self, state: State, run_id: FromPath[UUID]) -> RunOut:
        return run_out(await load_run_row(services_of(state), run_id))

    @post(
        "/api/detection/runs/{run_id:uuid}/cancel",
        operation_id="cancelDetectionRun",
        summary="Cancel a run; its worker stores nothing more (its test session fails)",
        status_code=200,
    )
    async def cancel(
        self, state: State, request: Request[Any, Any, Any], run_id: FromPath[UUID]
    ) -> RunOut:
        services = services_of(state)
        position = await execute(services, request, cancel_run_handler, CancelRun(id=run_id))
        await caught_up(services, position, READ_MODEL)
        return run_out(await load_run_row(services, run_id))

    @get(
        "/api/videos/{video_id:uuid}/detection-runs",
        operation_id="listVideoDetectionRuns",
        summary="The detection runs of a video, oldest first",
    )
    async def video_runs(self, state: State, video_id: FromPath[UUID]) -> list[RunOut]:
        services = services_of(state)
        await _video_exists(services, video_id)
        async with services.read_pool.connection() as conn:
            return [run_out(r) for r in await read.runs_of_video(conn, video_id)]

    @post(
        "/api/detection/pipeline/run",
        operation_id="runDetectionPipeline",
        summary="Contract M1: run a model over a video as a test session and answer its"
        " detections; 202 with the run id when it takes longer than the wait bound",
        status_code=200,
        responses={200: ResponseSpec(data_container=PipelineOut, description="Detections")},
        dto=InputDTO[PipelineIn],
        return_dto=None,
    )
    async def pipeline(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[PipelineIn]
    ) -> Response[Any]:
        services = services_of(state)
        model_ref = data.model_name or await _project_model(services, data.video_id, "modelName")
        run = await start_run(
            services,
            request,
            RunIn(
                video_id=data.video_id,
                model_id=model_ref,
                confidence=data.confidence_threshold,
                nms_iou=data.nms_threshold,
                target_classes=data.target_classes,
            ),
        )
        started = time.monotonic()
        row = await _until_finished(services, run.id, services.config.pipeline_wait_timeout)
        if row.status != "completed":
            status = 202 if row.finished_at is None else 409
            pending = {
                "detail": f"Detection run {row.id} is {row.status}"
                + (f": {row.error}" if row.error else ""),
                "run_id": str(row.id),
                "runId": str(row.id),
                "status": row.status,
            }
            return Response(pending, status_code=status)
        await services.read_side.wait_for(
            await asyncio.to_thread(services.app.head),
            services.config.read_wait_timeout,
            ("detections_v1",),
        )
        assert row.session_id is not None
        found = await session_detections(services.read_pool, row.session_id)
        detections = [_m1_detection(d) for d in found]
        bands = Counter(f"{int(min(d.confidence or 0, 0.999) * 10) / 10:.1f}" for d in found)
        elapsed = time.monotonic() - started
        body = PipelineOut(
            video_id=data.video_id,
            run_id=row.id,
            session_id=row.session_id,
            detections=detections,
            processing_time=round(elapsed, 3),
            processingTime=round(elapsed, 3),
            model_used=row.model_name,
            total_detections=len(detections),
            confidence_distribution=dict(sorted(bands.items())),
        )
        return Response(body, status_code=200)

    @post(
        "/api/videos/{video_id:uuid}/process-ground-truth",
        operation_id="processGroundTruth",
        summary="Contract V7: detector candidates for a video's ground truth, with the"
        " project's first model or `modelId`; 409 when there is no model to use",
        status_code=200,
    )
    async def ground_truth(
        self, state: State, request: Request[Any, Any, Any], video_id: FromPath[UUID]
    ) -> GroundTruthOut:
        services = services_of(state)
        raw = await request.body()
        body = decode_input(raw, GroundTruthIn) if raw.strip() else GroundTruthIn()
        await _video_exists(services, video_id)
        async with services.read_pool.connection() as conn:
            runs = await read.runs_of_video(conn, video_id)
        previous = [r for r in runs if r.mode == RunMode.GROUND_TRUTH.value]
        if any(r.status == "completed" for r in previous) and body.model_id is None:
            done = next(r for r in reversed(previous) if r.status == "completed")
            return GroundTruthOut(
                video_id=video_id,
                status="already_completed",
                message=f"Ground truth candidates exist from run {done.id}",
                run_id=done.id,
            )
        model_ref = body.model_id or await _project_model(services, video_id, "modelId")
        run = await start_run(
            services,
            request,
            RunIn(video_id=video_id, model_id=model_ref, mode=RunMode.GROUND_TRUTH),
        )
        return GroundTruthOut(
            video_id=video_id,
            status="started",
            message=f"Detection run {run.id} with model {run.model_name} started",
            run_id=run.id,
        )


async def _project_model(services: Services, video_id: UUID, field: str) -> str:
    """The id of the first model of the video's project; 409 naming what is missing."""
    video = await _video_exists(services, video_id)
    async with services.read_pool.connection() as conn:
        project = await get_project(conn, video.project_id)
    models = project.models if project is not None else []
    if not models:
        raise Conflict(
            f"{field}: no model given and project {video.project_id} has none; register one"
            " (POST /api/detection/models) and add it to the project"
            " (PUT /api/projects/{id} with models), or name one"
        )
    return str(models[0]["id"])
