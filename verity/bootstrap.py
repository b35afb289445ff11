"""The composition root: the one place that wires store, projections, NATS and the API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eventsourcing.postgres import PostgresApplicationRecorder
from nats.aio.client import Client as NatsClient
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from api.group_commit import GroupCommit
from api.services import ApiConfig, Services
from api.ws import RoomHub
from commands.application import Verity
from commands.codec import prebuild_decoders
from commands.detections import frame_recorder
from commands.projects import ensure_central_store
from domain.access import service
from domain.catalogue import event_classes
from domain.events import EventMeta, recorded_as
from projections.annotation_sessions import AnnotationSessionsProjection
from projections.annotations import AnnotationsProjection
from projections.criteria import CriteriaProjection
from projections.detection_runs import DetectionRunsProjection
from projections.detector_models import DetectorModelsProjection
from projections.devices import DevicesProjection
from projections.envelopes import aggregate_names
from projections.evaluations import EvaluationsProjection
from projections.live_messages import SILENT
from projections.notifications import NotificationLog
from projections.principals import PrincipalsProjection
from projections.projects import ProjectsProjection
from projections.runner import AnyProjection, ProjectionRunner
from projections.service import ProjectionService
from projections.shared_decoding import SharedDecoding
from projections.test_sessions import DetectionsProjection, TestSessionsProjection
from projections.tokens import ApiTokensProjection
from projections.videos import VideosProjection
from storage.frames import PostgresFrameStore
from storage.migrate import migrate
from storage.read_model_schema import forget_dropped_read_models
from storage.server import ping
from verity.device_users import follow_device_users
from verity.nats_access import without_credentials
from verity.pools import guard, guard_async
from verity.settings import Settings
from verity.waiting import close_nats, connect_nats, open_when_ready
from verity.worker_registry import RunningWorkers, WorkerContext, serve_workers
from workers.detector_queue import DetectorQueue
from workers.ingest import DURABLE as INGEST_DURABLE
from workers.ingest_consumer import ingest_consumer
from workers.projection_rebuild import RebuildJobs
from workers.references import resolve

if TYPE_CHECKING:
    from verity.embedded import EmbeddedNats
    from verity.nats_access import NatsCredentials

log = logging.getLogger(__name__)

SETUP_ACTOR = service("setup").actor
"""What opening the store records (the Central Video Store project, made once)."""

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
    DevicesProjection,
    PrincipalsProjection,
    ApiTokensProjection,
)


@dataclass
class Endpoints:
    """Where PostgreSQL and NATS are, and the embedded servers we started (to stop them)."""

    database_url: str
    nats_url: str
    started: list[Any] = field(default_factory=list)
    nats_credentials: NatsCredentials | None = None
    """What Verity's processes connect to NATS with (None: the server asks for nothing)."""
    nats_server: EmbeddedNats | None = None
    """The embedded NATS this process started, whose device users it keeps up to date."""

    @property
    def nats_options(self) -> dict[str, str]:
        """`nats.connect` keyword arguments that authenticate (never logged)."""
        return {} if self.nats_credentials is None else self.nats_credentials.connect_options()


@contextlib.contextmanager
def servers(settings: Settings) -> Iterator[Endpoints]:
    """Use the configured servers, or the embedded ones under the data folder: those another
    process runs there already (any command beside `verity serve`), else started here."""
    from verity.embedded import EmbeddedNats, EmbeddedPostgres  # noqa: PLC0415 - only if needed
    from verity.nats_access import NatsAccess, NatsCredentials  # noqa: PLC0415 - bcrypt too

    started: list[Any] = []
    try:
        database_url = settings.database_url
        if database_url is None:
            pg = EmbeddedPostgres(settings.data_dir / "postgres")
            started.append(pg)
            database_url = pg.attach() or pg.start()  # beside `verity serve`: use its server
        nats_url = settings.nats_url
        embedded_nats = None
        if nats_url is None:
            folder = settings.data_dir / "nats"
            access = NatsAccess(folder, settings.detections_subject)
            embedded_nats = EmbeddedNats(folder, access=access)
            started.append(embedded_nats)
            nats_url = embedded_nats.attach() or embedded_nats.start()
            credentials: NatsCredentials | None = access.service
        elif settings.nats_user is not None:
            credentials = NatsCredentials(
                user=settings.nats_user, password=settings.nats_password or ""
            )
        else:
            credentials = None
        yield Endpoints(database_url, nats_url, started, credentials, embedded_nats)
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


def warm_up() -> None:
    """What a request would otherwise load on the event loop, loaded in a thread after start:
    scipy.stats (confidence intervals; seconds to import) and the import formats' JSON
    decoder (seconds to build). Start-up no longer waits for either."""
    import scipy.stats  # noqa: F401, PLC0415

    from formats.documents import prepare  # noqa: PLC0415

    prepare()


READ_MODELS = {cls.name: cls.tables for cls in PROJECTIONS}
"""Each read model's tables, for the start-up check of dropped ones."""


def open_application(database_url: str, pool_size: int = 8) -> Verity:
    """Migrate, then open the event store (the library needs the tables to exist first).

    A read model with a table dropped is reset with it (tracking row and failures too) before
    the repeatable DDL re-creates it, so its runner rebuilds it from the events at start."""
    migrate_database(database_url)
    app = Verity(env=eventsourcing_env(database_url, pool_size))
    if isinstance(app.recorder, PostgresApplicationRecorder):
        guard(app.recorder.datastore.pool)
    with recorded_as(EventMeta(actor=SETUP_ACTOR)):
        ensure_central_store(app)
    prebuild_decoders(event_classes())
    return app


def migrate_database(database_url: str) -> list[str]:
    """`migrate`, resetting first the read models that lost a table (see open_application)."""
    return migrate(database_url, before=_forget_dropped)


def _forget_dropped(conn: Any) -> None:
    for name in forget_dropped_read_models(conn, READ_MODELS):
        log.warning("read model %s had a table missing: rebuilding it from the events", name)


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
async def connected(
    settings: Settings,
    endpoints: Endpoints,
    stop: asyncio.Event,
    *,
    client_name: str,
    read_pool_size: int,
    write_pool_size: int,
    decode: Callable[[Verity], Callable[[Any], Any]] = lambda app: app.mapper.to_domain_event,
) -> AsyncIterator[WorkerContext]:
    """What every process running workers opens, in one order: the event store (migrated),
    the pools, NATS; closed in reverse on exit.

    Waits for PostgreSQL and NATS while they are down; setting `stop` (a signal) ends that
    wait with Stopped."""
    app = await open_when_ready(
        endpoints.database_url, stop, lambda url: open_application(url, settings.db_pool_size)
    )
    async with contextlib.AsyncExitStack() as opened:
        opened.callback(app.close)
        write_pool: ConnectionPool[Any] = guard(
            ConnectionPool(endpoints.database_url, min_size=1, max_size=write_pool_size, open=True)
        )
        opened.callback(write_pool.close)
        read_pool: AsyncConnectionPool[Any] = guard_async(
            AsyncConnectionPool(
                endpoints.database_url,
                min_size=min(2, read_pool_size),
                max_size=read_pool_size,
                open=False,
                kwargs={"autocommit": True},  # reads are single statements: skip BEGIN/COMMIT
            )
        )
        await read_pool.open()
        opened.push_async_callback(read_pool.close)
        nc = await connect_nats(endpoints.nats_url, client_name, stop, endpoints.nats_options)
        opened.push_async_callback(close_nats, nc)
        yield WorkerContext(
            settings=settings,
            database_url=endpoints.database_url,
            app=app,
            nc=nc,
            read_pool=read_pool,
            write_pool=write_pool,
            decode=decode(app),
            record=frame_recorder(PostgresFrameStore(app)),
        )


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    endpoints: Endpoints,
    *,
    with_projections: bool = True,
    workers: Collection[str] | None = None,
    detector_options: dict[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[Services]:
    """Everything `verity serve` runs in one process, torn down in reverse on exit.

    `workers` (default: those the VERITY_SERVE_* settings enable) are built and run exactly
    as `verity worker NAME` runs them (verity/worker_registry.py). Start-up waits for
    PostgreSQL and NATS while they are down; setting `stop` (a signal) ends that wait with
    Stopped, and later stops the workers. `detector_options` replace
    parts of the detector worker (its detector, frame reader, inspection, timings)."""
    stop = asyncio.Event() if stop is None else stop
    async with connected(
        settings,
        endpoints,
        stop,
        client_name="verity-api",
        read_pool_size=settings.db_pool_size,
        write_pool_size=len(PROJECTIONS) + 3,  # a connection per runner thread + relay
        decode=lambda app: SharedDecoding(app.mapper.to_domain_event),
    ) as ctx:
        runners = await asyncio.to_thread(
            projection_runners, ctx.app, ctx.write_pool, settings.projection_batch_size, ctx.decode
        )
        read_side = ProjectionService(runners, endpoints.database_url)
        if with_projections:
            await asyncio.to_thread(read_side.catch_up_once)
            read_side.start()
        hub = RoomHub(resolve=lambda position: resolve(ctx.app, position))
        started = RunningWorkers(stop)
        device_users = None
        if endpoints.nats_server is not None and endpoints.nats_server.access is not None:
            device_users = asyncio.create_task(
                follow_device_users(
                    endpoints.nats_server,
                    ctx.read_pool,
                    lambda: read_side.reached([DevicesProjection.name]),
                    stop,
                ),
                name="nats-device-users",
            )
        try:
            await _fan_out_to_rooms(ctx.nc, settings, hub)
            context = (
                dataclasses.replace(ctx, detector_options=detector_options)
                if detector_options
                else ctx
            )
            await started.start(context, serve_workers(settings) if workers is None else workers)
            device_url = without_credentials(endpoints.nats_url)
            services = _services(context, read_side, hub, started, device_url)
            warming = asyncio.create_task(asyncio.to_thread(warm_up))
            try:
                yield services
            finally:
                await services.frames.close()  # posts already queued are stored and answered
                await warming
        finally:
            if device_users is not None:
                device_users.cancel()
                await asyncio.gather(device_users, return_exceptions=True)
            await started.close()
            read_side.stop()


def _services(
    ctx: WorkerContext,
    read_side: ProjectionService,
    hub: RoomHub,
    workers: RunningWorkers,
    nats_url: str,
) -> Services:
    settings, read_pool, nc = ctx.settings, ctx.read_pool, ctx.nc

    async def check_nats() -> str | None:
        return None if nc.is_connected else "disconnected"

    return Services(
        app=ctx.app,
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
            max_projection_lag=settings.health_max_lag,
            nats_url=nats_url,
            detections_subject=settings.detections_subject,
        ),
        frames=GroupCommit(ctx.app, ctx.record),
        health_checks=(
            ("database", lambda: _check_database(read_pool)),
            ("nats", check_nats),
            *workers.health_checks(),
        ),
        hub=hub,
        stopping=workers.stop,
        ingest_consumer=lambda: ingest_consumer(
            nc.jetstream(), settings.detections_stream, INGEST_DURABLE
        ),
        detector_queue=DetectorQueue(nc.jetstream(), settings.nats_prefix),
        rebuilds=RebuildJobs(
            ctx.database_url,
            read_side.runners,
            nc.publish,
            settings.live_subject,
            asyncio.get_running_loop(),
            on_swapped=read_side.swapped,
        ),
    )
