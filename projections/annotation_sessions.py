"""Read models of annotation sessions and annotation import jobs.

A session's detection counts are not stored here: they are read from the annotations read
model (itself a projection of the video's annotation events) whenever a session is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from domain.annotation_imports import AnnotationImport
from domain.annotation_sessions import AnnotationSession
from projections.base import Statement

_SESSION_INSERT = (
    "INSERT INTO rm_annotation_sessions (id, video_id, project_id, annotator_id, status,"
    " current_frame, total_frames, created_at, version) VALUES (%s, %s, %s, %s, 'active', 0,"
    " %s, %s, %s)"
)
_SESSION_FIELDS = ("status", "current_frame", "total_frames")
_SESSION_UPDATE = (
    "UPDATE rm_annotation_sessions SET "
    + ", ".join(f"{c} = CASE WHEN %(set_{c})s THEN %({c})s ELSE {c} END" for c in _SESSION_FIELDS)
    + ", updated_at = %(at)s, version = %(version)s WHERE id = %(id)s"
)


class AnnotationSessionsProjection:
    name: str = "annotation_sessions_v1"
    event_classes: tuple[type[Any], ...] = (AnnotationSession.Created, AnnotationSession.Updated)
    tables: tuple[str, ...] = ("rm_annotation_sessions",)

    def handle(self, event: Any) -> Iterable[Statement]:
        if isinstance(event, AnnotationSession.Created):
            yield (
                _SESSION_INSERT,
                (
                    event.originator_id,
                    event.video_id,
                    event.project_id,
                    event.annotator_id,
                    event.total_frames,
                    event.timestamp,
                    event.originator_version,
                ),
            )
            return
        changes = event.changes.as_dict()
        if "status" in changes:
            changes["status"] = changes["status"].value
        params: dict[str, Any] = {
            "id": event.originator_id,
            "at": event.timestamp,
            "version": event.originator_version,
        }
        for c in _SESSION_FIELDS:
            params[f"set_{c}"] = c in changes
            params[c] = changes.get(c)
        yield _SESSION_UPDATE, params


class SessionRow(msgspec.Struct, frozen=True, kw_only=True):
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


async def get_session(conn: AsyncConnection[Any], session_id: UUID) -> SessionRow | None:
    """The session with its counts derived from the video's live annotations."""
    async with conn.cursor(row_factory=class_row(SessionRow)) as cur:
        await cur.execute(
            "SELECT s.id, s.video_id, s.project_id, s.annotator_id, s.status,"
            " coalesce(c.total, 0) AS total_detections,"
            " coalesce(c.validated, 0) AS validated_detections,"
            " s.current_frame, s.total_frames, s.created_at, s.updated_at, s.version"
            " FROM rm_annotation_sessions s LEFT JOIN LATERAL ("
            "  SELECT count(*) AS total, count(*) FILTER (WHERE a.validated) AS validated"
            "  FROM rm_annotations a WHERE a.video_id = s.video_id AND NOT a.deleted) c ON true"
            " WHERE s.id = %s",
            (session_id,),
        )
        return await cur.fetchone()


_IMPORT_INSERT = (
    "INSERT INTO rm_annotation_imports (id, video_id, format, filename, status, total, imported,"
    " rejected, created_at, version) VALUES (%s, %s, %s, %s, 'running', %s, 0, %s, %s, %s)"
)
_IMPORT_UPDATE = (
    "UPDATE rm_annotation_imports SET status = coalesce(%(status)s, status),"
    " imported = %(imported)s, error = coalesce(%(error)s, error), updated_at = %(at)s,"
    " version = %(version)s WHERE id = %(id)s"
)


IMPORT_EVENTS: tuple[type[Any], ...] = (
    AnnotationImport.Started,
    AnnotationImport.Progressed,
    AnnotationImport.Completed,
    AnnotationImport.Failed,
)


def import_statements(event: Any) -> Iterable[Statement]:
    """Rows of rm_annotation_imports. Applied by the annotations projection itself, so a job
    reads `completed` only once its annotations are in rm_annotations too."""
    if isinstance(event, AnnotationImport.Started):
        yield (
            _IMPORT_INSERT,
            (
                event.originator_id,
                event.video_id,
                event.format,
                event.filename,
                event.total,
                event.rejected,
                event.timestamp,
                event.originator_version,
            ),
        )
        return
    status = None
    if isinstance(event, AnnotationImport.Completed):
        status = "completed"
    elif isinstance(event, AnnotationImport.Failed):
        status = "failed"
    yield (
        _IMPORT_UPDATE,
        {
            "id": event.originator_id,
            "status": status,
            "imported": event.imported,
            "error": getattr(event, "reason", None),
            "at": event.timestamp,
            "version": event.originator_version,
        },
    )


class ImportRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    video_id: UUID
    format: str
    filename: str
    status: str
    total: int
    imported: int
    rejected: int
    error: str | None
    created_at: datetime
    updated_at: datetime | None
    version: int


async def get_import(conn: AsyncConnection[Any], import_id: UUID) -> ImportRow | None:
    async with conn.cursor(row_factory=class_row(ImportRow)) as cur:
        await cur.execute(
            "SELECT id, video_id, format, filename, status, total, imported, rejected, error,"
            " created_at, updated_at, version FROM rm_annotation_imports WHERE id = %s",
            (import_id,),
        )
        return await cur.fetchone()
