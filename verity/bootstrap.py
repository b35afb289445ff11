"""The composition root: the one place that wires store, projections, NATS and the API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from nats.aio.client import Client as NatsClient
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from api.services import ApiConfig, Services
from api.ws import RoomHub
from commands.application import Verity
from commands.codec import prebuild_decoders
from commands.projects import ensure_central_store
from domain.catalogue import event_classes
from projections.annotation_sessions import AnnotationSessionsProjection
from projections.annotations import AnnotationsProjection
from projections.criteria import CriteriaProjection
from projections.detection_runs import DetectionRunsProjection
from projections.detector_models import DetectorModelsProjection
from projections.envelopes import aggregate_names
from projections.evaluations import EvaluationsProjection
from projections.live_messages import SILENT
from projections.notifications import NotificationLog
from projections.projects import ProjectsProjection
from projections.runner import AnyProjection, ProjectionRunner
from projections.service import ProjectionService
from projections.shared_decoding import SharedDecoding
from projections.test_sessions import (
    DetectionsProjection,
    TestSessionsProjection,
    session_progress,
)
from projections.videos import VideosProjection
from storage.migrate import migrate
from storage.server import ping
from verity.pools import guard, guard_async
from verity.settings import Settings
from verity.waiting import Stopped, close_nats, connect_nats, keep_running, open_when_ready
from workers.detector import DetectorWorker
from workers.detector_queue import DetectorQueue
from workers.evaluator import Evaluator
from workers.ingest import DURABLE as INGEST_DURABLE
from workers.ingest import IngestWorker
from workers.ingest_consumer import ingest_consumer
from workers.live import LiveCoalescer
from workers.references import resolve
from workers.relay import Relay

log = logging.getLogger(__name__)

PROJECTIONS: tuple[type[AnyProjection], ...] = (
    ProjectsProjection,
    VideosProjection,
    TestSessionsProjection,
    DetectionsProjection,
    AnnotationsProjection,
    AnnotationSessionsProjection,
    CriteriaProjection,
    EvaluationsProjection,
    DetectorModelsProjection,
    DetectionRunsProjection,
)


@dataclass
class Endpoints:
    """Where PostgreSQL and NATS are, and the embedded servers we started (to stop them)."""

    database_url: str
    nats_url: str
    started: list[Any] = field(default_factory=list)


@contextlib.contextmanager
def servers(settings: Settings) -> Iterator[Endpoints]:
    """Use the configured servers, or start embedded ones under the data folder."""
    from verity.embedded import EmbeddedNats, EmbeddedPostgres  # noqa: PLC0415 - only if needed

    started: list[Any] = []
    try:
        database_url = settings.database_url
        if database_url is None:
            pg = EmbeddedPostgres(settings.data_dir / "postgres")
            started.append(pg)
            database_url = pg.start()
        nats_url = settings.nats_url
        if nats_url is None:
            embedded_nats = EmbeddedNats(settings.data_dir / "nats")
            started.append(embedded_nats)
            nats_url = embedded_nats.start()
        yield Endpoints(database_url, nats_url, started)
    finally:
        for server in reversed(started):
            server.stop()


def eventsourcing_env(database_url: str, pool_size: int) -> dict[str, str]:
    info = conninfo_to_dict(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(info.get("dbname") or "verity"),
        "POSTGRES_HOST": str(info.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(info.get("port") or "5432"),
        "POSTGRES_USER": str(info.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(info.get("password") or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "CREATE_TABLE": "n",
    }


GC_THRESHOLDS = (20_000, 20, 20)
"""Young-generation collections every 20k allocations instead of 700: the ingest path makes
hundreds of thousands of short-lived objects a second, and each collection also walked them."""


def settle_heap() -> None:
    """For long-running processes, once started: what startup loaded (modules, the app) is
    moved out of the collector's sight, so full collections only walk what came since.

    The frame structs are `gc=False` (they hold no references that could form a cycle); this
    takes care of the rest. Measured on the ingest bench (see bench/bench_ingest.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def open_application(database_url: str, pool_size: int = 8) -> Verity:
    """Migrate, then open the event store (the library needs the tables to exist first)."""
    migrate(database_url)
    app = Verity(env=eventsourcing_env(database_url, pool_size))
    if isinstance(app.recorder, PostgresApplicationRecorder):
        guard(app.recorder.datastore.pool)
    ensure_central_store(app)
    prebuild_decoders(event_classes())
    return app


def projection_runners(
    app: Verity,
    pool: ConnectionPool[Any],
    batch_size: int,
    decode: Callable[[Any], Any] | None = None,
) -> list[ProjectionRunner]:
    notifications = NotificationLog(pool)
    decode = decode or SharedDecoding(app.mapper.to_domain_event)
    return [ProjectionRunner(cls(), pool, notifications, decode, batch_size) for cls in PROJECTIONS]


async def _check_database(pool: AsyncConnectionPool[Any]) -> str | None:
    await ping(pool)
    return None


async def _fan_out_to_rooms(nc: NatsClient, settings: Settings, hub: RoomHub) -> None:
    """Relayed events and live messages reach the WebSocket rooms they concern."""

    async def on_event(msg: Any) -> None:
        try:
            await hub.on_stored(msg.data)
        except Exception:  # one bad message must not stop live updates
            log.exception("cannot fan out message on %s", msg.subject)

    # One subscription per aggregate that rooms hear of, not one on everything: frames
    # (thousands a second, projections/live_messages.py SILENT) are then never delivered to
    # this process.
    for aggregate in aggregate_names():
        if aggregate not in SILENT:
            await nc.subscribe(f"{settings.events_subject}.{aggregate}.>", cb=on_event)

    async def on_live(msg: Any) -> None:
        try:
            hub.on_live(msg.data)
        except Exception:  # a malformed live message must not stop the others
            log.exception("cannot fan out live message on %s", msg.subject)

    await nc.subscribe(f"{settings.live_subject}.>", cb=on_live)


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    endpoints: Endpoints,
    *,
    with_projections: bool = True,
    with_relay: bool = True,
    with_ingest: bool = True,
    with_evaluator: bool = True,
    with_detector: bool = True,
    detector_options: dict[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[Services]:
    """Everything `verity serve` runs in one process, torn down in reverse on exit.

    Start-up waits for PostgreSQL and NATS while they are down; setting `stop` (a signal)
    ends that wait with Stopped, and later stops the workers. `detector_options` replace
    parts of the detector worker (its detector, frame reader, inspection, timings)."""
    stop = asyncio.Event() if stop is None else stop
    app = await open_when_ready(
        endpoints.database_url, stop, lambda url: open_application(url, settings.db_pool_size)
    )
    write_pool: ConnectionPool[Any] = guard(
        ConnectionPool(  # a connection per runner thread + relay
            endpoints.database_url, min_size=1, max_size=len(PROJECTIONS) + 3, open=True
        )
    )
    read_pool: AsyncConnectionPool[Any] = guard_async(
        AsyncConnectionPool(
            endpoints.database_url,
            min_size=2,
            max_size=settings.db_pool_size,
            open=False,
            kwargs={"autocommit": True},  # reads are single statements: skip BEGIN/COMMIT trips
        )
    )
    await read_pool.open()
    decode = SharedDecoding(app.mapper.to_domain_event)
    runners = await asyncio.to_thread(
        projection_runners, app, write_pool, settings.projection_batch_size, decode
    )
    read_side = ProjectionService(runners, endpoints.database_url)
    if with_projections:
        await asyncio.to_thread(read_side.catch_up_once)
        read_side.start()
    try:
        nc = await connect_nats(endpoints.nats_url, "verity-api", stop)
    except Stopped:
        read_side.stop()
        await read_pool.close()
        write_pool.close()
        app.close()
        raise
    hub = RoomHub(resolve=lambda position: resolve(app, position))
    tasks: list[asyncio.Task[None]] = []

    await _fan_out_to_rooms(nc, settings, hub)
    relay = Relay(
        nc,
        NotificationLog(write_pool),
        decode,
        write_pool,
        endpoints.database_url,
        settings.events_stream,
        settings.events_subject,
        adopt_stream=settings.relay_adopt_stream,
    )
    if with_relay:
        tasks.append(asyncio.create_task(keep_running("relay", relay.run, stop), name="relay"))
    ingest = ingest_worker(nc, app, settings, read_pool)
    if with_ingest:
        tasks.append(asyncio.create_task(keep_running("ingest", ingest.run, stop), name="ingest"))
    evaluator = await start_evaluator(nc, app, settings, read_pool, stop, tasks, with_evaluator)
    detector = build_detector_worker(nc, app, settings, read_pool, **(detector_options or {}))
    if with_detector:
        tasks.append(
            asyncio.create_task(keep_running("detector", detector.run, stop), name="detector")
        )

    async def check_nats() -> str | None:
        return None if nc.is_connected else "disconnected"

    async def check_relay() -> str | None:
        return relay.last_error if with_relay else None

    async def check_ingest() -> str | None:
        return ingest.stats.last_error if with_ingest else None

    async def check_detector() -> str | None:
        return detector.last_error if with_detector else None

    services = Services(
        app=app,
        read_pool=read_pool,
        read_side=read_side,
        config=ApiConfig(
            uploads_dir=settings.uploads_dir,
            max_upload_bytes=settings.max_upload_bytes,
            read_wait_timeout=settings.read_wait_timeout,
            base_url=settings.base_url,
            models_dir=settings.models_dir,
            allow_pickle_weights=settings.allow_pickle_weights,
            max_model_bytes=settings.max_model_bytes,
            pipeline_wait_timeout=settings.pipeline_wait_timeout,
        ),
        health_checks=(
            ("database", lambda: _check_database(read_pool)),
            ("nats", check_nats),
            ("relay", check_relay),
            ("ingest", check_ingest),
            ("evaluator", evaluator.health),
            ("detector", check_detector),
        ),
        hub=hub,
        ingest_consumer=lambda: ingest_consumer(
            nc.jetstream(), settings.detections_stream, INGEST_DURABLE
        ),
        detector_queue=DetectorQueue(nc.jetstream(), settings.nats_prefix),
    )
    try:
        yield services
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_nats(nc)
        read_side.stop()
        await read_pool.close()
        write_pool.close()
        app.close()


async def start_evaluator(
    nc: NatsClient,
    app: Verity,
    settings: Settings,
    read_pool: AsyncConnectionPool[Any],
    stop: asyncio.Event,
    tasks: list[asyncio.Task[None]],
    enabled: bool = True,
) -> Evaluator:
    """The evaluator: completion evaluations and running figures on the live subject."""
    evaluator = Evaluator(app, read_pool, nc.publish, settings.live_subject)
    if enabled:
        await evaluator.subscribe(nc, settings.events_subject)
        tasks.append(asyncio.create_task(evaluator.run(stop), name="evaluator"))
    return evaluator


def ingest_worker(
    nc: NatsClient, app: Verity, settings: Settings, read_pool: AsyncConnectionPool[Any]
) -> IngestWorker:
    """The device ingest worker, publishing coalesced live messages for the WebSockets."""

    async def publish(subject: str, payload: bytes) -> None:
        await nc.publish(subject, payload)

    live = LiveCoalescer(
        publish,
        settings.live_subject,
        counts=lambda ids: session_progress(read_pool, ids),
    )
    return IngestWorker(
        nc,
        app,
        stream=settings.detections_stream,
        subject_prefix=settings.detections_subject,
        live=live,
    )


def build_detector_worker(
    nc: NatsClient,
    app: Verity,
    settings: Settings,
    read_pool: AsyncConnectionPool[Any] | None = None,
    **overrides: Any,
) -> DetectorWorker:
    """The detector worker: runs and model inspections from the work queue. Inference is
    imported lazily (torch loads only when a run or an inspection needs it)."""
    from workers import inference  # noqa: PLC0415

    options: dict[str, Any] = {
        "open_detector": inference.open_detector,
        "read_frames": inference.read_frames,
        "inspect": inference.run_inspection_subprocess,
        **overrides,
    }
    return DetectorWorker(
        nc,
        app,
        prefix=settings.nats_prefix,
        live_prefix=settings.live_subject,
        models_dir=settings.models_dir,
        uploads_dir=settings.uploads_dir,
        read_pool=read_pool,
        **options,
    )
