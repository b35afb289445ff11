"""Where each read model stands, and the events it skipped because it could not apply them.

For operators: a read model that skipped events keeps serving, but lacks what those events
said until they are re-tried (`verity rebuild --retry-failures`) after a fix.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import Parameter

from api.services import services_of
from domain.errors import InvalidValue
from domain.limits import MAX_PAGE, MAX_SKIP
from projections.failures import FailureRow, failure_summary, list_failures


class ProjectionStatus(msgspec.Struct, kw_only=True, rename="camel"):
    name: str
    position: int
    lag: int
    failure_count: int
    """Events recorded as not applied (skipped, or held back behind one that was)."""
    last_failure: FailureRow | None
    error: str | None
    """What keeps this read model from moving right now (an outage), if anything."""


class ProjectionsStatus(msgspec.Struct, kw_only=True, rename="camel"):
    head_position: int
    projections: list[ProjectionStatus]


class ProjectionStatusController(Controller):
    path = "/api/admin/projections"
    tags = ["admin"]

    @get(operation_id="projectionStatus", summary="Each read model's position, lag and failures")
    async def status(self, state: State) -> ProjectionsStatus:
        services = services_of(state)
        head = await anyio.to_thread.run_sync(services.app.head)
        async with services.read_pool.connection() as conn:
            summary = await failure_summary(conn, newest=1)
        errors = services.read_side.errors()
        projections = []
        for name, position in services.read_side.positions().items():
            failures = summary.get(name)
            projections.append(
                ProjectionStatus(
                    name=name,
                    position=position,
                    lag=max(0, head - position),
                    failure_count=failures.count if failures else 0,
                    last_failure=failures.newest[0] if failures else None,
                    error=errors.get(name),
                )
            )
        return ProjectionsStatus(head_position=head, projections=projections)

    @get(
        "/failures",
        operation_id="listProjectionFailures",
        summary="Events a read model recorded as not applied, in log order",
    )
    async def failures(
        self,
        state: State,
        projection: str | None = None,
        skip: Annotated[int, Parameter(ge=0, le=MAX_SKIP)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 100,
    ) -> list[FailureRow]:
        services = services_of(state)
        known = services.read_side.positions()
        if projection is not None and projection not in known:
            names = ", ".join(sorted(known))
            raise InvalidValue("projection", f"projection: unknown read model (known: {names})")
        async with services.read_pool.connection() as conn:
            return await list_failures(conn, projection, skip, limit)
