"""Liveness and readiness: database, NATS and how far each projection lags behind the log."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio.to_thread
import msgspec
from litestar import Response, get
from litestar.datastructures import State

from api.operation_ids import per_path
from api.services import Services, services_of
from projections.failures import ProjectionFailures, failure_summary
from workers.ingest_consumer import IngestConsumer

VERSION = "0.1.0"


class Health(msgspec.Struct, kw_only=True, rename="camel"):
    status: str
    timestamp: datetime
    version: str
    database: str
    database_status: str
    nats: str
    head_position: int | None
    projection_lag: dict[str, int]
    problems: list[str]
    projection_failures: dict[str, ProjectionFailures] = msgspec.field(default_factory=dict)
    """Read models that skipped events they could not apply (see below)."""
    ingest_consumer: IngestConsumer | None = None
    """Every ingest worker's progress, from JetStream (absent where NATS does not answer)."""


@get(
    ["/health", "/api/health"],
    operation_id=per_path({"": "health", "api": "apiHealth"}),
    summary="Health with database, NATS and projection lag (`/api/health`: Enhanced Test's"
    " spelling)",
)
async def health(state: State) -> Response[Health]:
    services = services_of(state)
    problems: list[str] = []
    checks: dict[str, str] = {}
    for name, check in services.health_checks:
        try:
            problem = await check()
        except Exception as err:  # a failing probe is a finding, not a crash
            problem = f"{type(err).__name__}: {err}"
        checks[name] = "ok" if problem is None else problem
        if problem is not None:
            problems.append(f"{name}: {problem}")
    head: int | None = None
    try:
        head = await anyio.to_thread.run_sync(services.app.head)
    except Exception as err:
        checks["database"] = f"{type(err).__name__}: {err}"
        problems.append(f"database: {checks['database']}")
    lag = {name: max(0, (head or 0) - pos) for name, pos in services.read_side.positions().items()}
    if services.read_side.last_error:
        problems.append(f"projections: {services.read_side.last_error}")
    failures = await _projection_failures(services)
    consumer = await _ingest_consumer(services, problems)
    body = Health(
        status="unhealthy" if problems else "degraded" if failures else "healthy",
        timestamp=datetime.now(UTC),
        version=VERSION,
        database=checks.get("database", "ok"),
        database_status=checks.get("database", "ok"),
        nats=checks.get("nats", "ok"),
        head_position=head,
        projection_lag=lag,
        problems=problems,
        projection_failures=failures,
        ingest_consumer=consumer,
    )
    return Response(body, status_code=200 if not problems else 503)


async def _projection_failures(services: Services) -> dict[str, ProjectionFailures]:
    """Skipped events make the answer `degraded` but leave it 200: the read side is moving
    and serving everything else; taking the instance out of rotation (503) would fix nothing,
    since the skipped event fails the same way on every instance and after every restart."""
    try:
        async with services.read_pool.connection() as conn:
            return await failure_summary(conn)
    except Exception:  # an outage: the database check above reports it
        return {}


async def _ingest_consumer(services: Services, problems: list[str]) -> IngestConsumer | None:
    if services.ingest_consumer is None:
        return None
    try:
        consumer: IngestConsumer = await services.ingest_consumer()
    except Exception as err:  # NATS down: the nats check says so already
        problems.append(f"ingest consumer: {type(err).__name__}: {err}")
        return None
    if consumer.problem is not None:
        problems.append(f"ingest consumer: {consumer.problem}")
    return consumer


class Root(msgspec.Struct, kw_only=True):
    message: str
    docs: str
    health: str


@get("/", operation_id="root", summary="What this server is")
async def root() -> Root:
    return Root(message="AI Model Validation Platform API", docs="/schema", health="/health")
