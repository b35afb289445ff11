"""Where each read model stands, and the events it skipped because it could not apply them.

For operators: a read model that skipped events keeps serving, but lacks what those events
said until they are re-tried (`verity rebuild --retry-failures`) after a fix.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import anyio.to_thread
import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.params import Parameter

from api.services import Services, services_of
from domain.errors import InvalidValue
from domain.limits import MAX_PAGE, MAX_SKIP
from projections.blue_green import RebuildBusy
from projections.failures import FailureRow, failure_summary, list_failures
from projections.operations import missing_tables, rebuilding, unapplied_since
from projections.runner import ProjectionRunner
from workers.projection_rebuild import RebuildJob, RebuildJobs

ReadModelState = Literal["live", "rebuilding", "failed", "missing"]


class ProjectionStatus(msgspec.Struct, kw_only=True, rename="camel"):
    name: str
    position: int
    head: int
    lag: int
    """Events stored past `position` (of any type: the log's head minus the position)."""
    lag_seconds: float
    """How long ago the oldest event past `position` was recorded (0 when none is)."""
    events_per_second: float
    """Events this read model applied per second, over the last 10 s."""
    state: ReadModelState
    """`missing`: a table is gone (a restart rebuilds it); `rebuilding`: a blue-green rebuild
    runs (the old tables serve meanwhile); `failed`: an outage keeps it from moving, or its
    last rebuild here failed; `live` otherwise."""
    missing_tables: list[str]
    failure_count: int
    """Events recorded as not applied (skipped, or held back behind one that was)."""
    last_failure: FailureRow | None
    error: str | None
    """What keeps this read model from moving right now (an outage), if anything."""
    last_error: str | None
    """The outage above, or else why its last rebuild in this process failed."""


class ProjectionsStatus(msgspec.Struct, kw_only=True, rename="camel"):
    head_position: int
    projections: list[ProjectionStatus]


class RebuildStatus(msgspec.Struct, kw_only=True, rename="camel"):
    name: str
    state: str
    """`running`, `done` or `failed`; progress also goes out over WebSocket (room `admin`,
    message `projection_rebuild_progress`)."""
    started_at: datetime
    finished_at: datetime | None
    processed: int
    total: int
    position: int
    head: int
    events_per_second: float
    error: str | None
    detail: str | None = None
    """Why the request was refused (409: a rebuild of this read model runs already)."""
    status_url: str


def _rebuild_status(job: RebuildJob, detail: str | None = None) -> RebuildStatus:
    return RebuildStatus(
        name=job.name,
        state=job.state,
        started_at=job.started_at,
        finished_at=job.finished_at,
        processed=job.processed,
        total=job.total,
        position=job.position,
        head=job.head,
        events_per_second=round(job.events_per_second, 1),
        error=job.error,
        detail=detail,
        status_url=f"/api/admin/projections/{job.name}/rebuild",
    )


def _refused(name: str, detail: str) -> RebuildStatus:
    """A 409 for a rebuild this server did not start (another process runs it)."""
    return _rebuild_status(RebuildJob(name, "running", datetime.now(UTC)), detail)


def _jobs(services: Services, name: str) -> RebuildJobs:
    known = [r.name for r in services.read_side.runners]
    if name not in known:
        raise NotFoundException(f"name: unknown read model (known: {', '.join(known)})")
    if services.rebuilds is None:
        raise ServiceUnavailableException("this server does not run rebuilds")
    return services.rebuilds


async def _lag_seconds(runner: ProjectionRunner) -> float:
    try:
        since = await anyio.to_thread.run_sync(unapplied_since, runner)
    except Exception:  # an event it cannot decode: the failure list says so
        return 0.0
    return 0.0 if since is None else max(0.0, (datetime.now(UTC) - since).total_seconds())


class ProjectionStatusController(Controller):
    path = "/api/admin/projections"
    tags = ["admin"]

    @get(
        operation_id="projectionStatus",
        summary="Each read model's position, lag (events, seconds), rate, state and failures",
    )
    async def status(self, state: State) -> ProjectionsStatus:
        services = services_of(state)
        head = await anyio.to_thread.run_sync(services.app.head)
        runners = services.read_side.runners
        async with services.read_pool.connection() as conn:
            summary = await failure_summary(conn, newest=1)
            missing = await missing_tables(conn, {r.name: r.projection.tables for r in runners})
            busy = await rebuilding(conn, [r.name for r in runners])
        errors = services.read_side.errors()
        rebuilds = services.rebuilds.jobs if services.rebuilds is not None else {}
        projections = []
        for runner in runners:
            name, position = runner.name, runner.position
            failures = summary.get(name)
            job = rebuilds.get(name)
            rebuild_error = job.error if job is not None and job.state == "failed" else None
            error = errors.get(name)
            projections.append(
                ProjectionStatus(
                    name=name,
                    position=position,
                    head=head,
                    lag=max(0, head - position),
                    lag_seconds=await _lag_seconds(runner) if position < head else 0.0,
                    events_per_second=round(runner.events_per_second(), 1),
                    state="missing"
                    if name in missing
                    else "rebuilding"
                    if name in busy
                    else "failed"
                    if error or rebuild_error
                    else "live",
                    missing_tables=missing.get(name, []),
                    failure_count=failures.count if failures else 0,
                    last_failure=failures.newest[0] if failures else None,
                    error=error,
                    last_error=error or rebuild_error,
                )
            )
        return ProjectionsStatus(head_position=head, projections=projections)

    @post(
        "/{name:str}/rebuild",
        operation_id="rebuildProjection",
        summary="Start a blue-green rebuild of a read model (202; 409 if one runs already)",
        status_code=202,
    )
    async def rebuild(self, state: State, name: str) -> Response[RebuildStatus]:
        services = services_of(state)
        jobs = _jobs(services, name)
        async with services.read_pool.connection() as conn:
            elsewhere = name in await rebuilding(conn, [name])
        try:
            if elsewhere:  # another process holds the lock (its thread here would find it too)
                raise RebuildBusy(name)
            job = jobs.start(name)
        except RebuildBusy as busy:
            current = jobs.jobs.get(name)
            body = _rebuild_status(current, str(busy)) if current else _refused(name, str(busy))
            return Response(body, status_code=409)
        return Response(_rebuild_status(job), status_code=202)

    @get(
        "/{name:str}/rebuild",
        operation_id="projectionRebuildStatus",
        summary="The latest rebuild of a read model asked for at this server",
    )
    async def rebuild_status(self, state: State, name: str) -> RebuildStatus:
        jobs = _jobs(services_of(state), name)
        job = jobs.jobs.get(name)
        if job is None:
            raise NotFoundException(f"name: no rebuild of {name} was started here")
        return _rebuild_status(job)

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
