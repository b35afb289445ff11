"""Video worker: every uploaded video's quality and browser-playable rendition, off the API
process.

Fed by the stored events the relay publishes: a durable JetStream consumer on
`<prefix>.events.video.uploaded` in the events stream (which the relay creates; the worker waits
for it), so an upload made while no worker ran is assessed when one starts, and several workers
share the uploads. Per upload: `Video.ProcessingStarted` -> sample and measure frames in a thread
(workers/video_sampling.py) -> when browsers cannot play the upload, transcode it in a thread
(workers/renditions.py) and record `Video.RenditionRecorded` or `Video.RenditionFailed` ->
`Video.QualityAssessed`, or `Video.ProcessingFailed` with the reason when the file cannot be
decoded. The message is acked only after the outcome is stored;
each step is idempotent (commands/video_quality.py), so a redelivery or a second worker records
nothing twice. A database that is away naks the message for a later try.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar
from uuid import UUID

import anyio.to_thread
import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from commands.application import Verity
from commands.context import run_as
from commands.renditions import FailRendition, RecordRendition, fail_rendition, record_rendition
from commands.video_quality import (
    FailVideoProcessing,
    RecordVideoQuality,
    StartVideoProcessing,
    fail_video_processing,
    record_video_quality,
    start_video_processing,
)
from domain.access import service
from domain.errors import NotFound
from domain.events import EventMeta
from domain.renditions import Rendition, needs_rendition, rendition_filename
from domain.video_quality import SAMPLE_COUNT, QualityAssessment
from domain.videos import Video
from projections.live_messages import live_subject, video_progress_message
from workers.renditions import Halted, RenditionRefused, probe, transcode
from workers.video_sampling import Progress, Undecodable, assess_file

log = logging.getLogger(__name__)

ACTOR = service("video-worker").actor
DURABLE = "verity-video"
ACK_WAIT = 60.0
"""Seconds an unacked upload is held before JetStream hands it to another worker."""
HEARTBEAT = 10.0
"""While assessing, the worker tells JetStream it is still working this often."""
MAX_DELIVER = 1000
"""Deliveries of one upload before JetStream gives up on it: only a store that keeps failing
naks (a video's own failure is recorded), so at `RETRY_DELAY` apart this outlasts a database
outage of half an hour."""
RETRY_DELAY = 2.0
PROGRESS_EVERY = 0.25
"""Seconds between live progress messages of one video."""
WAIT_FOR_STREAM = 0.5

C = TypeVar("C")
Publish = Callable[[str, bytes], Awaitable[None]]
Assess = Callable[[Path, int, Progress | None], QualityAssessment]
T = TypeVar("T")


class _Uploaded(msgspec.Struct, rename="camel"):
    """What the worker reads of a relayed `video.uploaded` envelope (a reference has it too)."""

    id: str
    aggregate_id: UUID
    correlation_id: str | None = None


_envelope = msgspec.json.Decoder(_Uploaded)


@dataclass
class VideoStats:
    assessed: int = 0
    failed: int = 0
    renditions: int = 0
    renditions_failed: int = 0
    skipped: int = 0
    """Redeliveries and uploads another worker finished, or videos deleted since."""
    retried: int = 0
    last_error: str | None = None


class VideoWorker:
    def __init__(
        self,
        nc: NatsClient,
        app: Verity,
        *,
        stream: str,
        events_subject: str,
        uploads_dir: Path,
        publish: Publish | None = None,
        live_prefix: str = "",
        durable: str = DURABLE,
        ack_wait: float = ACK_WAIT,
        samples: int = SAMPLE_COUNT,
        assess: Assess = assess_file,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.app = app
        self.stream = stream
        self.subject = f"{events_subject}.video.uploaded"
        self.uploads_dir = uploads_dir
        self.publish = publish
        self.live_prefix = live_prefix
        self.durable = durable
        self.ack_wait = ack_wait
        self.samples = samples
        self.assess = assess
        self.stats = VideoStats()
        self.halt = threading.Event()
        """Set when the worker stops: a transcode in a thread gives up at its next frame."""

    async def prepare(self) -> None:
        """The durable consumer; NotFoundError while the relay has not made the stream yet."""
        await self.js.stream_info(self.stream)
        config = ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            filter_subject=self.subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=MAX_DELIVER,
            max_ack_pending=64,
        )
        await self.js.add_consumer(self.stream, config=config)

    async def _ready(self, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            try:
                await self.prepare()
            except NotFoundError:
                log.info("video worker: waiting for stream %s (the relay makes it)", self.stream)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), WAIT_FOR_STREAM)
            else:
                return True
        return False

    async def run(self, stop: asyncio.Event) -> None:
        if not await self._ready(stop):
            return
        sub = await self.js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
        log.info("video worker ready: consuming %s as %s", self.subject, self.durable)
        watcher = asyncio.create_task(self._halt_on(stop))
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(1, timeout=0.5)
                except TimeoutError:
                    continue
                for msg in msgs:
                    await self.handle(msg)
        finally:
            watcher.cancel()
            with contextlib.suppress(Exception):  # the connection may be closing
                await sub.unsubscribe()

    async def _halt_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.halt.set()

    async def handle(self, msg: Msg) -> None:
        """One upload: settle the message once its outcome is stored (or proves unneeded)."""
        try:
            env = _envelope.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            log.warning("video worker: undecodable upload envelope dropped (%s)", err)
            await msg.term()
            return
        meta = EventMeta(
            actor=ACTOR, correlation_id=_uuid(env.correlation_id), causation_id=_uuid(env.id)
        )
        try:
            await self.process(env.aggregate_id, meta, msg)
        except Halted:  # stopping mid-transcode: another worker (or the next start) redoes it
            await msg.nak()
            return
        except Exception as err:  # the store is away: try again later, maybe elsewhere
            self.stats.retried += 1
            self.stats.last_error = f"{type(err).__name__}: {err}"
            log.exception("video worker: %s not processed; it will be retried", env.aggregate_id)
            await msg.nak(delay=RETRY_DELAY)
            return
        self.stats.last_error = None
        await msg.ack()

    async def process(self, video_id: UUID, meta: EventMeta, msg: Msg | None = None) -> None:
        """Start, assess, record. Exceptions are the store's (retry); the video's become
        `ProcessingFailed`."""
        start = StartVideoProcessing(video_id=video_id, samples=self.samples)
        try:
            started = await anyio.to_thread.run_sync(
                run_as, meta, start_video_processing, start, self.app
            )
        except NotFound:
            self.stats.skipped += 1  # deleted since (or another store's event): nothing to do
            return
        if started.done:
            self.stats.skipped += 1
            return
        path = self.uploads_dir / started.filename
        try:
            assessment: QualityAssessment | None = await self._assess(video_id, path, msg)
            reason = ""
        except Exception as err:
            assessment = None
            reason = str(err) if isinstance(err, Undecodable) else f"{type(err).__name__}: {err}"
        if not started.rendition_settled:  # before the outcome: `completed` means playable
            await self._render(video_id, path, meta, msg)
        if assessment is None:
            log.warning("video %s cannot be assessed: %s", video_id, reason)
            failed = FailVideoProcessing(video_id=video_id, reason=reason)
            if await self._record(meta, fail_video_processing, failed):
                self.stats.failed += 1
            return
        record = RecordVideoQuality(video_id=video_id, assessment=assessment)
        if not await self._record(meta, record_video_quality, record):
            return
        self.stats.assessed += 1
        log.info(
            "video %s assessed in %.2fs: score %.2f %s",
            video_id,
            assessment.seconds,
            assessment.score,
            ",".join(assessment.flags) or "no flags",
        )

    async def _render(self, video_id: UUID, path: Path, meta: EventMeta, msg: Msg | None) -> None:
        """A rendition when the upload's codec or container is not one browsers play; its
        failure (or refusal) is recorded and the original stays the video's `url`."""
        try:
            source = await anyio.to_thread.run_sync(probe, path)
            if not needs_rendition(path.suffix, source.codec, source.pixels):
                return
            work = partial(transcode, path, self.uploads_dir, video_id, halt=self.halt)
            rendition: Rendition = await self._in_thread(video_id, "rendition", msg, work)
        except Halted:
            raise
        except Exception as err:
            why = str(err) if isinstance(err, RenditionRefused) else f"{type(err).__name__}: {err}"
            log.warning("video %s: no rendition: %s", video_id, why)
            if await self._record(
                meta, fail_rendition, FailRendition(video_id=video_id, reason=why)
            ):
                self.stats.renditions_failed += 1
            return
        recorded = RecordRendition(video_id=video_id, rendition=rendition)
        if not await self._record(meta, record_rendition, recorded):
            if await anyio.to_thread.run_sync(self._deleted, video_id):  # its files went too
                (self.uploads_dir / rendition_filename(video_id)).unlink(missing_ok=True)
            return
        self.stats.renditions += 1
        log.info(
            "video %s: %s rendition of %d frames in %.1fs",
            video_id,
            rendition.codec,
            rendition.frame_count,
            rendition.seconds,
        )

    def _deleted(self, video_id: UUID) -> bool:
        try:
            return self.app.load(Video, video_id).deleted
        except NotFound:
            return True

    async def _record(self, meta: EventMeta, handler: Callable[[C, Verity], Any], cmd: C) -> bool:
        """Store an outcome; False when nothing was stored: another worker's outcome came first,
        or the video was deleted meanwhile."""
        try:
            position = await anyio.to_thread.run_sync(run_as, meta, handler, cmd, self.app)
        except NotFound:
            position = None
        if position is None:
            self.stats.skipped += 1
            return False
        return True

    async def _assess(self, video_id: UUID, path: Path, msg: Msg | None) -> QualityAssessment:
        work = partial(self.assess, path, self.samples)
        return await self._in_thread(video_id, "quality", msg, work)

    async def _in_thread(
        self, video_id: UUID, stage: str, msg: Msg | None, work: Callable[[Progress], T]
    ) -> T:
        """`work(progress)` in a thread; meanwhile heartbeats to JetStream and live progress
        of `stage`."""
        loop = asyncio.get_running_loop()
        latest: list[tuple[int, int]] = []

        def progress(done: int, total: int) -> None:
            latest.append((done, total))

        job = loop.run_in_executor(None, work, progress)
        beat = time.monotonic()
        while True:
            done, _ = await asyncio.wait({job}, timeout=PROGRESS_EVERY)
            if latest:
                await self._progress(video_id, stage, *latest[-1])
                latest.clear()
            if done:
                return job.result()
            if msg is not None and time.monotonic() - beat >= HEARTBEAT:
                beat = time.monotonic()
                await msg.in_progress()

    async def _progress(self, video_id: UUID, stage: str, done: int, total: int) -> None:
        if self.publish is None:
            return
        message, room = video_progress_message(video_id, done, total, stage)
        try:
            await self.publish(live_subject(self.live_prefix, room), message)
        except Exception:  # progress is a nicety; the assessment goes on
            log.debug("video progress not published", exc_info=True)

    async def health(self) -> str | None:
        return self.stats.last_error


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


class VideoSettings(Protocol):
    """What the worker reads of the settings (verity/settings.py, outside this layer)."""

    @property
    def events_stream(self) -> str: ...
    @property
    def events_subject(self) -> str: ...
    @property
    def uploads_dir(self) -> Path: ...
    @property
    def live_subject(self) -> str: ...


def build_video_worker(nc: NatsClient, app: Verity, settings: VideoSettings) -> VideoWorker:
    """The video worker as `verity serve` and `verity worker video` run it."""

    async def publish(subject: str, payload: bytes) -> None:
        await nc.publish(subject, payload)

    return VideoWorker(
        nc,
        app,
        stream=settings.events_stream,
        events_subject=settings.events_subject,
        uploads_dir=settings.uploads_dir,
        publish=publish,
        live_prefix=settings.live_subject,
    )
