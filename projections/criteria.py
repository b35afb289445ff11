"""Read model of project criteria: one row per project that configured its pass/fail bar."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from domain.criteria import ProjectCriteria
from projections.base import Statement

_INSERT = (
    "INSERT INTO rm_project_criteria (project_id, id, created_at, version) VALUES (%s, %s, %s, %s)"
)
_CONFIGURE = (
    "UPDATE rm_project_criteria SET min_precision = %s, min_recall = %s, min_f1_score = %s,"
    " max_latency_ms = %s, updated_at = %s, version = %s WHERE id = %s"
)


class CriteriaProjection:
    name: str = "criteria_v1"
    event_classes: tuple[type[Any], ...] = (ProjectCriteria.Created, ProjectCriteria.Configured)
    tables: tuple[str, ...] = ("rm_project_criteria",)

    def handle(self, event: Any) -> Iterable[Statement]:
        if isinstance(event, ProjectCriteria.Created):
            yield (
                _INSERT,
                (event.project_id, event.originator_id, event.timestamp, event.originator_version),
            )
        elif isinstance(event, ProjectCriteria.Configured):
            v = event.values
            yield (
                _CONFIGURE,
                (
                    v.min_precision,
                    v.min_recall,
                    v.min_f1_score,
                    v.max_latency_ms,
                    event.timestamp,
                    event.originator_version,
                    event.originator_id,
                ),
            )


class CriteriaRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    project_id: UUID
    min_precision: float | None
    min_recall: float | None
    min_f1_score: float | None
    max_latency_ms: float | None
    created_at: datetime
    updated_at: datetime | None
    version: int


async def get_criteria(conn: AsyncConnection[Any], project_id: UUID) -> CriteriaRow | None:
    async with conn.cursor(row_factory=class_row(CriteriaRow)) as cur:
        await cur.execute(
            "SELECT id, project_id, min_precision, min_recall, min_f1_score, max_latency_ms,"
            " created_at, updated_at, version FROM rm_project_criteria WHERE project_id = %s",
            (project_id,),
            prepare=True,
        )
        return await cur.fetchone()
