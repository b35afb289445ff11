"""Read models of test sessions (one row each, with counts) and of their detections.

Sessions fold set-wise (see projections/rows.py): a batch of 1000 frame events of one session
loads, updates and writes back that one row. Detections are append-only: a batch of frame
events goes into rm_detections with one binary COPY.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import Connection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from domain.detections import FRAME_EVENTS, RecordedFrame, detection_id, frames_of
from domain.test_sessions import STATUS_AFTER, SessionStatus, TestSession
from projections.rows import Row


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
        TestSession.Paused,
        TestSession.Resumed,
        TestSession.Stopped,
        TestSession.Completed,
        TestSession.Failed,
        TestSession.Deleted,
        TestSession.AllowedDevicesChanged,
        *FRAME_EVENTS,
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
        "allowed_device_ids",
    )

    def key(self, event: Any) -> UUID:
        ident: UUID = event.session_id if isinstance(event, FRAME_EVENTS) else event.originator_id
        return ident

    def fold(self, row: Row | None, event: Any) -> Row | None:
        if isinstance(event, TestSession.Created):
            return {
                "id": event.originator_id,
                "name": event.name,
                "project_id": event.project_id,
                "video_id": event.video_id,
                "status": STATUS_AFTER["Created"].value,
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
                "allowed_device_ids": list(event.allowed_device_ids),
            }
        if row is None:
            return None
        row["class_counts"] = Jsonb(_counts(row))  # loaded as a dict; COPY needs the wrapper
        if isinstance(event, FRAME_EVENTS):
            return _add_frames(row, frames_of(event), event.received_at)
        row["updated_at"] = event.timestamp
        row["version"] = event.originator_version
        if isinstance(event, TestSession.AllowedDevicesChanged):
            row["allowed_device_ids"] = list(event.allowed_device_ids)
            return row
        status = STATUS_AFTER[type(event).__name__]
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


def _add_frames(row: Row, frames: Sequence[RecordedFrame], at: datetime) -> Row:
    if not frames:
        return row
    counts = _counts(row)
    detections = 0
    for f in frames:
        detections += len(f.detections)
        for d in f.detections:
            counts[d.class_label] = counts.get(d.class_label, 0) + 1
    row["frame_count"] += len(frames)
    row["detection_count"] += detections
    if row["first_detection_at"] is None or at < row["first_detection_at"]:
        row["first_detection_at"] = at
    if row["last_detection_at"] is None or at > row["last_detection_at"]:
        row["last_detection_at"] = at
    newest = max(f.video_time for f in frames)
    last = row["last_frame_timestamp"]
    row["last_frame_timestamp"] = newest if last is None else max(last, newest)
    return row


_DETECTION_TABLE_COLUMNS = (
    "session_id",
    "timestamp",
    "frame_id",
    "idx",
    "device_id",
    "seq",
    "frame_number",
    "captured_at",
    "received_at",
    "class_label",
    "confidence",
    "box_x",
    "box_y",
    "box_width",
    "box_height",
    "track_id",
    "model_version",
)
_COPY_DETECTIONS = (
    f"COPY rm_detections ({', '.join(_DETECTION_TABLE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
)
_DETECTION_TYPES = (
    "uuid",
    "float8",
    "uuid",
    "int4",
    "text",
    "int8",
    "int4",
    "timestamptz",
    "timestamptz",
    "text",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "text",
    "text",
)


_NO_BOX = (None, None, None, None)


class DetectionsProjection:
    """Insert-only: a whole batch of frames goes in with one binary COPY."""

    name: str = "detections_v1"
    event_classes: tuple[type[Any], ...] = FRAME_EVENTS
    tables: tuple[str, ...] = ("rm_detections",)
    appended: tuple[str, ...] = ("rm_detections",)
    """Rows only ever added: a rebuild builds the table's key after the fill."""

    def write_batch(self, conn: Connection[Any], events: Sequence[Any]) -> None:
        with conn.cursor().copy(_COPY_DETECTIONS) as copy:
            copy.set_types(_DETECTION_TYPES)
            for row in _detection_rows(events):
                copy.write_row(row)


def _detection_rows(events: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """One rm_detections row per detected object of every frame the events carry."""
    for e in events:
        sid, received = e.session_id, e.received_at
        for f in frames_of(e):
            head = (sid, f.video_time, f.id)
            tail = (f.device_id, f.seq, f.frame_number, f.captured_at, received)
            for i, d in enumerate(f.detections):
                b = d.box
                box = _NO_BOX if b is None else (b.x, b.y, b.width, b.height)
                yield (
                    *head,
                    i,
                    *tail,
                    d.class_label,
                    d.confidence,
                    *box,
                    d.track_id,
                    f.model_version,
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
    allowed_device_ids: list[str]


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
    "frame_id, idx, session_id, device_id, seq, frame_number, timestamp, captured_at,"
    " received_at, class_label, confidence,"
    " CASE WHEN box_x IS NULL THEN NULL"
    " ELSE ARRAY[box_x, box_y, box_width, box_height] END AS box, track_id, model_version"
)


def _detection_row(cursor: Any) -> Any:
    """A DetectionRow from the columns of `_DETECTION_COLUMNS`; its id is derived here."""
    names = [c.name for c in cursor.description or ()][2:]

    def row(values: Any) -> DetectionRow:
        frame, idx, *rest = values
        fields = dict(zip(names, rest, strict=True))
        if fields["box"] is not None:
            fields["box"] = tuple(fields["box"])
        return DetectionRow(id=detection_id(frame, idx), frame_id=frame, **fields)

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
    """Sessions in creation order, deleted ones left out (they stay readable by id)."""
    where = "WHERE status <> 'deleted'" + (
        "" if project_id is None else " AND project_id = %(project)s"
    )
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(TestSessionRow)) as cur:
        await cur.execute(
            f"SELECT {_SESSION_COLUMNS} FROM rm_test_sessions {where}"
            " ORDER BY created_at, id OFFSET %(skip)s LIMIT %(limit)s",
            {"project": project_id, "skip": skip, "limit": limit},
        )
        rows: list[TestSessionRow] = await cur.fetchall()
        return rows


async def session_ids_of_project(
    pool: AsyncConnectionPool[Any], project_id: UUID, video_ids: Sequence[UUID]
) -> list[UUID]:
    """Sessions of the project and sessions run on its videos (what deleting it would orphan)."""
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT id FROM rm_test_sessions WHERE project_id = %s OR video_id = ANY(%s)"
            " ORDER BY created_at, id",
            (project_id, list(video_ids)),
        )
        return [row[0] for row in await cur.fetchall()]


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


async def confidence_bands(
    pool: AsyncConnectionPool[Any], session_ids: list[UUID]
) -> dict[str, int]:
    """Detections with confidence >= 0.8 (high), >= 0.5 (medium), else or unknown (low)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE confidence >= 0.8),"
            " count(*) FILTER (WHERE confidence >= 0.5 AND confidence < 0.8),"
            " count(*) FILTER (WHERE confidence < 0.5 OR confidence IS NULL)"
            " FROM rm_detections WHERE session_id = ANY(%s)",
            (session_ids,),
        )
        row = await cur.fetchone()
    high, medium, low = row if row else (0, 0, 0)
    return {"high": int(high), "medium": int(medium), "low": int(low)}


class SessionCounts(msgspec.Struct, frozen=True, kw_only=True):
    """A session's counts and 0-100 progress (newest frame's time over the video's duration),
    for live `test_progress` messages."""

    status: str
    frame_count: int
    detection_count: int
    progress: float


async def session_progress(
    pool: AsyncConnectionPool[Any], session_ids: Sequence[UUID]
) -> dict[UUID, SessionCounts]:
    """Counts and progress per session."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT s.id, s.status, s.frame_count, s.detection_count, s.last_frame_timestamp,"
            " v.duration FROM rm_test_sessions s LEFT JOIN rm_videos v ON v.id = s.video_id"
            " WHERE s.id = ANY(%s)",
            (list(session_ids),),
        )
        rows = await cur.fetchall()
    out: dict[UUID, SessionCounts] = {}
    for sid, status, frames, detections, last, duration in rows:
        progress = 100.0 * last / duration if last is not None and duration else 0.0
        out[sid] = SessionCounts(
            status=status,
            frame_count=frames,
            detection_count=detections,
            progress=round(min(progress, 100.0), 1),
        )
    return out
