"""Annotation sessions: one annotator working through one video.

Only status and position are the session's own facts; its detection counts are derived from
the video's annotation events by the read side, never typed in by a client.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.domain import event

from domain.errors import InvalidValue, check_text
from domain.events import VerityAggregate


class SessionStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class SessionChanges(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: SessionStatus | msgspec.UnsetType = msgspec.UNSET
    current_frame: int | msgspec.UnsetType = msgspec.UNSET
    total_frames: int | msgspec.UnsetType | None = msgspec.UNSET

    def as_dict(self) -> dict[str, Any]:
        return {
            f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not msgspec.UNSET
        }


class AnnotationSession(VerityAggregate):
    class Created(VerityAggregate.Created):
        video_id: UUID
        project_id: UUID
        annotator_id: str | None = None
        total_frames: int | None = None

    class Updated(VerityAggregate.Event):
        video_id: UUID
        changes: SessionChanges

    @event(Created)
    def __init__(
        self,
        video_id: UUID,
        project_id: UUID,
        annotator_id: str | None = None,
        total_frames: int | None = None,
    ) -> None:
        self.video_id = video_id
        self.project_id = project_id
        self.annotator_id = annotator_id
        self.total_frames = total_frames
        self.status = SessionStatus.ACTIVE
        self.current_frame = 0

    @classmethod
    def start(
        cls,
        video_id: UUID,
        project_id: UUID,
        annotator_id: str | None,
        total_frames: int | None,
        ident: UUID | None = None,
    ) -> AnnotationSession:
        check_text("annotator_id", annotator_id)
        session: AnnotationSession = cls._create(
            cls.Created,
            id=ident,
            video_id=video_id,
            project_id=project_id,
            annotator_id=annotator_id,
            total_frames=total_frames,
        )
        return session

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        kwargs.setdefault("video_id", self.video_id)
        super().trigger_event(event_class, **kwargs)

    def update(self, requested: SessionChanges, video_frames: int | None = None) -> bool:
        """`video_frames`, the video's frame count when known, bounds both frame fields."""
        asked = requested.as_dict()
        frame = asked.get("current_frame")
        if frame is not None and frame < 0:
            raise InvalidValue("current_frame", f"current_frame: must be >= 0, got {frame}")
        total = asked.get("total_frames", self.total_frames)
        asked_total = asked.get("total_frames")
        if video_frames is not None and asked_total is not None and asked_total > video_frames:
            raise InvalidValue(
                "total_frames",
                f"total_frames: {asked_total} is beyond the video's {video_frames} frames",
            )
        bounds = [n for n in (total, video_frames) if n is not None]
        if frame is not None and bounds and frame > min(bounds):
            raise InvalidValue(
                "current_frame",
                f"current_frame: {frame} is beyond the video's {min(bounds)} frames",
            )
        changed = {k: v for k, v in asked.items() if getattr(self, k) != v}
        if not changed:
            return False
        self._updated(changes=SessionChanges(**changed))
        return True

    @event(Updated)
    def _updated(self, changes: SessionChanges) -> None:
        for field, value in changes.as_dict().items():
            setattr(self, field, value)
