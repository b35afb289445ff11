"""Projects endpoints (contract P1-P5)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, Parameter

from api.detector_models import resolve_model
from api.inputs import InputDTO, SkipQuery
from api.services import caught_up, execute, services_of
from commands.detector_models import AssignModels
from commands.detector_models import assign_models as assign_models_handler
from commands.projects import CreateProject, DeleteProject, UpdateProject
from commands.projects import create_project as create_project_handler
from commands.projects import delete_project as delete_project_handler
from commands.projects import update_project as update_project_handler
from domain.errors import InvalidValue, NotFound
from domain.limits import MAX_LIST, Identifier, Name, OptionalName, Text, WholeFrameRate
from domain.projects import CameraView, ProjectChanges, ProjectStatus, SignalType
from domain.renditions import rendition_filename
from projections import projects as read
from projections.test_sessions import session_ids_of_project
from projections.videos import video_files_of_project

_encoder = msgspec.json.Encoder()
UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class ProjectIn(msgspec.Struct, kw_only=True):
    name: Name
    camera_model: Name
    camera_view: CameraView
    signal_type: SignalType
    description: Text | None = None
    lens_type: OptionalName | None = None
    resolution: OptionalName | None = None
    frame_rate: WholeFrameRate | None = None
    status: ProjectStatus = ProjectStatus.ACTIVE


class ProjectPatch(msgspec.Struct, kw_only=True):
    name: Name | Unset = UNSET
    description: Text | Unset | None = UNSET
    camera_model: Name | Unset = UNSET
    camera_view: CameraView | Unset = UNSET
    lens_type: OptionalName | Unset | None = UNSET
    resolution: OptionalName | Unset | None = UNSET
    frame_rate: WholeFrameRate | Unset | None = UNSET
    signal_type: SignalType | Unset = UNSET
    status: ProjectStatus | Unset = UNSET
    models: Annotated[list[Identifier], msgspec.Meta(max_length=MAX_LIST)] | Unset = UNSET
    """Detector models by id, name or `name:version`, the project's default first."""


ProjectOut = read.ProjectRow
"""A project in responses: the read model's row, whose JSON keys are camelCase."""


class Message(msgspec.Struct, kw_only=True):
    message: str


def _check(data: ProjectIn | ProjectPatch) -> None:
    """The one rule a msgspec constraint cannot say: a name is more than blanks."""
    for field, value in (("name", data.name), ("cameraModel", data.camera_model)):
        if isinstance(value, str) and not value.strip():
            raise InvalidValue(field, f"{field}: must not be blank")


async def load_project(state: State, project_id: UUID) -> ProjectOut:
    async with services_of(state).read_pool.connection() as conn:
        row = await read.get_project(conn, project_id)
    if row is None:
        raise NotFound("Project", project_id, "Project not found")
    return row


class ProjectsController(Controller):
    path = "/api/projects"
    tags = ["projects"]

    @get(
        operation_id="listProjects",
        summary="List projects (P1)",
        responses={200: ResponseSpec(data_container=list[ProjectOut], description="Projects")},
    )
    async def list_projects(
        self,
        state: State,
        skip: SkipQuery = 0,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> Response[bytes]:
        services = services_of(state)

        async def render() -> bytes:
            async with services.read_pool.connection() as conn:
                return _encoder.encode(await read.list_projects(conn, skip, limit))

        sessions_at = services.read_side.positions().get(read.SESSIONS_PROJECTION)
        key = (skip, limit, sessions_at)  # `testsCount` comes from the sessions read model
        body = await services.responses.get(read.PROJECTION_NAME, key, render)
        return Response(content=body, media_type=MediaType.JSON)

    @get("/{project_id:uuid}", operation_id="getProject", summary="Get a project (P2)")
    async def get_project(self, state: State, project_id: FromPath[UUID]) -> ProjectOut:
        return await load_project(state, project_id)

    @post(
        operation_id="createProject",
        summary="Create a project (P3)",
        status_code=200,
        dto=InputDTO[ProjectIn],
        return_dto=None,
    )
    async def create_project(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[ProjectIn]
    ) -> ProjectOut:
        _check(data)
        services = services_of(state)
        cmd = CreateProject(**msgspec.structs.asdict(data))
        position = await execute(services, request, create_project_handler, cmd)
        await caught_up(services, position, "projects_v1")
        return await load_project(state, cmd.id)

    @put(
        "/{project_id:uuid}",
        operation_id="updateProject",
        summary="Update a project's fields (P4); only changed fields are recorded",
        dto=InputDTO[ProjectPatch],
        return_dto=None,
    )
    async def update_project(
        self,
        state: State,
        request: Request[Any, Any, Any],
        project_id: FromPath[UUID],
        data: JSONBody[ProjectPatch],
    ) -> ProjectOut:
        _check(data)
        services = services_of(state)
        fields = msgspec.structs.asdict(data)
        models = fields.pop("models")
        if models is not UNSET:  # resolved first: an unknown one changes nothing
            await load_project(state, project_id)
            found = [await resolve_model(services, m, "models") for m in models]
            assign = AssignModels(project_id=project_id, model_ids=tuple(m.id for m in found))
        cmd = UpdateProject(id=project_id, changes=ProjectChanges(**fields))
        position = await execute(services, request, update_project_handler, cmd)
        if models is not UNSET:
            position = await execute(services, request, assign_models_handler, assign) or position
        await caught_up(services, position, "projects_v1")
        return await load_project(state, project_id)

    @delete(
        "/{project_id:uuid}",
        operation_id="deleteProject",
        summary="Delete a project and the videos it owns (P5); 409 while it has test sessions",
        status_code=200,
    )
    async def delete_project(
        self, state: State, request: Request[Any, Any, Any], project_id: FromPath[UUID]
    ) -> Message:
        services = services_of(state)
        async with services.read_pool.connection() as conn:
            videos = await video_files_of_project(conn, project_id)
        video_ids = tuple(vid for vid, _ in videos)
        sessions = await session_ids_of_project(services.read_pool, project_id, video_ids)
        cmd = DeleteProject(id=project_id, video_ids=video_ids, test_session_ids=tuple(sessions))
        position = await execute(services, request, delete_project_handler, cmd)
        for video_id, filename in videos:  # only once the deletions are stored
            for name in (filename, rendition_filename(video_id)):
                (services.config.uploads_dir / name).unlink(missing_ok=True)
        await caught_up(services, position, "projects_v1", "videos_v1")
        return Message(message="Project deleted successfully")
