"""Read models of test sessions (one row each, with counts) and of their detections.

Sessions fold set-wise (see projections/rows.py): a batch of 1000 frame events of one session
loads, updates and writes back that one row. Detections are append-only: each frame event
becomes one INSERT ... SELECT FROM unnest(...) carrying all its objects, and the runner sends
the batch's statements in one pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from domain.detections import DeviceFrame, detection_id
from domain.test_sessions import SessionStatus, TestSession
from projections.base import Statement
from projections.rows import Row

_STATUS_OF: dict[type[Any], SessionStatus] = {
    TestSession.Started: SessionStatus.RUNNING,
    TestSession.Stopped: SessionStatus.STOPPED,
    TestSession.Completed: SessionStatus.COMPLETED,
    TestSession.Failed: SessionStatus.FAILED,
}


def _counts(row: Row) -> dict[str, int]:
    value = row["class_counts"]
    counts: dict[str, int] = value.obj if isinstance(value, Jsonb) else dict(value)
    return counts


class TestSessionsProjection:
    __test__ = False

    name: str = "test_sessions_v1"
    event_classes: tuple[type[Any], ...] = (
        TestSession.Created,
        TestSession.Started,
        TestSession.Stopped,
        TestSession.Completed,
        TestSession.Failed,
        DeviceFrame.Recorded,
    )
    tables: tuple[str, ...] = ("rm_test_sessions",)
    table: str = "rm_test_sessions"
    columns: tuple[str, ...] = (
        "id",
        "name",
        "project_id",
        "video_id",
        "status",
        "tolerance_ms",
        "iou_threshold",
        "device_id",
        "description",
        "error",
        "started_at",
        "completed_at",
        "created_at",
        "updated_at",
        "version",
        "frame_count",
        "detection_count",
        "class_counts",
        "first_detection_at",
        "last_detection_at",
        "last_frame_timestamp",
    )

    def key(self, event: Any) -> UUID:
        ident: UUID = (
            event.session_id if isinstance(event, DeviceFrame.Recorded) else event.originator_id
        )
        return ident

    def fold(self, row: Row | None, event: Any) -> Row | None:
        if isinstance(event, TestSession.Created):
            return {
                "id": event.originator_id,
                "name": event.name,
                "project_id": event.project_id,
                "video_id": event.video_id,
                "status": SessionStatus.CREATED.value,
                "tolerance_ms": event.tolerance_ms,
                "iou_threshold": event.iou_threshold,
                "device_id": event.device_id,
                "description": event.description,
                "error": None,
                "started_at": None,
                "completed_at": None,
                "created_at": event.timestamp,
                "updated_at": None,
                "version": event.originator_version,
                "frame_count": 0,
                "detection_count": 0,
                "class_counts": Jsonb({}),
                "first_detection_at": None,
                "last_detection_at": None,
                "last_frame_timestamp": None,
            }
        if row is None:
            return None
        if isinstance(event, DeviceFrame.Recorded):
            return _add_frame(row, event)
        status = _STATUS_OF[type(event)]
        row["status"] = status.value
        row["updated_at"] = event.timestamp
        row["version"] = event.originator_version
        if status is SessionStatus.RUNNING and row["started_at"] is None:
            row["started_at"] = event.timestamp
        elif status is SessionStatus.COMPLETED:
            row["completed_at"] = event.timestamp
        elif status is SessionStatus.FAILED:
            row["error"] = event.error or None
        return row


def _add_frame(row: Row, frame: Any) -> Row:
    counts = _counts(row)
    for d in frame.detections:
        counts[d.class_label] = counts.get(d.class_label, 0) + 1
    row["class_counts"] = Jsonb(counts)
    row["frame_count"] += 1
    row["detection_count"] += len(frame.detections)
    at: datetime = frame.received_at
    if row["first_detection_at"] is None or at < row["first_detection_at"]:
        row["first_detection_at"] = at
    if row["last_detection_at"] is None or at > row["last_detection_at"]:
        row["last_detection_at"] = at
    last = row["last_frame_timestamp"]
    row["last_frame_timestamp"] = frame.video_time if last is None else max(last, frame.video_time)
    return row


_INSERT_DETECTIONS = (
    "INSERT INTO rm_detections (session_id, timestamp, frame_id, idx, id, device_id, seq,"
    " frame_number, captured_at, received_at, class_label, confidence, box_x, box_y,"
    " box_width, box_height, track_id, model_version)"
    " SELECT %(session)s, %(timestamp)s, %(frame)s, d.idx, d.id, %(device)s, %(seq)s,"
    " %(frame_number)s, %(captured_at)s, %(received_at)s, d.class_label, d.confidence,"
    " d.x, d.y, d.w, d.h, d.track_id, %(model_version)s"
    " FROM unnest(%(idx)s::int[], %(ids)s::uuid[], %(labels)s::text[],"
    " %(confidence)s::float8[], %(x)s::float8[], %(y)s::float8[], %(w)s::float8[],"
    " %(h)s::float8[], %(tracks)s::text[])"
    " AS d(idx, id, class_label, confidence, x, y, w, h, track_id)"
)


class DetectionsProjection:
    name: str = "detections_v1"
    event_classes: tuple[type[Any], ...] = (DeviceFrame.Recorded,)
    tables: tuple[str, ...] = ("rm_detections",)

    def handle(self, event: Any) -> Iterable[Statement]:
        objects = event.detections
        if not objects:
            return
        frame: UUID = event.originator_id
        boxes = [d.box for d in objects]
        yield (
            _INSERT_DETECTIONS,
            {
                "session": event.session_id,
                "timestamp": event.video_time,
                "frame": frame,
                "device": event.device_id,
                "seq": event.seq,
                "frame_number": event.frame_number,
                "captured_at": event.captured_at,
                "received_at": event.received_at,
                "model_version": event.model_version,
                "idx": list(range(len(objects))),
                "ids": [detection_id(frame, i) for i in range(len(objects))],
                "labels": [d.class_label for d in objects],
                "confidence": [d.confidence for d in objects],
                "x": [b and b.x for b in boxes],
                "y": [b and b.y for b in boxes],
                "w": [b and b.width for b in boxes],
                "h": [b and b.height for b in boxes],
                "tracks": [d.track_id for d in objects],
            },
        )


# --- queries -------------------------------------------------------------------------------


class TestSessionRow(msgspec.Struct, frozen=True, kw_only=True):
    __test__ = False

    id: UUID
    name: str
    project_id: UUID
    video_id: UUID
    status: str
    tolerance_ms: int
    iou_threshold: float
    device_id: str | None
    description: str | None
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime | None
    version: int
    frame_count: int
    detection_count: int
    class_counts: dict[str, int]
    first_detection_at: datetime | None
    last_detection_at: datetime | None
    last_frame_timestamp: float | None


class DetectionRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    session_id: UUID
    frame_id: UUID
    device_id: str
    seq: int
    frame_number: int | None
    timestamp: float
    captured_at: datetime | None
    received_at: datetime
    class_label: str
    confidence: float | None
    box: tuple[float, float, float, float] | None
    """(x, y, width, height) in pixels, top-left origin."""
    track_id: str | None
    model_version: str | None


_SESSION_COLUMNS = ", ".join(TestSessionsProjection.columns)
_DETECTION_COLUMNS = (
    "id, session_id, frame_id, device_id, seq, frame_number, timestamp, captured_at,"
    " received_at, class_label, confidence,"
    " CASE WHEN box_x IS NULL THEN NULL"
    " ELSE ARRAY[box_x, box_y, box_width, box_height] END AS box, track_id, model_version"
)


def _detection_row(cursor: Any) -> Any:
    make = class_row(DetectionRow)(cursor)

    def row(values: Any) -> DetectionRow:
        det: DetectionRow = make(values)
        if det.box is not None:
            det = msgspec.structs.replace(det, box=tuple(det.box))
        return det

    return row


async def get_test_session(
    pool: AsyncConnectionPool[Any], session_id: UUID
) -> TestSessionRow | None:
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(TestSessionRow)) as cur:
        await cur.execute(
            f"SELECT {_SESSION_COLUMNS} FROM rm_test_sessions WHERE id = %s",
            (session_id,),
            prepare=True,
        )
        row: TestSessionRow | None = await cur.fetchone()
        return row


async def list_test_sessions(
    pool: AsyncConnectionPool[Any], project_id: UUID | None, skip: int = 0, limit: int = 100
) -> list[TestSessionRow]:
    where = "" if project_id is None else "WHERE project_id = %(project)s"
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(TestSessionRow)) as cur:
        await cur.execute(
            f"SELECT {_SESSION_COLUMNS} FROM rm_test_sessions {where}"
            " ORDER BY created_at, id OFFSET %(skip)s LIMIT %(limit)s",
            {"project": project_id, "skip": skip, "limit": limit},
        )
        rows: list[TestSessionRow] = await cur.fetchall()
        return rows


async def sessions_of_video(pool: AsyncConnectionPool[Any], video_id: UUID) -> list[TestSessionRow]:
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(TestSessionRow)) as cur:
        await cur.execute(
            f"SELECT {_SESSION_COLUMNS} FROM rm_test_sessions WHERE video_id = %s"
            " ORDER BY created_at, id",
            (video_id,),
        )
        rows: list[TestSessionRow] = await cur.fetchall()
        return rows


async def session_detections(
    pool: AsyncConnectionPool[Any],
    session_id: UUID,
    skip: int = 0,
    limit: int | None = None,
) -> list[DetectionRow]:
    """A session's detections in video order (timestamp, then frame and position in it)."""
    async with pool.connection() as conn, conn.cursor(row_factory=_detection_row) as cur:
        await cur.execute(
            f"SELECT {_DETECTION_COLUMNS} FROM rm_detections WHERE session_id = %s"
            " ORDER BY timestamp, frame_id, idx OFFSET %s LIMIT %s",
            (session_id, skip, limit),
        )
        rows: list[DetectionRow] = await cur.fetchall()
        return rows


async def video_detections(
    pool: AsyncConnectionPool[Any], video_id: UUID, skip: int = 0, limit: int | None = None
) -> list[DetectionRow]:
    """Detections of every test session run on a video, in video order."""
    async with pool.connection() as conn, conn.cursor(row_factory=_detection_row) as cur:
        await cur.execute(
            f"SELECT {_DETECTION_COLUMNS} FROM rm_detections WHERE session_id IN"
            " (SELECT id FROM rm_test_sessions WHERE video_id = %s)"
            " ORDER BY timestamp, session_id, frame_id, idx OFFSET %s LIMIT %s",
            (video_id, skip, limit),
        )
        rows: list[DetectionRow] = await cur.fetchall()
        return rows
