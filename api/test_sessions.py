"""Test sessions (contract T1-T3, T8-T10): create and read; the moves are api/session_lifecycle.py.

Decision where the frontend disagrees with itself: `POST /api/test-sessions` takes `videoId`
(or `video_id`), or the `videoIds` list TestExecution.tsx sends when it names exactly one video;
a session runs on one video, so a list of several is refused (422) instead of silently
dropping all but the first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter

from api.evaluation_views import percent
from api.inputs import InputDTO, InputError, SkipQuery, decode_input
from api.operation_ids import per_path
from api.projects import load_project
from api.services import Services, caught_up, execute, services_of
from commands.test_sessions import CreateTestSession, create_test_session
from domain.errors import NotFound
from domain.limits import MAX_LIST, Fraction, Identifier, OptionalName, Text, ToleranceMs
from domain.test_sessions import DEFAULT_IOU_THRESHOLD, DEFAULT_TOLERANCE_MS
from projections import test_sessions as read
from projections.evaluations import EvaluationRow, latest_recorded_of
from projections.videos import get_video, ground_truth_of_project


class TestSessionIn(msgspec.Struct, kw_only=True):
    __test__ = False

    name: OptionalName
    """Blank is refused by hand, with the original's 400."""
    project_id: UUID
    video_id: UUID | None = None
    video_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_LIST)] | None = None
    tolerance_ms: ToleranceMs = DEFAULT_TOLERANCE_MS
    iou_threshold: Fraction = DEFAULT_IOU_THRESHOLD
    device_id: Identifier | None = None
    description: Text | None = None


class ExecuteTestIn(msgspec.Struct, kw_only=True):
    name: OptionalName | None = None
    video_id: UUID | None = None
    tolerance_ms: ToleranceMs = DEFAULT_TOLERANCE_MS
    iou_threshold: Fraction = DEFAULT_IOU_THRESHOLD
    device_id: Identifier | None = None


class TestSessionOut(msgspec.Struct, kw_only=True, rename="camel"):
    __test__ = False

    id: UUID
    name: str
    project_id: UUID
    video_id: UUID
    video_ids: list[UUID]
    """[videoId]: EnhancedTestExecution.tsx counts a session's videos from this list."""
    status: str
    tolerance_ms: int
    iou_threshold: float
    device_id: str | None
    description: str | None
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime | None
    frame_count: int
    detection_count: int
    total_detections: int
    class_counts: dict[str, int]
    first_detection_at: datetime | None
    last_detection_at: datetime | None
    version: int
    metrics: SessionMetricsOut | None = None
    """From the newest recorded evaluation (percentages, as T4); null until there is one."""


class SessionMetricsOut(msgspec.Struct, kw_only=True, rename="camel"):
    accuracy: float
    precision: float
    recall: float
    f1_score: float
    true_positives: int
    false_positives: int
    false_negatives: int
    total_detections: int
    evaluation_id: UUID


def metrics_out(row: EvaluationRow | None) -> SessionMetricsOut | None:
    if row is None:
        return None
    tp, fp, fn = row.tp or 0, row.fp or 0, row.fn or 0
    return SessionMetricsOut(
        accuracy=percent(row.accuracy),
        precision=percent(row.precision),
        recall=percent(row.recall),
        f1_score=percent(row.f1),
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        total_detections=tp + fp,
        evaluation_id=row.id,
    )


class ExecuteTestOut(msgspec.Struct, kw_only=True):
    session_id: UUID
    status: str
    message: str
    video_count: int
    video_id: UUID


class SessionStatusOut(msgspec.Struct, kw_only=True):
    """T9 as the original shaped it (snake_case), with the counts Verity knows."""

    session_id: UUID
    status: str
    progress: float
    """0-100: how far into the video the newest frame is (100 once completed)."""
    videos_processed: int
    total_videos: int
    metrics: dict[str, Any]
    error: str | None


def session_out(
    row: read.TestSessionRow, evaluation: EvaluationRow | None = None
) -> TestSessionOut:
    fields = msgspec.structs.asdict(row)
    fields.pop("last_frame_timestamp")
    return TestSessionOut(
        **fields,
        video_ids=[row.video_id],
        total_detections=row.detection_count,
        metrics=metrics_out(evaluation),
    )


async def sessions_out(services: Services, rows: list[read.TestSessionRow]) -> list[TestSessionOut]:
    """Sessions with the metrics of their newest evaluation, two queries for the whole list."""
    async with services.read_pool.connection() as conn:
        evaluations = await latest_recorded_of(conn, [r.id for r in rows])
    return [session_out(r, evaluations.get(r.id)) for r in rows]


async def load_session(services: Services, session_id: UUID) -> read.TestSessionRow:
    row = await read.get_test_session(services.read_pool, session_id)
    if row is None:
        raise NotFound("Test session", session_id, "Test session not found")
    return row


def _video_of(data: TestSessionIn) -> UUID:
    if data.video_id is not None:
        return data.video_id
    if data.video_ids is not None and len(data.video_ids) == 1:
        return data.video_ids[0]
    if data.video_ids:
        raise InputError(
            "videoIds: a test session runs on one video; create one session per video",
            "videoIds",
        )
    raise InputError("videoId: field is required", "videoId")


def _progress(row: read.TestSessionRow, duration: float | None) -> float:
    if row.status == "completed":
        return 100.0
    if not duration or row.last_frame_timestamp is None:
        return 0.0
    return round(min(100.0, 100.0 * row.last_frame_timestamp / duration), 1)


class TestSessionsController(Controller):
    __test__ = False
    tags = ["test sessions"]

    @get(
        ["/api/test-sessions", "/api/sessions"],
        operation_id=per_path({"": "listTestSessions", "sessions": "listSessions"}),
        summary="Test sessions (T1), deleted ones left out",
    )
    async def list_sessions(
        self,
        state: State,
        project_id: FromQuery[UUID | None] = None,
        project_id_camel: Annotated[UUID | None, QueryParameter(name="projectId")] = None,
        skip: SkipQuery = 0,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[TestSessionOut]:
        services = services_of(state)
        rows = await read.list_test_sessions(
            services.read_pool, project_id or project_id_camel, skip, limit
        )
        return await sessions_out(services, rows)

    @post(
        ["/api/test-sessions", "/api/sessions"],
        operation_id=per_path({"": "createTestSession", "sessions": "createSession"}),
        summary="Create a test session on one video (T2)",
        status_code=200,
        dto=InputDTO[TestSessionIn],
        return_dto=None,
    )
    async def create_session(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[TestSessionIn]
    ) -> TestSessionOut:
        if not data.name.strip():
            raise InputError("Test session name is required", "name", status_code=400)
        services = services_of(state)
        cmd = CreateTestSession(
            name=data.name,
            project_id=data.project_id,
            video_id=_video_of(data),
            tolerance_ms=data.tolerance_ms,
            iou_threshold=data.iou_threshold,
            device_id=data.device_id,
            description=data.description,
        )
        position = await execute(services, request, create_test_session, cmd)
        await caught_up(services, position, "test_sessions_v1")
        return session_out(await load_session(services, cmd.id))

    @get(
        ["/api/test-sessions/{session_id:uuid}", "/api/sessions/{session_id:uuid}"],
        operation_id=per_path({"": "getTestSession", "sessions": "getSession"}),
        summary="One test session with its counts (T3); a deleted one too, status `deleted`",
    )
    async def get_session(self, state: State, session_id: FromPath[UUID]) -> TestSessionOut:
        services = services_of(state)
        return (await sessions_out(services, [await load_session(services, session_id)]))[0]

    @get(
        "/api/test-sessions/{session_id:uuid}/status",
        operation_id="getTestSessionStatus",
        summary="Status and progress of a test session (T9)",
    )
    async def session_status(self, state: State, session_id: FromPath[UUID]) -> SessionStatusOut:
        services = services_of(state)
        row = await load_session(services, session_id)
        async with services.read_pool.connection() as conn:
            video = await get_video(conn, row.video_id)
        progress = _progress(row, video.duration if video else None)
        return SessionStatusOut(
            session_id=row.id,
            status=row.status,
            progress=progress,
            videos_processed=1 if row.status == "completed" else 0,
            total_videos=1,
            metrics={
                "frameCount": row.frame_count,
                "detectionCount": row.detection_count,
                "classCounts": row.class_counts,
            },
            error=row.error,
        )

    @get(
        "/api/projects/{project_id:uuid}/test-sessions",
        operation_id="listProjectTestSessions",
        summary="Test sessions of a project (T10)",
    )
    async def project_sessions(
        self, state: State, project_id: FromPath[UUID]
    ) -> list[TestSessionOut]:
        await load_project(state, project_id)
        services = services_of(state)
        rows = await read.list_test_sessions(services.read_pool, project_id, 0, 10_000)
        return await sessions_out(services, rows)

    @post(
        "/api/projects/{project_id:uuid}/execute-test",
        operation_id="executeTest",
        summary="Create and start a test session on a project video with ground truth (T8)",
        status_code=200,
    )
    async def execute_test(
        self,
        state: State,
        request: Request[Any, Any, Any],
        project_id: FromPath[UUID],
    ) -> ExecuteTestOut:
        services = services_of(state)
        project = await load_project(state, project_id)
        body = await request.body()  # optional: every field has a default
        data = decode_input(body, ExecuteTestIn) if body.strip() else ExecuteTestIn()
        async with services.read_pool.connection() as conn:
            videos = await ground_truth_of_project(conn, project_id)
        candidates = [v for v in videos if data.video_id in (None, v.id)]
        if data.video_id is not None and not candidates:
            raise NotFound("Video", data.video_id, f"Video {data.video_id} is not in this project")
        chosen = [v.id for v in candidates if v.has_ground_truth]
        if not chosen:
            raise InputError(
                "No video with ground truth in this project; annotate a video first",
                "videoId",
                status_code=400,
            )
        cmd = CreateTestSession(
            name=data.name or f"{project.name} test",
            project_id=project_id,
            video_id=chosen[0],
            tolerance_ms=data.tolerance_ms,
            iou_threshold=data.iou_threshold,
            device_id=data.device_id,
            start=True,
        )
        position = await execute(services, request, create_test_session, cmd)
        await caught_up(services, position, "test_sessions_v1")
        return ExecuteTestOut(
            session_id=cmd.id,
            status="started",
            message=f"Test session started on video {chosen[0]}",
            video_count=len(chosen),
            video_id=chosen[0],
        )
