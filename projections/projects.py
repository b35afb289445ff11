"""Read model of projects: one row per live project."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from domain.projects import CENTRAL_STORE_ID, Project
from projections.base import Statement

_INSERT = (
    "INSERT INTO rm_projects (id, name, description, camera_model, camera_view, lens_type,"
    " resolution, frame_rate, signal_type, status, owner_id, created_at, version, created_by)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
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
# One statement shape for every partial update, so a batch of updates is one executemany.
_UPDATE = (
    "UPDATE rm_projects SET "
    + ", ".join(f"{c} = CASE WHEN %(set_{c})s THEN %({c})s ELSE {c} END" for c in _CHANGEABLE)
    + ", updated_at = %(at)s, version = %(version)s WHERE id = %(id)s"
)
_DELETE = "DELETE FROM rm_projects WHERE id = %s"


class ProjectsProjection:
    name: str = "projects_v1"
    event_classes: tuple[type[Any], ...] = (Project.Created, Project.Updated, Project.Deleted)
    tables: tuple[str, ...] = ("rm_projects",)

    def handle(self, event: Any) -> Iterable[Statement]:
        if isinstance(event, Project.Created):
            yield (
                _INSERT,
                (
                    event.originator_id,
                    event.name,
                    event.description,
                    event.camera_model,
                    event.camera_view.value,
                    event.lens_type,
                    event.resolution,
                    event.frame_rate,
                    event.signal_type.value,
                    event.status.value,
                    event.owner_id,
                    event.timestamp,
                    event.originator_version,
                    event.meta.actor,
                ),
            )
        elif isinstance(event, Project.Updated):
            changed = event.changes.as_dict()
            params: dict[str, Any] = {
                "id": event.originator_id,
                "at": event.timestamp,
                "version": event.originator_version,
            }
            for column in _CHANGEABLE:
                value = changed.get(column)
                params[f"set_{column}"] = column in changed
                params[column] = value.value if hasattr(value, "value") else value
            yield _UPDATE, params
        elif isinstance(event, Project.Deleted):
            yield _DELETE, (event.originator_id,)


class ProjectRow(msgspec.Struct, frozen=True, kw_only=True):
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


_COLUMNS = (
    "id, name, description, camera_model, camera_view, lens_type, resolution, frame_rate,"
    " signal_type, status, owner_id, created_at, updated_at, version"
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
