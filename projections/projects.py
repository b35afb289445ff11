"""Read model of projects: one row per live project."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from domain.projects import CENTRAL_STORE_ID, ModelRef, Project
from projections.rows import OneRowPerAggregate, Row

_CHANGEABLE = (
    "name",
    "description",
    "camera_model",
    "camera_view",
    "lens_type",
    "resolution",
    "frame_rate",
    "signal_type",
    "status",
)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


PROJECTION_NAME = "projects_v1"


def _model(ref: ModelRef) -> dict[str, str]:
    return {"id": str(ref.id), "name": ref.name, "version": ref.version}


class ProjectsProjection(OneRowPerAggregate):
    name: str = PROJECTION_NAME
    event_classes: tuple[type[Any], ...] = (
        Project.Created,
        Project.Updated,
        Project.Deleted,
        Project.ModelsAssigned,
    )
    tables: tuple[str, ...] = ("rm_projects",)
    table: str = "rm_projects"
    columns: tuple[str, ...] = (
        "id",
        *_CHANGEABLE,
        "owner_id",
        "created_at",
        "updated_at",
        "version",
        "created_by",
        "models",
    )

    def fold(self, row: Row | None, event: Any) -> Row | None:
        if isinstance(event, Project.Created):
            return {
                "id": event.originator_id,
                **{c: _plain(getattr(event, c)) for c in _CHANGEABLE},
                "owner_id": event.owner_id,
                "created_at": event.timestamp,
                "updated_at": None,
                "version": event.originator_version,
                "created_by": event.meta.actor,
                "models": Jsonb([]),
            }
        if row is None or isinstance(event, Project.Deleted):
            return None
        models = row["models"]
        row["models"] = models if isinstance(models, Jsonb) else Jsonb(models)
        if isinstance(event, Project.ModelsAssigned):
            row["models"] = Jsonb([_model(m) for m in event.models])
            row["updated_at"] = event.timestamp
            row["version"] = event.originator_version
        if isinstance(event, Project.Updated):
            row.update({c: _plain(v) for c, v in event.changes.as_dict().items()})
            row["updated_at"] = event.timestamp
            row["version"] = event.originator_version
        return row


class ProjectRow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A project as the API serves it (JSON keys camelCase, contract P1/P2)."""

    id: UUID
    name: str
    description: str | None
    camera_model: str
    camera_view: str
    lens_type: str | None
    resolution: str | None
    frame_rate: int | None
    signal_type: str
    status: str
    owner_id: str
    created_at: datetime
    updated_at: datetime | None
    version: int
    models: list[dict[str, str]] = []
    """The detector models the project uses (`id`, `name`, `version`), its default first."""
    tests_count: int = 0
    """How many test sessions the project has (the test sessions read model's rows)."""


SESSIONS_PROJECTION = "test_sessions_v1"
"""The read model `tests_count` is counted from: a cached body is keyed on its position too."""

_COLUMNS = (
    "id, name, description, camera_model, camera_view, lens_type, resolution, frame_rate,"
    " signal_type, status, owner_id, created_at, updated_at, version, models,"
    " (SELECT count(*) FROM rm_test_sessions s WHERE s.project_id = rm_projects.id)"
    " AS tests_count"
)


async def list_projects(
    conn: AsyncConnection[Any], skip: int = 0, limit: int = 100
) -> list[ProjectRow]:
    """Real projects, oldest first; the Central Video Store is a pseudo-project and not listed."""
    async with conn.cursor(row_factory=class_row(ProjectRow)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM rm_projects WHERE id <> %s"
            " ORDER BY created_at, id OFFSET %s LIMIT %s",
            (CENTRAL_STORE_ID, skip, limit),
            prepare=True,
        )
        return await cur.fetchall()


async def get_project(conn: AsyncConnection[Any], project_id: UUID) -> ProjectRow | None:
    async with conn.cursor(row_factory=class_row(ProjectRow)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM rm_projects WHERE id = %s", (project_id,), prepare=True
        )
        return await cur.fetchone()
