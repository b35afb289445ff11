"""What the HTTP layer needs from the rest of the product, handed in by the composition root."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4

import anyio.to_thread
from litestar import Request
from litestar.datastructures import State
from psycopg_pool import AsyncConnectionPool

from api.cache import ResponseCache
from api.group_commit import GroupCommit
from commands.application import Position, Verity
from commands.context import run_as
from domain.access import Principal, anonymous
from domain.events import EventMeta
from projections.service import ProjectionService
from workers.detector_queue import DetectorQueue
from workers.projection_rebuild import RebuildJobs

C = TypeVar("C")
R = TypeVar("R")


@dataclass(frozen=True)
class ApiConfig:
    uploads_dir: Path
    max_upload_bytes: int
    read_wait_timeout: float
    base_url: str
    models_dir: Path = Path(".data/models")
    allow_pickle_weights: bool = False
    max_model_bytes: int = 1024 * 1024 * 1024
    pipeline_wait_timeout: float = 60.0
    max_projection_lag: int = 50_000
    """/health is unhealthy while a read model is more events than this behind the log."""
    nats_url: str | None = None
    """Where devices connect (answered with their credentials)."""
    detections_subject: str = "verity.detections"


@dataclass
class Services:
    app: Verity
    read_pool: AsyncConnectionPool[Any]
    read_side: ProjectionService
    config: ApiConfig
    frames: GroupCommit
    """Where frames posted one per request are stored, together with concurrent ones."""
    health_checks: Sequence[tuple[str, Callable[[], Awaitable[str | None]]]] = ()
    """(name, check) pairs; a check returns None when healthy, else what is wrong."""
    hub: Any = None
    ingest_consumer: Callable[[], Awaitable[Any]] | None = None
    """The ingest's durable JetStream consumer (workers/ingest_consumer.py), all workers'."""
    detector_queue: DetectorQueue | None = None
    """Where stored run requests and model registrations go for a detector worker."""
    rebuilds: RebuildJobs | None = None
    """Blue-green rebuilds asked for over HTTP (`POST /api/admin/projections/{name}/rebuild`)."""
    stopping: asyncio.Event | None = None
    """Set once the process is asked to stop (before the server waits for open requests)."""
    responses: ResponseCache = field(init=False)
    """Encoded GET bodies, valid while their read model's position stands still."""

    def __post_init__(self) -> None:
        self.responses = ResponseCache(self.read_side)


def services_of(state: State) -> Services:
    services: Services = state.services
    return services


def request_id(request: Request[Any, Any, Any]) -> UUID:
    """The request's id (from X-Request-ID when it is a UUID); it becomes the correlation id."""
    existing = request.scope.get("state", {}).get("request_id")
    if isinstance(existing, UUID):
        return existing
    header = request.headers.get("x-request-id", "")
    try:
        rid = UUID(header)
    except ValueError:
        rid = uuid4()
    request.scope.setdefault("state", {})["request_id"] = rid
    return rid


def principal(request: Request[Any, Any, Any]) -> Principal:
    """Who the request acts as (api/auth.py put it there); anonymous without a role if none."""
    found = request.scope.get("user")
    return found if isinstance(found, Principal) else anonymous(None)


def meta_of(request: Request[Any, Any, Any]) -> EventMeta:
    """Every command's events record the authenticated principal and the request's id."""
    rid = request_id(request)
    return EventMeta(actor=principal(request).actor, correlation_id=rid, causation_id=rid)


async def execute(
    services: Services,
    request: Request[Any, Any, Any],
    handler: Callable[[C, Verity], R],
    cmd: C,
) -> R:
    """Run a command handler off the event loop, recording who asked and why."""
    return await execute_as(services, meta_of(request), handler, cmd)


async def execute_as(
    services: Services, meta: EventMeta, handler: Callable[[C, Verity], R], cmd: C
) -> R:
    """`execute` for a caller that is no HTTP request (a Socket.IO event, a page socket)."""
    return await anyio.to_thread.run_sync(run_as, meta, handler, cmd, services.app)


ReadModel = Literal[
    "projects_v1",
    "videos_v1",
    "test_sessions_v1",
    "detections_v1",
    "annotations_v1",
    "annotation_sessions_v1",
    "criteria_v1",
    "evaluations_v1",
    "detector_models_v1",
    "detection_runs_v1",
    "devices_v1",
    "principals_v1",
    "api_tokens_v1",
]
"""The read models' names (projections' `name`; a unit test keeps the two lists equal)."""


async def caught_up(
    services: Services, position: Position | None, read_model: ReadModel, *more: ReadModel
) -> None:
    """Wait (bounded) until the named read models include `position`, so a GET sees the write.

    Name the read models that project this write's events and that the answer or the obvious
    follow-up GET reads; no more (each waits for its own projection), and there is no default:
    a new route must choose."""
    await services.read_side.wait_for(
        position, services.config.read_wait_timeout, (read_model, *more)
    )
