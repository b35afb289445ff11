"""Write side of projects."""

from __future__ import annotations

from uuid import UUID, uuid4

import msgspec

from commands.application import Position, Verity
from domain.errors import check_text
from domain.projects import (
    CENTRAL_STORE_ID,
    CameraView,
    Project,
    ProjectChanges,
    ProjectStatus,
    SignalType,
    central_store,
)
from domain.videos import Video


class CreateProject(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    camera_model: str
    camera_view: CameraView
    signal_type: SignalType
    description: str | None = None
    lens_type: str | None = None
    resolution: str | None = None
    frame_rate: int | None = None
    status: ProjectStatus = ProjectStatus.ACTIVE
    id: UUID = msgspec.field(default_factory=uuid4)


class UpdateProject(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    changes: ProjectChanges


class DeleteProject(msgspec.Struct, frozen=True, kw_only=True):
    """Delete a project and, in the same transaction, the videos it owns; refused while
    `test_session_ids` (its sessions and those run on its videos) is not empty."""

    id: UUID
    video_ids: tuple[UUID, ...] = ()
    test_session_ids: tuple[UUID, ...] = ()


def create_project(cmd: CreateProject, app: Verity) -> Position | None:
    for field in ("name", "camera_model", "description", "lens_type", "resolution"):
        check_text(field, getattr(cmd, field))
    project = Project._create(
        Project.Created,
        id=cmd.id,
        name=cmd.name,
        camera_model=cmd.camera_model,
        camera_view=cmd.camera_view,
        signal_type=cmd.signal_type,
        description=cmd.description,
        lens_type=cmd.lens_type,
        resolution=cmd.resolution,
        frame_rate=cmd.frame_rate,
        status=cmd.status,
    )
    return app.commit(project)


def update_project(cmd: UpdateProject, app: Verity) -> Position | None:
    for field, value in cmd.changes.as_dict().items():
        check_text(field, value)
    project = app.load(Project, cmd.id)
    project.update(cmd.changes)
    return app.commit(project)


def delete_project(cmd: DeleteProject, app: Verity) -> Position | None:
    project = app.load(Project, cmd.id)
    project.delete(cmd.test_session_ids)
    videos = [app.load(Video, vid) for vid in cmd.video_ids]
    for video in videos:
        if not video.deleted and video.project_id == cmd.id:
            video.delete(reason=f"project {cmd.id} deleted")
    return app.commit(project, *videos)


def ensure_central_store(app: Verity) -> Position | None:
    """Create the Central Video Store once; later calls change nothing."""
    if app.exists(CENTRAL_STORE_ID):
        return None
    return app.commit(central_store())
