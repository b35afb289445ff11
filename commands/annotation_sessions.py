"""Write side of annotation sessions."""

from __future__ import annotations

from uuid import UUID, uuid4

import msgspec

from commands.application import Position, Verity
from domain.annotation_sessions import AnnotationSession, SessionChanges
from domain.projects import Project
from domain.videos import Video


class StartSession(msgspec.Struct, frozen=True, kw_only=True):
    video_id: UUID
    project_id: UUID | None = None
    annotator_id: str | None = None
    id: UUID = msgspec.field(default_factory=uuid4)


class UpdateSession(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    changes: SessionChanges


def start_session(cmd: StartSession, app: Verity) -> Position | None:
    """A session on a live video; the project defaults to the one owning the video."""
    video = app.load(Video, cmd.video_id)
    video.ensure_exists()
    project_id = cmd.project_id or video.project_id
    app.load(Project, project_id).ensure_exists()
    total_frames = video.metadata.frame_count if video.metadata is not None else None
    session = AnnotationSession.start(
        cmd.video_id, project_id, cmd.annotator_id, total_frames, ident=cmd.id
    )
    return app.commit(session)


def update_session(cmd: UpdateSession, app: Verity) -> Position | None:
    session = app.load(AnnotationSession, cmd.id, "Annotation session")
    metadata = app.load(Video, session.video_id).metadata
    session.update(cmd.changes, (metadata.frame_count or None) if metadata is not None else None)
    return app.commit(session)
