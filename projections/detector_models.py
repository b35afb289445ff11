"""Read model of detector models: one row per registered model, with its status."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from domain.detector_models import DetectorModel, ModelStatus
from projections.rows import OneRowPerAggregate, Row

PROJECTION_NAME = "detector_models_v1"
_JSON = ("class_names", "class_map")


def _json(value: Any) -> Any:
    return value.obj if isinstance(value, Jsonb) else value


class DetectorModelsProjection(OneRowPerAggregate):
    name: str = PROJECTION_NAME
    event_classes: tuple[type[Any], ...] = (
        DetectorModel.Registered,
        DetectorModel.BecameReady,
        DetectorModel.Refused,
        DetectorModel.Retired,
    )
    tables: tuple[str, ...] = ("rm_detector_models",)
    table: str = "rm_detector_models"
    columns: tuple[str, ...] = (
        "id",
        "name",
        "version",
        "framework",
        "sha256",
        "filename",
        "original_name",
        "size",
        "status",
        "reason",
        "class_names",
        "class_map",
        "input_size",
        "task",
        "confidence",
        "nms_iou",
        "created_at",
        "updated_at",
        "version_no",
        "created_by",
    )

    def fold(self, row: Row | None, event: Any) -> Row | None:
        if isinstance(event, DetectorModel.Registered):
            return {
                "id": event.originator_id,
                "name": event.name,
                "version": event.version,
                "framework": event.framework.value,
                "sha256": event.sha256,
                "filename": event.filename,
                "original_name": event.original_name,
                "size": event.size,
                "status": ModelStatus.INSPECTING.value,
                "reason": None,
                "class_names": Jsonb([]),
                "class_map": Jsonb({k: v.value for k, v in (event.class_map or {}).items()}),
                "input_size": None,
                "task": None,
                "confidence": event.confidence,
                "nms_iou": event.nms_iou,
                "created_at": event.timestamp,
                "updated_at": None,
                "version_no": event.originator_version,
                "created_by": event.meta.actor,
            }
        if row is None:
            return None
        for column in _JSON:
            row[column] = Jsonb(_json(row[column]))
        if isinstance(event, DetectorModel.BecameReady):
            row["status"] = ModelStatus.READY.value
            row["framework"] = event.inspection.framework
            row["class_names"] = Jsonb(list(event.inspection.class_names))
            row["class_map"] = Jsonb({k: v.value for k, v in event.class_map.items()})
            row["input_size"] = event.inspection.input_size
            row["task"] = event.inspection.task
        elif isinstance(event, DetectorModel.Refused):
            row["status"] = ModelStatus.REFUSED.value
            row["reason"] = event.reason
        elif isinstance(event, DetectorModel.Retired):
            row["status"] = ModelStatus.RETIRED.value
            row["reason"] = event.reason or row["reason"]
        row["updated_at"] = event.timestamp
        row["version_no"] = event.originator_version
        return row


class ModelRow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A detector model as the API serves it."""

    id: UUID
    name: str
    version: str
    framework: str
    sha256: str
    filename: str
    original_name: str
    size: int
    status: str
    reason: str | None
    class_names: list[str]
    class_map: dict[str, str]
    input_size: int | None
    task: str | None
    confidence: float
    nms_iou: float
    created_at: datetime
    updated_at: datetime | None


_COLUMNS = (
    "id, name, version, framework, sha256, filename, original_name, size, status, reason,"
    " class_names, class_map, input_size, task, confidence, nms_iou, created_at, updated_at"
)


async def list_models(conn: AsyncConnection[Any], include_retired: bool = True) -> list[ModelRow]:
    where = "" if include_retired else " WHERE status <> 'retired'"
    async with conn.cursor(row_factory=class_row(ModelRow)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM rm_detector_models{where} ORDER BY created_at, id"
        )
        return await cur.fetchall()


async def get_model(conn: AsyncConnection[Any], model_id: UUID) -> ModelRow | None:
    async with conn.cursor(row_factory=class_row(ModelRow)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM rm_detector_models WHERE id = %s", (model_id,))
        return await cur.fetchone()


async def find_models(conn: AsyncConnection[Any], name: str) -> list[ModelRow]:
    """Models called `name` (or `name:version`), newest first; retired ones last."""
    base, _, version = name.partition(":")
    async with conn.cursor(row_factory=class_row(ModelRow)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM rm_detector_models WHERE name = %s"
            " AND (%s = '' OR version = %s)"
            " ORDER BY (status = 'retired'), (status = 'ready') DESC, created_at DESC",
            (base, version, version),
        )
        return await cur.fetchall()


async def pending_inspections(conn: AsyncConnection[Any], older_than_s: float) -> list[UUID]:
    """Models registered over `older_than_s` ago and not inspected yet (a worker died, or
    none ran meanwhile)."""
    cur = await conn.execute(
        "SELECT id FROM rm_detector_models WHERE status = 'inspecting'"
        " AND created_at < now() - make_interval(secs => %s) ORDER BY created_at",
        (older_than_s,),
    )
    return [row[0] for row in await cur.fetchall()]
