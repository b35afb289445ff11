"""An evaluation's inputs, fetched from the read models up front (before the command runs).

The handler is synchronous and runs off the event loop; fetching here keeps it free of async
plumbing. Past annotation versions come from the event store, through the `history` callable
the caller passes in (reading history is the write side's business).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from domain.annotations import AnnotationState
from projections.annotations import current_annotations
from projections.test_sessions import (
    DetectionRow,
    TestSessionRow,
    get_test_session,
    session_detections,
)
from projections.videos import get_video

History = Callable[[UUID, int], Any]


@dataclass(frozen=True)
class LoadedSources:
    loaded_session: TestSessionRow | None
    current: Sequence[AnnotationState]
    loaded_detections: Sequence[DetectionRow]
    read_position: int
    fps: float | None
    history: History

    def session(self, session_id: UUID) -> TestSessionRow | None:
        s = self.loaded_session
        return s if s is not None and s.id == session_id else None

    def annotations(self, video_id: UUID) -> Sequence[AnnotationState]:
        return self.current

    def annotation_at(self, annotation_id: UUID, version: int) -> Any:
        return self.history(annotation_id, version)

    def detections(self, session_id: UUID) -> Sequence[DetectionRow]:
        return self.loaded_detections

    def position(self) -> int:
        return self.read_position

    def frame_rate(self, video_id: UUID) -> float | None:
        return self.fps


async def load_sources(
    pool: AsyncConnectionPool[Any],
    session_id: UUID,
    *,
    position: int,
    history: History,
    with_annotations: bool = True,
    with_detections: bool = True,
) -> LoadedSources:
    """`position`: where the read models stood before reading (the ground truth's pin)."""
    session = await get_test_session(pool, session_id)
    if session is None:
        return LoadedSources(None, (), (), position, None, history)
    annotations = await current_annotations(pool, session.video_id) if with_annotations else []
    detections = await session_detections(pool, session_id) if with_detections else []
    async with pool.connection() as conn:
        video = await get_video(conn, session.video_id)
    fps = video.fps if video is not None else None
    return LoadedSources(session, annotations, detections, position, fps, history)
