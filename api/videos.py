"""Videos and the project ↔ video library (contract V1-V6, L1-L4)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from api.inputs import InputDTO, LimitQuery, SkipQuery
from api.media_links import media_links_of
from api.projects import Message, load_project
from api.services import Services, caught_up, execute, principal, services_of
from api.uploads import receive_video
from commands.videos import DeleteVideo, LinkVideos, RegisterUpload, UnlinkVideo
from commands.videos import delete_video as delete_video_handler
from commands.videos import link_videos as link_videos_handler
from commands.videos import register_upload as register_upload_handler
from commands.videos import unlink_video as unlink_video_handler
from domain.errors import NotFound
from domain.limits import MAX_LIST
from domain.projects import CENTRAL_STORE_ID
from domain.renditions import rendition_filename
from projections import videos as read


class VideoOut(msgspec.Struct, kw_only=True, rename="camel"):
    """A video as the frontend's VideoListItem reads it (camelCase, with a few synonyms)."""

    id: UUID
    project_id: UUID
    filename: str
    """The upload's own name: pages show `filename` (the original backend's was the upload's
    name made safe); the file is served at `url` / `originalUrl`, stored as `storedName`."""
    stored_name: str
    """`<uuid>.<ext>`: the file under the uploads folder."""
    original_name: str
    name: str
    url: str
    """What a player should load: the rendition when there is one, else the upload."""
    original_url: str
    """The upload as it was received (kept and served whatever the rendition)."""
    rendition_status: str | None
    """`ready`, `failed` (see `renditionError`) or null (none made: plays as uploaded)."""
    rendition_error: str | None
    status: str
    processing_status: str
    processing_error: str | None
    quality_score: float | None
    created_at: datetime
    uploaded_at: datetime
    updated_at: datetime | None
    duration: float | None
    fps: float | None
    frame_count: int | None
    width: int | None
    height: int | None
    resolution: str | None
    size: int
    file_size: int
    sha256: str
    ground_truth_generated: bool
    ground_truth_status: str
    detection_count: int
    assigned: bool
    version: int


class VideoUploadOut(VideoOut, kw_only=True, rename="camel"):
    message: str


class VideoPage(msgspec.Struct, kw_only=True):
    videos: list[VideoOut]
    total: int


class AvailableVideo(msgspec.Struct, kw_only=True):
    """The original served these raw (snake_case); the library page reads them that way."""

    id: UUID
    filename: str
    """The upload's own name, as on every video response; `file_path` names the stored file."""
    stored_name: str
    original_name: str
    file_path: str
    file_size: int
    duration: float | None
    fps: float | None
    resolution: str | None
    status: str
    processing_status: str
    ground_truth_generated: bool
    project_id: UUID
    created_at: datetime
    updated_at: datetime | None


class LinkIn(msgspec.Struct, kw_only=True):
    video_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_LIST)]


class LinkOut(msgspec.Struct, kw_only=True):
    message: str
    linked_count: int
    linkedCount: int  # noqa: N815 - the contract reads both spellings


def _resolution(row: read.VideoRow) -> str | None:
    return f"{row.width}x{row.height}" if row.width and row.height else None


async def url_maker(state: State, request: Request[Any, Any, Any]) -> Callable[[str], str]:
    """Stored name -> its URL for this request's principal (signed where a player needs that:
    api/media_links.py)."""
    base_url = services_of(state).config.base_url
    return await media_links_of(state).url_maker(principal(request), base_url)


def video_out(row: read.VideoRow, url_of: Callable[[str], str]) -> VideoOut:
    original = url_of(row.filename)
    rendition = row.rendition_filename if row.rendition_status == "ready" else None
    return VideoOut(
        id=row.id,
        project_id=row.project_id,
        filename=row.original_name,
        stored_name=row.filename,
        original_name=row.original_name,
        name=row.original_name,
        url=url_of(rendition) if rendition else original,
        original_url=original,
        rendition_status=row.rendition_status,
        rendition_error=row.rendition_error,
        status=row.status,
        processing_status=row.processing_status,
        processing_error=row.processing_error,
        quality_score=row.quality_score,
        created_at=row.created_at,
        uploaded_at=row.created_at,
        updated_at=row.updated_at,
        duration=row.duration,
        fps=row.fps,
        frame_count=row.frame_count,
        width=row.width,
        height=row.height,
        resolution=_resolution(row),
        size=row.size,
        file_size=row.size,
        sha256=row.sha256,
        ground_truth_generated=row.ground_truth_generated,
        ground_truth_status=row.ground_truth_status,
        detection_count=row.detection_count,
        assigned=row.project_id != CENTRAL_STORE_ID,
        version=row.version,
    )


async def _load_video(services: Services, video_id: UUID) -> read.VideoRow:
    async with services.read_pool.connection() as conn:
        row = await read.get_video(conn, video_id)
    if row is None:
        raise NotFound("Video", video_id, "Video not found")
    return row


async def _upload(
    state: State, request: Request[Any, Any, Any], project_id: UUID
) -> VideoUploadOut:
    services = services_of(state)
    if project_id != CENTRAL_STORE_ID:
        await load_project(state, project_id)
    video_id = uuid4()
    received = await receive_video(
        request, services.config.uploads_dir, video_id, services.config.max_upload_bytes
    )
    cmd = RegisterUpload(
        id=video_id,
        project_id=project_id,
        filename=received.path.name,
        original_name=received.original_name,
        size=received.size,
        sha256=received.sha256,
        metadata=received.metadata,
    )
    try:
        position = await execute(services, request, register_upload_handler, cmd)
    except BaseException:
        received.path.unlink(missing_ok=True)  # nothing stored: no event, so no file either
        raise
    await caught_up(services, position, "videos_v1")
    row = await _load_video(services, video_id)
    out = video_out(row, await url_maker(state, request))
    return VideoUploadOut(**msgspec.structs.asdict(out), message="Video uploaded successfully")


def _remove_files(services: Services, video_id: UUID, filename: str) -> None:
    """The upload and its rendition (if one was made)."""
    for name in (filename, rendition_filename(video_id)):
        with contextlib.suppress(FileNotFoundError):
            (services.config.uploads_dir / name).unlink()


async def _videos_of(
    state: State, request: Request[Any, Any, Any], project_id: UUID
) -> list[VideoOut]:
    services = services_of(state)
    if project_id != CENTRAL_STORE_ID:
        await load_project(state, project_id)
    async with services.read_pool.connection() as conn:
        rows = await read.videos_of_project(conn, project_id)
    url_of = await url_maker(state, request)
    return [video_out(r, url_of) for r in rows]


class VideosController(Controller):
    tags = ["videos"]

    @get(
        "/api/projects/{project_id:uuid}/videos",
        operation_id="listProjectVideos",
        summary="Videos of a project (V1)",
    )
    async def list_project_videos(
        self, state: State, request: Request[Any, Any, Any], project_id: FromPath[UUID]
    ) -> list[VideoOut]:
        return await _videos_of(state, request, project_id)

    @get(
        "/api/projects/{project_id:uuid}/videos/linked",
        operation_id="listLinkedVideos",
        summary="Videos linked to a project (L3): the same list as V1",
    )
    async def list_linked_videos(
        self, state: State, request: Request[Any, Any, Any], project_id: FromPath[UUID]
    ) -> list[VideoOut]:
        return await _videos_of(state, request, project_id)

    @post(
        "/api/projects/{project_id:uuid}/videos",
        operation_id="uploadProjectVideo",
        summary="Upload a video into a project (V2): multipart field 'file'",
        status_code=200,
        request_max_body_size=None,
    )
    async def upload_to_project(
        self, state: State, request: Request[Any, Any, Any], project_id: FromPath[UUID]
    ) -> VideoUploadOut:
        return await _upload(state, request, project_id)

    @post(
        "/api/videos",
        operation_id="uploadVideo",
        summary="Upload a video into the Central Video Store (V3): multipart field 'file'",
        status_code=200,
        request_max_body_size=None,
    )
    async def upload_to_central_store(
        self, state: State, request: Request[Any, Any, Any]
    ) -> VideoUploadOut:
        return await _upload(state, request, CENTRAL_STORE_ID)

    @get(
        "/api/videos",
        operation_id="listVideos",
        summary="All videos (V4)",
        description="`unassigned=true`: only the Central Video Store's videos; `false` or absent:"
        " every video (the original's meaning, which the Ground Truth page relies on).",
    )
    async def list_videos(
        self,
        state: State,
        request: Request[Any, Any, Any],
        unassigned: FromQuery[bool] = False,
        skip: SkipQuery = 0,
        limit: LimitQuery = 100,
    ) -> VideoPage:
        services = services_of(state)
        async with services.read_pool.connection() as conn:
            rows, total = await read.list_videos(conn, unassigned, skip, limit)
        url_of = await url_maker(state, request)
        return VideoPage(videos=[video_out(r, url_of) for r in rows], total=total)

    @get("/api/videos/{video_id:uuid}", operation_id="getVideo", summary="One video (V5)")
    async def get_video(
        self, state: State, request: Request[Any, Any, Any], video_id: FromPath[UUID]
    ) -> VideoOut:
        row = await _load_video(services_of(state), video_id)
        return video_out(row, await url_maker(state, request))

    @delete(
        "/api/videos/{video_id:uuid}",
        operation_id="deleteVideo",
        summary="Delete a video and its file (V6)",
        status_code=200,
    )
    async def delete_video(
        self, state: State, request: Request[Any, Any, Any], video_id: FromPath[UUID]
    ) -> Message:
        services = services_of(state)
        row = await _load_video(services, video_id)
        position = await execute(services, request, delete_video_handler, DeleteVideo(id=video_id))
        _remove_files(services, row.id, row.filename)
        await caught_up(services, position, "videos_v1")
        return Message(message="Video deleted successfully")

    @get(
        "/api/ground-truth/videos/available",
        operation_id="listAvailableVideos",
        summary="Videos in the Central Video Store, snake_case as the original served them (L1)",
    )
    async def available_videos(self, state: State) -> list[AvailableVideo]:
        services = services_of(state)
        async with services.read_pool.connection() as conn:
            rows = await read.videos_of_project(conn, CENTRAL_STORE_ID)
        return [
            AvailableVideo(
                id=r.id,
                filename=r.original_name,
                stored_name=r.filename,
                original_name=r.original_name,
                file_path=f"uploads/{r.filename}",
                file_size=r.size,
                duration=r.duration,
                fps=r.fps,
                resolution=_resolution(r),
                status=r.status,
                processing_status=r.processing_status,
                ground_truth_generated=r.ground_truth_generated,
                project_id=r.project_id,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ]

    @post(
        "/api/projects/{project_id:uuid}/videos/link",
        operation_id="linkVideos",
        summary="Move videos from the Central Video Store into a project (L2)",
        status_code=200,
        dto=InputDTO[LinkIn],
        return_dto=None,
    )
    async def link_videos(
        self,
        state: State,
        request: Request[Any, Any, Any],
        project_id: FromPath[UUID],
        data: JSONBody[LinkIn],
    ) -> LinkOut:
        services = services_of(state)
        cmd = LinkVideos(project_id=project_id, video_ids=tuple(data.video_ids))
        result = await execute(services, request, link_videos_handler, cmd)
        await caught_up(services, result.position, "videos_v1")
        return LinkOut(
            message=f"Successfully linked {result.linked} videos to project",
            linked_count=result.linked,
            linkedCount=result.linked,
        )

    @delete(
        "/api/projects/{project_id:uuid}/videos/{video_id:uuid}/unlink",
        operation_id="unlinkVideo",
        summary="Return a video to the Central Video Store (L4)",
        status_code=200,
    )
    async def unlink_video(
        self,
        state: State,
        request: Request[Any, Any, Any],
        project_id: FromPath[UUID],
        video_id: FromPath[UUID],
    ) -> Message:
        services = services_of(state)
        cmd = UnlinkVideo(project_id=project_id, video_id=video_id)
        position = await execute(services, request, unlink_video_handler, cmd)
        await caught_up(services, position, "videos_v1")
        return Message(message="Video unlinked successfully")
