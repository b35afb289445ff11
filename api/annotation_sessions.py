"""Annotation sessions (contract S1-S3); counts come from the annotations read model."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api.annotations import run_command
from api.inputs import InputDTO
from api.services import Services, caught_up, services_of
from commands.annotation_sessions import StartSession, UpdateSession, start_session, update_session
from domain.annotation_sessions import SessionChanges, SessionStatus
from domain.errors import NotFound
from domain.limits import Count, FrameCount, FrameNumber, OptionalName
from projections import annotation_sessions as read

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class SessionIn(msgspec.Struct, kw_only=True):
    video_id: UUID
    project_id: UUID | None = None
    annotator_id: OptionalName | None = None


class SessionPatch(msgspec.Struct, kw_only=True):
    """S3 body. `total_detections`/`validated_detections` are accepted and ignored: they are
    derived from the video's annotations, never typed in."""

    status: SessionStatus | Unset = UNSET
    current_frame: FrameNumber | Unset = UNSET
    total_frames: FrameCount | Unset | None = UNSET
    total_detections: Count | None = None
    validated_detections: Count | None = None


class SessionOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: UUID
    video_id: UUID
    project_id: UUID
    annotator_id: str | None
    status: str
    total_detections: int
    validated_detections: int
    current_frame: int
    total_frames: int | None
    created_at: datetime
    updated_at: datetime | None
    version: int


async def _session(services: Services, session_id: UUID) -> SessionOut:
    async with services.read_pool.connection() as conn:
        row = await read.get_session(conn, session_id)
    if row is None:
        raise NotFound("Annotation session", session_id, "Annotation session not found")
    return SessionOut(**msgspec.structs.asdict(row))


class AnnotationSessionsController(Controller):
    path = "/api/annotation-sessions"
    tags = ["annotation sessions"]

    @post(
        operation_id="createAnnotationSession",
        summary="Start annotating a video (S1)",
        status_code=200,
        dto=InputDTO[SessionIn],
        return_dto=None,
    )
    async def create_session(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[SessionIn]
    ) -> SessionOut:
        services = services_of(state)
        cmd = StartSession(
            video_id=data.video_id, project_id=data.project_id, annotator_id=data.annotator_id
        )
        position = await run_command(services, request, start_session, cmd)
        await caught_up(services, position, "annotation_sessions_v1")
        return await _session(services, cmd.id)

    @get("/{session_id:uuid}", operation_id="getAnnotationSession", summary="A session (S2)")
    async def get_session(self, state: State, session_id: FromPath[UUID]) -> SessionOut:
        return await _session(services_of(state), session_id)

    @put(
        "/{session_id:uuid}",
        operation_id="updateAnnotationSession",
        summary="Update status / current frame (S3); detection counts are derived, not set",
        dto=InputDTO[SessionPatch],
        return_dto=None,
    )
    async def update_session(
        self,
        state: State,
        request: Request[Any, Any, Any],
        session_id: FromPath[UUID],
        data: JSONBody[SessionPatch],
    ) -> SessionOut:
        services = services_of(state)
        changes = SessionChanges(
            status=data.status, current_frame=data.current_frame, total_frames=data.total_frames
        )
        cmd = UpdateSession(id=session_id, changes=changes)
        position = await run_command(services, request, update_session, cmd)
        await caught_up(services, position, "annotation_sessions_v1")
        return await _session(services, session_id)
