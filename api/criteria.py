"""A project's pass/fail criteria (contract M3), stored as events and judged on intervals."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api.inputs import InputDTO
from api.services import caught_up, execute, services_of
from commands.criteria import ConfigureCriteria, configure_criteria
from domain.casing import with_snake_twins
from domain.criteria import CriteriaValues
from domain.errors import NotFound
from projections.criteria import CriteriaRow, get_criteria
from projections.projects import get_project


class CriteriaIn(msgspec.Struct, kw_only=True):
    """The original's defaults; fractions in [0, 1], latency (p95, ms) above 0."""

    min_precision: float | None = 0.90
    min_recall: float | None = 0.85
    min_f1_score: float | None = 0.87
    max_latency_ms: float | None = 100.0


@with_snake_twins
class CriteriaOut(msgspec.Struct, kw_only=True, rename="camel"):
    """camelCase (the frontend's PassFailCriteria) and snake_case (the original's M3 body)."""

    id: str
    project_id: str
    min_precision: float | None
    min_recall: float | None
    min_f1_score: float | None
    max_latency_ms: float | None
    created_at: str
    updated_at: str | None
    version: int


def criteria_out(row: CriteriaRow) -> CriteriaOut:
    return CriteriaOut(
        id=str(row.id),
        project_id=str(row.project_id),
        min_precision=row.min_precision,
        min_recall=row.min_recall,
        min_f1_score=row.min_f1_score,
        max_latency_ms=row.max_latency_ms,
        created_at=row.created_at.isoformat(),
        updated_at=row.updated_at.isoformat() if row.updated_at else None,
        version=row.version,
    )


class CriteriaController(Controller):
    path = "/api/projects/{project_id:uuid}/criteria"
    tags = ["criteria"]

    @post(
        "/configure",
        operation_id="configureCriteria",
        summary="Set the project's pass/fail criteria (M3)",
        description=(
            "`min_precision`, `min_recall`, `min_f1_score`: fractions in [0, 1]; "
            "`max_latency_ms`: the bound on the 95th percentile latency, > 0; null: not "
            "required. Out of range -> 422 naming the field. Every evaluation after this is "
            "judged PASS, FAIL or INCONCLUSIVE (the interval straddles a threshold)."
        ),
        status_code=200,
        dto=InputDTO[CriteriaIn],
        return_dto=None,
    )
    async def configure(
        self,
        state: State,
        request: Request[Any, Any, Any],
        project_id: FromPath[UUID],
        data: JSONBody[CriteriaIn],
    ) -> CriteriaOut:
        services = services_of(state)
        cmd = ConfigureCriteria(
            project_id=project_id, values=CriteriaValues(**msgspec.structs.asdict(data))
        )
        position = await execute(services, request, configure_criteria, cmd)
        await caught_up(services, position, "criteria_v1")
        return await _load(state, project_id)

    @get(operation_id="getCriteria", summary="The project's pass/fail criteria")
    async def get_criteria(self, state: State, project_id: FromPath[UUID]) -> CriteriaOut:
        return await _load(state, project_id)


async def _load(state: State, project_id: UUID) -> CriteriaOut:
    async with services_of(state).read_pool.connection() as conn:
        row = await get_criteria(conn, project_id)
        if row is None:
            detail = (
                f"Project {project_id} has no criteria configured"
                if await get_project(conn, project_id) is not None
                else "Project not found"
            )
            raise NotFound("Criteria", project_id, detail)
    return criteria_out(row)
