"""Read model of detection runs: one row per run, with its progress, speed and outcome."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from domain.detection_runs import DetectionRun, RunStatus
from projections.rows import OneRowPerAggregate, Row

PROJECTION_NAME = "detection_runs_v1"

_FINISHED = {
    DetectionRun.Completed: RunStatus.COMPLETED,
    DetectionRun.Failed: RunStatus.FAILED,
    DetectionRun.Cancelled: RunStatus.CANCELLED,
}


def _planned(total: int, stride: int) -> int:
    return math.ceil(total / max(stride, 1)) if total > 0 else 0


class DetectionRunsProjection(OneRowPerAggregate):
    name: str = PROJECTION_NAME
    event_classes: tuple[type[Any], ...] = (
        DetectionRun.Requested,
        DetectionRun.Started,
        DetectionRun.Progressed,
        DetectionRun.Completed,
        DetectionRun.Failed,
        DetectionRun.Cancelled,
    )
    tables: tuple[str, ...] = ("rm_detection_runs",)
    table: str = "rm_detection_runs"
    columns: tuple[str, ...] = (
        "id",
        "model_id",
        "model_name",
        "video_id",
        "mode",
        "session_id",
        "parameters",
        "status",
        "total_frames",
        "planned_frames",
        "next_frame",
        "frames_done",
        "detections",
        "frames_per_second",
        "error",
        "error_frame",
        "worker",
        "created_at",
        "started_at",
        "finished_at",
        "updated_at",
        "version",
    )

    def fold(self, row: Row | None, event: Any) -> Row | None:
        if isinstance(event, DetectionRun.Requested):
            params = event.parameters
            return {
                "id": event.originator_id,
                "model_id": event.model_id,
                "model_name": event.model_name,
                "video_id": event.video_id,
                "mode": event.mode.value,
                "session_id": event.session_id,
                "parameters": Jsonb(msgspec.to_builtins(params)),
                "status": RunStatus.REQUESTED.value,
                "total_frames": event.total_frames,
                "planned_frames": _planned(event.total_frames, params.frame_stride),
                "next_frame": 0,
                "frames_done": 0,
                "detections": 0,
                "frames_per_second": None,
                "error": None,
                "error_frame": None,
                "worker": None,
                "created_at": event.timestamp,
                "started_at": None,
                "finished_at": None,
                "updated_at": None,
                "version": event.originator_version,
            }
        if row is None:
            return None
        value = row["parameters"]
        row["parameters"] = value if isinstance(value, Jsonb) else Jsonb(value)
        if isinstance(event, DetectionRun.Started):
            row["status"] = RunStatus.RUNNING.value
            row["worker"] = event.worker
            row["started_at"] = row["started_at"] or event.timestamp
        elif isinstance(event, DetectionRun.Progressed):
            row["next_frame"] = event.next_frame
            row["frames_done"] = event.frames_done
            row["detections"] = event.detections
            row["frames_per_second"] = event.frames_per_second
        else:
            row["status"] = _FINISHED[type(event)].value
            row["finished_at"] = event.timestamp
            if isinstance(event, DetectionRun.Completed):
                row["frames_done"] = event.frames_done
                row["detections"] = event.detections
                row["next_frame"] = row["total_frames"]
            else:
                row["error"] = event.reason or None
                row["error_frame"] = getattr(event, "frame", None)
        row["updated_at"] = event.timestamp
        row["version"] = event.originator_version
        return row


class RunRow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: UUID
    model_id: UUID
    model_name: str
    video_id: UUID
    mode: str
    session_id: UUID | None
    parameters: dict[str, Any]
    status: str
    total_frames: int
    planned_frames: int
    next_frame: int
    frames_done: int
    detections: int
    frames_per_second: float | None
    error: str | None
    error_frame: int | None
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None


_COLUMNS = (
    "id, model_id, model_name, video_id, mode, session_id, parameters, status, total_frames,"
    " planned_frames, next_frame, frames_done, detections, frames_per_second, error,"
    " error_frame, worker, created_at, started_at, finished_at, updated_at"
)


async def get_run(conn: AsyncConnection[Any], run_id: UUID) -> RunRow | None:
    async with conn.cursor(row_factory=class_row(RunRow)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM rm_detection_runs WHERE id = %s", (run_id,))
        return await cur.fetchone()


async def runs_of_video(conn: AsyncConnection[Any], video_id: UUID) -> list[RunRow]:
    async with conn.cursor(row_factory=class_row(RunRow)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM rm_detection_runs WHERE video_id = %s ORDER BY created_at, id",
            (video_id,),
        )
        return await cur.fetchall()


async def waiting_runs(conn: AsyncConnection[Any], older_than_s: float) -> list[UUID]:
    """Runs requested more than `older_than_s` ago that no worker has taken."""
    cur = await conn.execute(
        "SELECT id FROM rm_detection_runs WHERE status = 'requested'"
        " AND created_at < now() - make_interval(secs => %s) ORDER BY created_at",
        (older_than_s,),
    )
    return [row[0] for row in await cur.fetchall()]
