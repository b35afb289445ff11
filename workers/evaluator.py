"""Evaluator: scores sessions when they complete, and keeps running figures while they run.

Fed by the stored events the relay publishes (core-NATS subscription to
`<prefix>.events.frame_batch.recorded`, `<prefix>.events.device_frame.recorded` for frames
stored one per event before batching, and `<prefix>.events.test_session.*`), so frames from any
ingest path count. Every `interval` seconds it folds all frames received since the last tick
into each running session's :class:`RunningEvaluation` (one vectorised batch per session, so a
slow tick only makes the next batch bigger: no backlog of ticks) and publishes `test_progress`
with running precision/recall on the live subject. A completed session is evaluated in full,
from the read models, once they include everything up to its completion; a sweep of the read
model catches completions whose message was missed. Running figures are provisional; the
completion evaluation is the recorded truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

import anyio.to_thread
import msgspec
import numpy as np
from psycopg_pool import AsyncConnectionPool

from commands.application import Verity
from commands.context import run_as
from commands.evaluation_inputs import DEFAULT_FPS, ground_truth_of
from commands.evaluations import (
    Evaluated,
    EvaluateSession,
    annotation_history,
    config_for,
    evaluate_on_completion,
)
from domain.access import service
from domain.errors import ConcurrentModification
from domain.evaluation import Counts
from domain.evaluations import completion_evaluation_id
from domain.events import EventMeta
from domain.ground_truth import counts_as_ground_truth
from domain.running_evaluation import DetectionBatch, RunningEvaluation
from domain.tracks import interpolate_track
from projections.envelopes import BatchData, BatchFrame, FrameData, decoder
from projections.evaluation_sources import load_sources
from projections.evaluations import completed_unevaluated
from projections.live_messages import (
    completed_message,
    evaluation_failed_message,
    live_subject,
    progress_message,
    session_room,
)
from projections.test_sessions import SessionCounts, session_detections, session_progress
from storage.tracking import tracked_positions
from workers.references import body_of

log = logging.getLogger(__name__)
ACTOR = service("evaluator").actor
WATCHED = ("test_sessions_v1", "detections_v1", "annotations_v1")
RESULTS_READ_MODEL = "evaluations_v1"
VISIBLE_WAIT_S = 5.0
"""How long `test_completed` waits for the results read model before it goes out anyway."""

Publish = Callable[[str, bytes], Awaitable[None]]


Frame = FrameData | BatchFrame

_frame_decoder = decoder(FrameData)
_batch_decoder = decoder(BatchData)
_session_decoder = decoder(dict[str, Any])
"""Session events are small; only the envelope's header is read (msgspec cannot take `Raw`
in the envelope's optional `data`: every such decode failed and completions waited for the
sweep)."""


def batch_of(frames: Sequence[Frame], fps: float | None) -> DetectionBatch:
    """One columnar batch from whole frames (a missing frame number comes from the time)."""
    rate = fps or DEFAULT_FPS
    numbers = [
        f.frame_number if f.frame_number is not None else round(f.video_time * rate) for f in frames
    ]
    counts = [len(f.detections) for f in frames]
    dets = [d for f in frames for d in f.detections]
    nan_box = (np.nan, np.nan, np.nan, np.nan)
    vocab: dict[str, int] = {}
    codes = [vocab.setdefault(d.class_label, len(vocab)) for d in dets]
    return DetectionBatch(
        frames=np.unique(np.asarray(numbers, dtype=np.int64)),
        frame=np.repeat(np.asarray(numbers, dtype=np.int64), counts),
        label=np.asarray(codes, dtype=np.int64),
        classes=tuple(vocab),  # stored labels are canonical (domain.vru)
        score=np.asarray(
            [1.0 if d.confidence is None else d.confidence for d in dets], dtype=np.float64
        ),
        box=np.asarray([d.box or nan_box for d in dets], dtype=np.float64).reshape(-1, 4),
        time_s=np.repeat(np.asarray([f.video_time for f in frames], dtype=np.float64), counts),
    )


class _Running:
    __slots__ = ("evaluation", "fps")

    def __init__(self, evaluation: RunningEvaluation, fps: float | None) -> None:
        self.evaluation = evaluation
        self.fps = fps


class Evaluator:
    def __init__(
        self,
        app: Verity,
        pool: AsyncConnectionPool[Any],
        publish: Publish,
        live_prefix: str,
        *,
        interval: float = 1.0,
        sweep_interval: float = 5.0,
    ) -> None:
        self.app = app
        self.pool = pool
        self.publish = publish
        self.live_prefix = live_prefix
        self.interval = interval
        self.sweep_interval = sweep_interval
        self.buffer: dict[UUID, list[Frame]] = defaultdict(list)
        self.running: dict[UUID, _Running] = {}
        self.completed: dict[UUID, tuple[int, EventMeta]] = {}
        self.evaluated = 0
        self.frames = 0
        self.last_error: str | None = None
        self.last_tick_s = 0.0
        self.subscriptions: list[Any] = []

    # --- NATS callbacks: cheap, never block -----------------------------------------------

    def on_frame(self, payload: bytes) -> None:
        try:
            env = _frame_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("evaluator: undecodable frame envelope skipped")
            return
        if env.data is None:  # a reference: `subscribe` resolves them, so never here
            return
        self.buffer[env.data.session_id].append(env.data)
        self.frames += 1

    def on_batch(self, payload: bytes) -> None:
        try:
            env = _batch_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("evaluator: undecodable frame batch envelope skipped")
            return
        if env.data is None:
            return
        self.buffer[env.data.session_id].extend(env.data.frames)
        self.frames += len(env.data.frames)

    def on_session(self, payload: bytes) -> None:
        try:
            env = _session_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("evaluator: undecodable session envelope skipped")
            return
        if env.type == "completed":
            meta = EventMeta(
                actor=ACTOR, correlation_id=_uuid(env.correlation_id), causation_id=_uuid(env.id)
            )
            self.completed[UUID(env.aggregate_id)] = (env.position, meta)
        elif env.type == "failed":
            self.running.pop(UUID(env.aggregate_id), None)

    async def subscribe(self, nc: Any, events_subject: str) -> None:
        """Core-NATS subscriptions to the relayed events this worker reacts to."""

        # An event too large for NATS arrives as a reference: its body is read from the store.
        async def frame(msg: Any) -> None:
            self.on_frame(await body_of(msg, self.app))

        async def batch(msg: Any) -> None:
            self.on_batch(await body_of(msg, self.app))

        async def session(msg: Any) -> None:
            self.on_session(msg.data)

        self.subscriptions = [
            await nc.subscribe(
                f"{events_subject}.device_frame.recorded", cb=frame, pending_msgs_limit=1_000_000
            ),
            await nc.subscribe(
                f"{events_subject}.frame_batch.recorded", cb=batch, pending_msgs_limit=100_000
            ),
            await nc.subscribe(f"{events_subject}.test_session.>", cb=session),
        ]

    async def health(self) -> str | None:
        return self.last_error

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._loop(stop)
        finally:
            for sub in self.subscriptions:  # before the connection drains, or it waits on them
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def _loop(self, stop: asyncio.Event) -> None:
        next_sweep = 0.0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.progress()
                if started >= next_sweep:
                    await self.sweep()
                    next_sweep = started + self.sweep_interval
                await self.complete_due()
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as err:  # keep evaluating after a database or NATS outage
                self.last_error = f"{type(err).__name__}: {err}"
                log.exception("evaluator tick failed")
            self.last_tick_s = time.monotonic() - started
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, self.interval - self.last_tick_s))

    async def progress(self) -> None:
        """Fold every buffered frame into its session's running figures; publish them."""
        pending, self.buffer = self.buffer, defaultdict(list)
        figures: dict[UUID, tuple[Counts, RunningEvaluation, int]] = {}
        for sid, frames in pending.items():
            state = self.running.get(sid) or await self._start(sid)
            if state is None:  # not in the read model yet: keep the frames for the next tick
                self.buffer[sid][:0] = frames
                continue
            counts = await anyio.to_thread.run_sync(_fold, state, frames)
            figures[sid] = (counts, state.evaluation, len(frames))
        if not figures:
            return
        stored = await self._stored_counts(list(figures))
        for sid, running in figures.items():
            await self._live(session_room(sid), progress_message(sid, stored.get(sid), running))

    async def _stored_counts(self, sessions: list[UUID]) -> dict[UUID, SessionCounts]:
        """The read model's counts and 0-100 progress, so one message carries everything."""
        if self.pool is None:  # a pool-less evaluator (the benchmark) has no read model
            return {}
        try:
            return await session_progress(self.pool, sessions)
        except Exception:  # progress is a nicety; the running figures must still go out
            log.exception("cannot read session counts for test_progress")
            return {}

    async def _start(self, sid: UUID) -> _Running | None:
        sources = await load_sources(
            self.pool, sid, position=0, history=_no_history, with_detections=False
        )
        session = sources.loaded_session
        if session is None:
            return None
        gt = ground_truth_of(
            sources.current,
            track_of=lambda a: getattr(a, "detection_id", None),
            interpolate=interpolate_track,
        )
        config = config_for(session, None, 0.95)
        state = _Running(RunningEvaluation(gt.gt, config), sources.fps)
        self.running[sid] = state
        return state

    async def sweep(self) -> None:
        """Completed sessions without a completion evaluation (a missed message, a restart)."""
        async with self.pool.connection() as conn:
            sessions = await completed_unevaluated(conn)
            positions = await tracked_positions(conn, WATCHED)
        for sid in sessions:
            self.completed.setdefault(
                sid, (positions.get("test_sessions_v1", 0), EventMeta(actor=ACTOR))
            )

    async def complete_due(self) -> None:
        if not self.completed:
            return
        async with self.pool.connection() as conn:
            positions = await tracked_positions(conn, WATCHED)
        reached = min((positions.get(n, 0) for n in WATCHED), default=0)
        for sid, (position, meta) in list(self.completed.items()):
            if position > reached:
                continue  # the read models do not include everything up to completion yet
            del self.completed[sid]
            self.running.pop(sid, None)
            self.buffer.pop(sid, None)
            await self._complete(sid, position, meta)

    async def _complete(self, sid: UUID, position: int, meta: EventMeta) -> None:
        sources = await load_sources(
            self.pool,
            sid,
            position=position,
            history=annotation_history(self.app),
            with_detections=False,
        )
        if sources.loaded_session is None:
            return
        if any(counts_as_ground_truth(a) for a in sources.current):
            # only now the (possibly large) detections: a session without ground truth is
            # refused without reading them
            detections = await session_detections(self.pool, sid)
            sources = dataclasses.replace(sources, loaded_detections=detections)

        def handler(cmd: EvaluateSession, app: Verity) -> Evaluated | str | None:
            return evaluate_on_completion(cmd, app, sources)

        try:
            done = await anyio.to_thread.run_sync(
                run_as, meta, handler, EvaluateSession(session_id=sid), self.app
            )
        except ConcurrentModification:
            return  # another evaluator recorded it first
        if isinstance(done, Evaluated):
            self.evaluated += 1
            await self._results_readable(done.position)
            for room in (session_room(sid), "dashboard"):
                await self._live(room, completed_message(sid, done, room))
        elif isinstance(done, str):
            log.info("session %s completed but cannot be evaluated: %s", sid, done)
            room = session_room(sid)
            failed = evaluation_failed_message(sid, completion_evaluation_id(sid), done, room)
            await self._live(room, failed)

    async def _results_readable(self, position: int | None) -> None:
        """Hold `test_completed` until the results read model holds the evaluation (bounded):
        pages fetch the results when the message arrives and must not get 202."""
        if position is None:
            return
        deadline = time.monotonic() + VISIBLE_WAIT_S
        while time.monotonic() < deadline:
            async with self.pool.connection() as conn:
                reached = await tracked_positions(conn, (RESULTS_READ_MODEL,))
            if reached.get(RESULTS_READ_MODEL, 0) >= position:
                return
            await asyncio.sleep(0.02)
        log.warning("test_completed sent before %s reached %s", RESULTS_READ_MODEL, position)

    async def _live(self, room: str, message: bytes) -> None:
        await self.publish(live_subject(self.live_prefix, room), message)


def _fold(state: _Running, frames: Sequence[Frame]) -> Counts:
    """Off the event loop, so NATS keeps being read while a big batch is matched."""
    return state.evaluation.add(batch_of(frames, state.fps))


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


def _no_history(annotation_id: UUID, version: int) -> Any:
    msg = "running figures use the current ground truth only"
    raise RuntimeError(msg)
