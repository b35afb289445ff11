"""Read model of videos: one row per live video, with the project that owns it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from domain.projects import CENTRAL_STORE_ID
from domain.videos import Video
from projections.base import Statement

_INSERT = (
    "INSERT INTO rm_videos (id, project_id, filename, original_name, size, sha256,"
    " created_at, version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
_METADATA = (
    "UPDATE rm_videos SET fps = %s, frame_count = %s, duration = %s, width = %s, height = %s,"
    " codec = %s, updated_at = %s, version = %s WHERE id = %s"
)
_MOVE = "UPDATE rm_videos SET project_id = %s, updated_at = %s, version = %s WHERE id = %s"
_DELETE = "DELETE FROM rm_videos WHERE id = %s"


class VideosProjection:
    name: str = "videos_v1"
    event_classes: tuple[type[Any], ...] = (
        Video.Uploaded,
        Video.MetadataExtracted,
        Video.Linked,
        Video.Unlinked,
        Video.Deleted,
    )
    tables: tuple[str, ...] = ("rm_videos",)

    def handle(self, event: Any) -> Iterable[Statement]:
        at, version, vid = event.timestamp, event.originator_version, event.originator_id
        if isinstance(event, Video.Uploaded):
            yield (
                _INSERT,
                (
                    vid,
                    event.project_id,
                    event.filename,
                    event.original_name,
                    event.size,
                    event.sha256,
                    at,
                    version,
                ),
            )
        elif isinstance(event, Video.MetadataExtracted):
            m = event.metadata
            yield (
                _METADATA,
                (
                    m.fps,
                    m.frame_count,
                    m.duration,
                    m.width,
                    m.height,
                    m.codec,
                    at,
                    version,
                    vid,
                ),
            )
        elif isinstance(event, Video.Linked):
            yield _MOVE, (event.project_id, at, version, vid)
        elif isinstance(event, Video.Unlinked):
            yield _MOVE, (CENTRAL_STORE_ID, at, version, vid)
        elif isinstance(event, Video.Deleted):
            yield _DELETE, (vid,)


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
    ground_truth_generated: bool
    created_at: datetime
    updated_at: datetime | None
    version: int


_COLUMNS = (
    "id, project_id, filename, original_name, size, sha256, fps, frame_count, duration,"
    " width, height, status, processing_status, ground_truth_generated, created_at,"
    " updated_at, version"
)


async def videos_of_project(conn: AsyncConnection[Any], project_id: UUID) -> list[VideoRow]:
    async with conn.cursor(row_factory=class_row(VideoRow)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM rm_videos WHERE project_id = %s ORDER BY created_at, id",
            (project_id,),
            prepare=True,
        )
        return await cur.fetchall()


async def list_videos(
    conn: AsyncConnection[Any], unassigned: bool | None, skip: int, limit: int
) -> tuple[list[VideoRow], int]:
    """All videos, or only those in (unassigned=True) / out of the central store; and a total."""
    where = ""
    if unassigned is True:
        where = "WHERE project_id = %(central)s"
    elif unassigned is False:
        where = "WHERE project_id <> %(central)s"
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
