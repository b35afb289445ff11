"""Read model of videos: one row per live video, with the project that owns it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from domain.annotations import Source
from domain.projects import CENTRAL_STORE_ID
from domain.video_quality import QualityAssessment
from domain.videos import Processing, Video
from projections.rows import OneRowPerAggregate, Row

_quality_encoder = msgspec.json.Encoder()
_quality_decoder = msgspec.json.Decoder(QualityAssessment)


def _processing(state: Processing) -> Row:
    return {"status": state.video_status, "processing_status": state.value}


_RENDITION = (
    "rendition_status",
    "rendition_filename",
    "rendition_codec",
    "rendition_size",
    "rendition_duration",
    "rendition_error",
)


class VideosProjection(OneRowPerAggregate):
    name: str = "videos_v1"
    event_classes: tuple[type[Any], ...] = (
        Video.Uploaded,
        Video.MetadataExtracted,
        Video.Linked,
        Video.Unlinked,
        Video.Deleted,
        Video.ProcessingStarted,
        Video.QualityAssessed,
        Video.ProcessingFailed,
        Video.RenditionRecorded,
        Video.RenditionFailed,
    )
    tables: tuple[str, ...] = ("rm_videos",)
    table: str = "rm_videos"
    columns: tuple[str, ...] = (
        "id",
        "project_id",
        "filename",
        "original_name",
        "size",
        "sha256",
        "fps",
        "frame_count",
        "duration",
        "width",
        "height",
        "codec",
        "status",
        "processing_status",
        "processing_error",
        "quality_score",
        "quality",
        *_RENDITION,
        "created_at",
        "updated_at",
        "version",
    )

    def fold(self, row: Row | None, event: Any) -> Row | None:
        if isinstance(event, Video.Uploaded):
            return {
                "id": event.originator_id,
                "project_id": event.project_id,
                "filename": event.filename,
                "original_name": event.original_name,
                "size": event.size_bytes,
                "sha256": event.sha256,
                **dict.fromkeys(("fps", "frame_count", "duration", "width", "height", "codec")),
                **_processing(Processing.PENDING),
                "processing_error": None,
                "quality_score": None,
                "quality": None,
                **dict.fromkeys(_RENDITION),
                "created_at": event.timestamp,
                "updated_at": None,
                "version": event.originator_version,
            }
        if row is None or isinstance(event, Video.Deleted):
            return None
        if isinstance(event, Video.MetadataExtracted):
            m = event.metadata
            row.update(
                fps=m.fps,
                frame_count=m.frame_count,
                duration=m.duration,
                width=m.width,
                height=m.height,
                codec=m.codec,
            )
        elif isinstance(event, Video.Linked):
            row["project_id"] = event.project_id
        elif isinstance(event, Video.Unlinked):
            row["project_id"] = CENTRAL_STORE_ID
        elif isinstance(event, Video.ProcessingStarted):
            row.update(_processing(Processing.PROCESSING), processing_error=None)
        elif isinstance(event, Video.QualityAssessed):
            row.update(
                _processing(Processing.COMPLETED),
                quality_score=event.assessment.score,
                quality=_quality_encoder.encode(event.assessment).decode(),
            )
        elif isinstance(event, Video.ProcessingFailed):
            row.update(_processing(Processing.FAILED), processing_error=event.reason)
        elif isinstance(event, Video.RenditionRecorded):
            row.update(
                rendition_status="ready",
                rendition_filename=event.filename,
                rendition_codec=event.codec,
                rendition_size=event.size,
                rendition_duration=event.duration,
            )
        elif isinstance(event, Video.RenditionFailed):
            row.update(rendition_status="failed", rendition_error=event.reason)
        row["updated_at"] = event.timestamp
        row["version"] = event.originator_version
        return row


class VideoRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    project_id: UUID
    filename: str
    original_name: str
    size: int
    sha256: str
    fps: float | None
    frame_count: int | None
    duration: float | None
    width: int | None
    height: int | None
    status: str
    processing_status: str
    created_at: datetime
    updated_at: datetime | None
    version: int
    processing_error: str | None = None
    """Why processing failed (status `failed`)."""
    quality_score: float | None = None
    detection_count: int = 0
    """Detections of every test session run on the video (read from `rm_test_sessions`)."""
    ground_truth_generated: bool = False
    """A detector's candidates exist for it (read from `rm_annotations`)."""
    has_annotations: bool = False
    """It has live annotations of any source (read from `rm_annotations`)."""
    rendition_status: str | None = None
    """`ready` or `failed` once the video worker settled a rendition; None when none was made
    (the upload plays as it is, or is still being processed)."""
    rendition_filename: str | None = None
    rendition_codec: str | None = None
    rendition_size: int | None = None
    rendition_error: str | None = None

    @property
    def ground_truth_status(self) -> str:
        return "completed" if self.has_annotations else "pending"


_LIVE_ANNOTATIONS = "FROM rm_annotations a WHERE a.video_id = rm_videos.id AND NOT a.deleted"
_COLUMNS = (
    "id, project_id, filename, original_name, size, sha256, fps, frame_count, duration,"
    " width, height, status, processing_status, created_at, updated_at, version,"
    " processing_error, quality_score, rendition_status, rendition_filename, rendition_codec,"
    " rendition_size, rendition_error, (SELECT coalesce(sum(s.detection_count), 0)::bigint"
    " FROM rm_test_sessions s WHERE s.video_id = rm_videos.id) AS detection_count,"
    f" EXISTS (SELECT 1 {_LIVE_ANNOTATIONS} AND a.source = '{Source.DETECTOR.value}')"
    " AS ground_truth_generated,"
    f" EXISTS (SELECT 1 {_LIVE_ANNOTATIONS}) AS has_annotations"
)


async def videos_of_project(conn: AsyncConnection[Any], project_id: UUID) -> list[VideoRow]:
    async with conn.cursor(row_factory=class_row(VideoRow)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM rm_videos WHERE project_id = %s ORDER BY created_at, id",
            (project_id,),
            prepare=True,
        )
        return await cur.fetchall()


class VideoGroundTruth(msgspec.Struct, frozen=True):
    id: UUID
    has_ground_truth: bool
    """Live annotations (a detector's candidates included)."""


async def ground_truth_of_project(
    conn: AsyncConnection[Any], project_id: UUID
) -> list[VideoGroundTruth]:
    """A project's videos in `videos_of_project` order, each with whether it has ground truth."""
    cur = await conn.execute(
        "SELECT v.id, EXISTS (SELECT 1 FROM rm_annotations a"
        " WHERE a.video_id = v.id AND NOT a.deleted) FROM rm_videos v"
        " WHERE v.project_id = %s ORDER BY v.created_at, v.id",
        (project_id,),
    )
    return [VideoGroundTruth(row[0], row[1]) for row in await cur.fetchall()]


async def list_videos(
    conn: AsyncConnection[Any], central_only: bool, skip: int, limit: int
) -> tuple[list[VideoRow], int]:
    """All videos, or only those in the central store; and a total."""
    where = "WHERE project_id = %(central)s" if central_only else ""
    params = {"central": CENTRAL_STORE_ID, "skip": skip, "limit": limit}
    async with conn.cursor(row_factory=class_row(VideoRow)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM rm_videos {where} ORDER BY created_at, id"
            " OFFSET %(skip)s LIMIT %(limit)s",
            params,
        )
        rows = await cur.fetchall()
    total_row = await (
        await conn.execute(f"SELECT count(*) FROM rm_videos {where}", params)
    ).fetchone()
    return rows, int(total_row[0]) if total_row else 0


async def get_video(conn: AsyncConnection[Any], video_id: UUID) -> VideoRow | None:
    async with conn.cursor(row_factory=class_row(VideoRow)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM rm_videos WHERE id = %s", (video_id,), prepare=True
        )
        return await cur.fetchone()


async def video_files_of_project(
    conn: AsyncConnection[Any], project_id: UUID
) -> list[tuple[UUID, str]]:
    """(video id, stored file name) of every video a project owns."""
    cur = await conn.execute(
        "SELECT id, filename FROM rm_videos WHERE project_id = %s", (project_id,)
    )
    return [(row[0], row[1]) for row in await cur.fetchall()]


class VideoQuality(msgspec.Struct, frozen=True, kw_only=True):
    """A video's processing state and, once assessed, its quality (contract L6)."""

    id: UUID
    status: str
    processing_status: str
    processing_error: str | None
    width: int | None
    height: int | None
    fps: float | None
    assessment: QualityAssessment | None


async def video_quality(conn: AsyncConnection[Any], video_id: UUID) -> VideoQuality | None:
    cur = await conn.execute(
        "SELECT status, processing_status, processing_error, width, height, fps, quality"
        " FROM rm_videos WHERE id = %s",
        (video_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    status, processing, error, width, height, fps, quality = row
    return VideoQuality(
        id=video_id,
        status=status,
        processing_status=processing,
        processing_error=error,
        width=width,
        height=height,
        fps=fps,
        assessment=None if quality is None else _quality_decoder.decode(quality),
    )
