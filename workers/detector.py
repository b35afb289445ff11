"""Detector worker: takes runs and model inspections from the JetStream work queue.

One message at a time per worker; start several (`verity worker detector`, e.g. on GPU
machines) and they share the queue. While a message is being worked on the worker tells
JetStream so every `ack_wait / 3` seconds, so a long run is never handed to a second worker;
a worker that dies stops doing so, and after `ack_wait` the run goes to another, which resumes
it after the last frame it finds recorded. A worker asked to stop ends its run between two
batches and hands the message back at once. Inspection loads weights only in a subprocess
(`run_inspection_subprocess`): a `.pt` is a pickle, and unpickling runs code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio.to_thread
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from psycopg_pool import AsyncConnectionPool

from commands.application import Verity
from commands.context import run_as
from commands.detection_runs import RunState
from commands.detections import FrameRecorder
from commands.detector_models import RecordInspection, load_model, record_inspection
from domain.access import service
from domain.detector_models import Inspection, ModelStatus
from domain.errors import Conflict
from domain.events import EventMeta, recorded_as
from projections.detection_runs import waiting_runs
from projections.detector_models import pending_inspections
from projections.live_messages import (
    detection_progress_message,
    ground_truth_message,
    live_subject,
)
from workers.detection_run import OpenDetector, Outcome, ReadFrames, RunExecutor
from workers.detector_queue import INSPECT, RUN, DetectorQueue
from workers.inference.api import ModelInfo, WeightsRefused

log = logging.getLogger(__name__)

DURABLE = "verity-detector"
ACTOR = service("detector").actor
MAX_DELIVER = 20
"""Deliveries of one message: a run whose worker keeps dying (out of memory, say) is left
`running` after this many, rather than taking down every worker in turn."""
Inspect = Callable[[Path, float], ModelInfo]


class DetectorWorker:
    def __init__(
        self,
        nc: NatsClient,
        app: Verity,
        *,
        record: FrameRecorder,
        prefix: str,
        live_prefix: str,
        models_dir: Path,
        uploads_dir: Path,
        open_detector: OpenDetector,
        read_frames: ReadFrames,
        inspect: Inspect,
        read_pool: AsyncConnectionPool[Any] | None = None,
        ack_wait: float = 30.0,
        progress_every: float = 0.5,
        inspect_timeout: float = 300.0,
        sweep_every: float = 15.0,
        name: str | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.app = app
        self.queue = DetectorQueue(self.js, prefix)
        self.live_prefix = live_prefix
        self.models_dir = models_dir
        self.inspect = inspect
        self.read_pool = read_pool
        self.ack_wait = ack_wait
        self.inspect_timeout = inspect_timeout
        self.sweep_every = sweep_every
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.executor = RunExecutor(
            app,
            record=record,
            worker=self.name,
            models_dir=models_dir,
            uploads_dir=uploads_dir,
            open_detector=open_detector,
            read_frames=read_frames,
            progress_every=progress_every,
        )
        self.last_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def prepare(self) -> None:
        await self.queue.ensure()
        config = ConsumerConfig(
            name=DURABLE,
            durable_name=DURABLE,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=MAX_DELIVER,
            max_ack_pending=1000,
        )
        try:
            await self.js.consumer_info(self.queue.stream, DURABLE)
        except NotFoundError:
            await self.js.add_consumer(self.queue.stream, config=config)

    async def run(self, stop: asyncio.Event) -> None:
        await self.prepare()
        self._loop = asyncio.get_running_loop()
        sub = await self.js.pull_subscribe_bind(DURABLE, self.queue.stream)
        sweeper = asyncio.create_task(self._sweep(stop), name="detector-sweep")
        log.info("detector worker %s ready on %s", self.name, self.queue.stream)
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(1, timeout=1.0)
                except TimeoutError:
                    continue
                for msg in msgs:
                    await self.handle(msg, stop)
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def handle(self, msg: Msg, stop: asyncio.Event) -> None:
        """One message: work on it while telling JetStream it is in progress; ack when done."""
        kind = msg.subject.rsplit(".", 1)[-1]
        try:
            ident = UUID(msg.data.decode())
        except ValueError:
            log.warning("detector queue: not an id on %s: %r", msg.subject, msg.data[:64])
            await msg.term()
            return
        beating = asyncio.create_task(self._heartbeat(msg))
        try:
            if kind == RUN:
                done = await self._run(ident, stop)
            elif kind == INSPECT:
                done = await self._inspect(ident)
            else:
                await msg.term()
                return
        except Exception as err:  # the database, say: the message comes back to a worker
            self.last_error = f"{type(err).__name__}: {err}"
            log.exception("detector: %s %s failed; it will be redelivered", kind, ident)
            await msg.nak(delay=2.0)
            return
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
        self.last_error = None
        await (msg.ack() if done else msg.nak())

    async def _heartbeat(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(max(self.ack_wait / 3, 0.1))
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _run(self, run_id: UUID, stop: asyncio.Event) -> bool:
        """Execute the run; False when stopped before its end (hand it back)."""
        halt = threading.Event()
        watcher = asyncio.create_task(_relay_stop(stop, halt))
        meta = EventMeta(actor=ACTOR, correlation_id=run_id, causation_id=run_id)

        def work() -> Outcome:
            with recorded_as(meta):
                return self.executor.perform(run_id, halt, self._report)

        try:
            outcome = await anyio.to_thread.run_sync(work)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        return outcome.status is not None

    def _report(self, state: RunState, rate: float | None) -> None:
        """Live progress from the run's thread onto the event loop (never waits for it)."""
        loop = self._loop
        if loop is None:
            return
        total = _planned(state)
        status = state.status.value
        messages = [
            (
                f"video:{state.video_id}",
                detection_progress_message(
                    state.id,
                    state.video_id,
                    state.mode.value,
                    status,
                    (state.frames_done, total, state.detections),
                    rate,
                ),
            )
        ]
        if status == "completed" and state.mode.value == "ground_truth":
            messages.extend(
                (room, ground_truth_message(state.video_id, state.id, state.detections, room))
                for room in (f"video:{state.video_id}", "dashboard")
            )
        for room, body in messages:
            subject = live_subject(self.live_prefix, room)
            asyncio.run_coroutine_threadsafe(self.nc.publish(subject, body), loop)

    async def _inspect(self, model_id: UUID) -> bool:
        model = await anyio.to_thread.run_sync(load_model, self.app, model_id)
        if model.status != ModelStatus.INSPECTING:
            return True
        path = self.models_dir / model.filename
        inspection, refusal = None, None
        try:
            info = await anyio.to_thread.run_sync(self.inspect, path, self.inspect_timeout)
        except WeightsRefused as err:
            refusal = err.reason
        else:
            inspection = Inspection(
                framework=info.framework,
                class_names=tuple(info.class_names)[:1000],
                input_size=info.input_size,
                task=info.task,
            )
        cmd = RecordInspection(id=model_id, inspection=inspection, refusal=refusal)
        meta = EventMeta(actor=ACTOR, correlation_id=model_id, causation_id=model_id)
        with contextlib.suppress(Conflict):  # another worker's inspection was recorded first
            await anyio.to_thread.run_sync(run_as, meta, record_inspection, cmd, self.app)
        return True

    async def _sweep(self, stop: asyncio.Event) -> None:
        """Enqueue again what waits longer than it should (a publish lost to an outage)."""
        if self.read_pool is None:
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.sweep_every)
            if stop.is_set():
                return
            try:
                async with self.read_pool.connection() as conn:
                    runs = await waiting_runs(conn, self.sweep_every)
                    models = await pending_inspections(conn, self.sweep_every * 20)
                for run_id in runs:
                    await self.queue.run(run_id)
                for model_id in models:
                    await self.queue.inspect(model_id)
            except Exception as err:  # next round
                log.warning("detector sweep failed: %s", err)


def _planned(state: RunState) -> int:
    stride = max(state.parameters.frame_stride, 1)
    return -(-state.total_frames // stride) if state.total_frames > 0 else 0


async def _relay_stop(stop: asyncio.Event, halt: threading.Event) -> None:
    await stop.wait()
    halt.set()
