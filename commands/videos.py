"""Write side of videos: uploads, metadata, linking, deletion."""

from __future__ import annotations

from uuid import UUID, uuid4

import msgspec

from commands.application import Position, Verity
from domain.errors import InvalidValue
from domain.projects import Project
from domain.videos import Video, VideoMetadata


class RegisterUpload(msgspec.Struct, frozen=True, kw_only=True):
    """Record a file already written to the upload folder, with what OpenCV read from it."""

    project_id: UUID
    filename: str
    original_name: str
    size: int
    sha256: str
    metadata: VideoMetadata | None
    id: UUID = msgspec.field(default_factory=uuid4)


class LinkVideos(msgspec.Struct, frozen=True, kw_only=True):
    project_id: UUID
    video_ids: tuple[UUID, ...]


class UnlinkVideo(msgspec.Struct, frozen=True, kw_only=True):
    project_id: UUID
    video_id: UUID


class DeleteVideo(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID


class LinkResult(msgspec.Struct, frozen=True, kw_only=True):
    linked: int
    position: Position | None


def register_upload(cmd: RegisterUpload, app: Verity) -> Position | None:
    app.load(Project, cmd.project_id).ensure_exists()
    video = Video._create(
        Video.Uploaded,
        id=cmd.id,
        project_id=cmd.project_id,
        filename=cmd.filename,
        original_name=cmd.original_name,
        size_bytes=cmd.size,
        sha256=cmd.sha256,
    )
    if cmd.metadata is not None:
        video.record_metadata(cmd.metadata)
    return app.commit(video)


def link_videos(cmd: LinkVideos, app: Verity) -> LinkResult:
    """Move videos from the central store into a project, all or none."""
    if not cmd.video_ids:
        raise InvalidValue("video_ids", "video_ids must name at least one video")
    app.load(Project, cmd.project_id).ensure_exists()
    videos = [app.load(Video, vid) for vid in dict.fromkeys(cmd.video_ids)]
    moved = [v for v in videos if v.link_to(cmd.project_id)]
    position = app.commit(*moved) if moved else None
    return LinkResult(linked=len(moved), position=position)


def unlink_video(cmd: UnlinkVideo, app: Verity) -> Position | None:
    app.load(Project, cmd.project_id)
    video = app.load(Video, cmd.video_id)
    video.unlink_from(cmd.project_id)
    return app.commit(video)


def delete_video(cmd: DeleteVideo, app: Verity) -> Position | None:
    video = app.load(Video, cmd.id)
    video.delete()
    return app.commit(video)
