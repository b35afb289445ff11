"""Every worker, built one way, whether `verity serve` runs it or `verity worker NAME` does.

A worker is one registry entry: its name, how to build it from what a process has opened (the
event store, NATS, the pools), and which setting toggles it in `verity serve`. Both start-ups
(verity/bootstrap.py `running`, verity/worker_command.py) build workers only through here, so
a worker cannot drift between them (it did: an ingest run alone once sent no `test_progress`).

The workers' modules are imported when a worker is built: the CLI reads the names (and help)
without loading NATS, psycopg or numpy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from verity.settings import Settings

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    from commands.application import Verity
    from commands.detections import FrameRecorder
    from workers.detector import DetectorWorker

log = logging.getLogger(__name__)

STOP_GRACE = 1.0
"""Seconds workers get to finish what they hold (an ingest batch being stored) once stopped,
before they are cancelled: a stop request is honoured within moments."""


@dataclass(frozen=True)
class WorkerContext:
    """What a process opens once and every worker in it shares."""

    settings: Settings
    database_url: str
    app: Verity
    nc: NatsClient
    read_pool: AsyncConnectionPool[Any]
    """Autocommit reads (read-model queries)."""
    write_pool: ConnectionPool[Any]
    """Blocking connections (the notification log, tracking positions)."""
    decode: Callable[[Any], Any]
    """Stored notification -> domain event (shared with the projections inside serve)."""
    record: FrameRecorder
    """The process's one frame recorder (its cache of open sessions is shared by the ingest
    worker, the detector worker and, inside serve, the HTTP group commit)."""
    detector_options: dict[str, Any] = field(default_factory=dict)
    """Parts of the detector worker replaced (tests: a fake detector, short timings)."""


@dataclass(frozen=True)
class Worker:
    """A built worker: run until stop (started again if it fails), checked by /health."""

    run: Callable[[asyncio.Event], Awaitable[None]]
    problem: Callable[[], str | None]
    """None when healthy, else what is wrong (the /health check of the same name)."""
    summary: Callable[[], str]
    """One line printed when a worker run alone stops."""


@dataclass(frozen=True)
class WorkerEntry:
    name: str
    help: str
    build: Callable[[WorkerContext], Awaitable[Worker]]
    in_serve: Callable[[Settings], bool]
    """Whether `verity serve` runs it too (a VERITY_SERVE_* setting)."""


async def build_relay(ctx: WorkerContext) -> Worker:
    from projections.notifications import NotificationLog  # noqa: PLC0415 - see module doc
    from workers.relay import Relay  # noqa: PLC0415

    relay = Relay(
        ctx.nc,
        NotificationLog(ctx.write_pool),
        ctx.decode,
        ctx.write_pool,
        ctx.database_url,
        ctx.settings.events_stream,
        ctx.settings.events_subject,
        adopt_stream=ctx.settings.relay_adopt_stream,
    )
    return Worker(
        run=relay.run,
        problem=lambda: relay.last_error,
        summary=lambda: f"{relay.published} events published",
    )


async def build_ingest(ctx: WorkerContext) -> Worker:
    from projections.test_sessions import session_progress  # noqa: PLC0415 - see module doc
    from workers.ingest import IngestWorker  # noqa: PLC0415
    from workers.live import LiveCoalescer  # noqa: PLC0415

    async def publish(subject: str, payload: bytes) -> None:
        await ctx.nc.publish(subject, payload)

    live = LiveCoalescer(
        publish,
        ctx.settings.live_subject,
        counts=lambda ids: session_progress(ctx.read_pool, ids),
    )
    ingest = IngestWorker(
        ctx.nc,
        ctx.app,
        stream=ctx.settings.detections_stream,
        subject_prefix=ctx.settings.detections_subject,
        live=live,
        record=ctx.record,
    )
    return Worker(
        run=ingest.run,
        problem=lambda: ingest.stats.last_error,
        summary=lambda: str(ingest.stats),
    )


async def build_evaluator(ctx: WorkerContext) -> Worker:
    from workers.evaluator import Evaluator  # noqa: PLC0415 - see module doc

    evaluator = Evaluator(ctx.app, ctx.read_pool, ctx.nc.publish, ctx.settings.live_subject)
    # Subscribed before the process reports itself started: frames relayed from then on count.
    await evaluator.subscribe(ctx.nc, ctx.settings.events_subject)

    async def run(stop: asyncio.Event) -> None:
        if not evaluator.subscriptions:  # started again after a failure
            await evaluator.subscribe(ctx.nc, ctx.settings.events_subject)
        try:
            await evaluator.run(stop)
        finally:
            evaluator.subscriptions = []  # run() has unsubscribed them

    return Worker(
        run=run,
        problem=lambda: evaluator.last_error,
        summary=lambda: f"{evaluator.evaluated} evaluations, {evaluator.frames} frames",
    )


async def build_video(ctx: WorkerContext) -> Worker:
    from workers.video import build_video_worker  # noqa: PLC0415 - see module doc

    video = build_video_worker(ctx.nc, ctx.app, ctx.settings)
    return Worker(
        run=video.run,
        problem=lambda: video.stats.last_error,
        summary=lambda: str(video.stats),
    )


def build_detector_worker(
    nc: NatsClient,
    app: Verity,
    settings: Settings,
    record: FrameRecorder,
    read_pool: AsyncConnectionPool[Any] | None = None,
    **overrides: Any,
) -> DetectorWorker:
    """The detector worker: runs and model inspections from the work queue. Inference is
    imported lazily (torch loads only when a run or an inspection needs it)."""
    from workers import inference  # noqa: PLC0415 - see module doc
    from workers.detector import DetectorWorker  # noqa: PLC0415

    options: dict[str, Any] = {
        "open_detector": inference.open_detector,
        "read_frames": inference.read_frames,
        "inspect": inference.run_inspection_subprocess,
        **overrides,
    }
    return DetectorWorker(
        nc,
        app,
        record=record,
        prefix=settings.nats_prefix,
        live_prefix=settings.live_subject,
        models_dir=settings.models_dir,
        uploads_dir=settings.uploads_dir,
        read_pool=read_pool,
        **options,
    )


async def build_detector(ctx: WorkerContext) -> Worker:
    detector = build_detector_worker(
        ctx.nc, ctx.app, ctx.settings, ctx.record, ctx.read_pool, **ctx.detector_options
    )
    return Worker(
        run=detector.run,
        problem=lambda: detector.last_error,
        summary=lambda: f"detector {detector.name} stopped",
    )


WORKERS: dict[str, WorkerEntry] = {
    entry.name: entry
    for entry in (
        WorkerEntry(
            "relay",
            "publish stored events to NATS (run exactly one)",
            build_relay,
            lambda s: s.serve_relay,
        ),
        WorkerEntry(
            "ingest",
            "store device frames from NATS (scale out by starting more)",
            build_ingest,
            lambda s: s.serve_ingest,
        ),
        WorkerEntry(
            "evaluator",
            "completion evaluations and running figures on the live subject",
            build_evaluator,
            lambda s: s.serve_evaluator,
        ),
        WorkerEntry(
            "video",
            "quality and browser-playable renditions of uploads (scale out by starting more)",
            build_video,
            lambda s: s.serve_video,
        ),
        WorkerEntry(
            "detector",
            "detection runs and model inspections from the work queue (scale out by starting more)",
            build_detector,
            lambda s: s.serve_detector,
        ),
    )
}
"""In /health order. A new worker (detector, video) is one more entry here."""


def serve_workers(settings: Settings) -> list[str]:
    """The workers `verity serve` runs under these settings."""
    return [name for name, entry in WORKERS.items() if entry.in_serve(settings)]


class RunningWorkers:
    """Workers started in one process, each kept running until `stop` is set."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.workers: dict[str, Worker] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, ctx: WorkerContext, names: Iterable[str]) -> None:
        from verity.waiting import keep_running  # noqa: PLC0415 - see module doc

        for name in names:
            worker = await WORKERS[name].build(ctx)
            self.workers[name] = worker
            self.tasks.append(
                asyncio.create_task(keep_running(name, worker.run, self.stop), name=name)
            )

    def health_checks(self) -> list[tuple[str, Callable[[], Awaitable[str | None]]]]:
        """One check per registered worker, healthy where this process does not run it."""

        def check(name: str) -> Callable[[], Awaitable[str | None]]:
            async def problem() -> str | None:
                worker = self.workers.get(name)
                return None if worker is None else worker.problem()

            return problem

        return [(name, check(name)) for name in WORKERS]

    async def close(self) -> None:
        """Set `stop`, give the workers a moment to finish what they hold, cancel the rest."""
        self.stop.set()
        if self.tasks:
            _, late = await asyncio.wait(self.tasks, timeout=STOP_GRACE)
            for task in late:
                log.info("%s did not stop within %.1fs; cancelling it", task.get_name(), STOP_GRACE)
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
