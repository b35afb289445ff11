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
from datetime import UTC, datetime
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
from domain.errors import ConcurrentModification
from domain.evaluation import Counts
from domain.events import EventMeta
from domain.ground_truth import counts_as_ground_truth
from domain.running_evaluation import DetectionBatch, RunningEvaluation
from domain.tracks import interpolate_track
from projections.evaluation_sources import load_sources
from projections.evaluations import completed_unevaluated
from projections.test_sessions import session_detections, session_progress
from storage.tracking import tracked_positions
from workers.references import body_of

log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()
ACTOR = "evaluator"
WATCHED = ("test_sessions_v1", "detections_v1", "annotations_v1")

Publish = Callable[[str, bytes], Awaitable[None]]


class FrameDetection(msgspec.Struct, gc=False):
    """One detection of a relayed frame; its label key is read in either casing, because the
    envelope camelCases dict keys but not those of structs nested in tuples."""

    class_label: str | None = None
    camel_label: str | None = msgspec.field(default=None, name="classLabel")
    confidence: float | None = None
    box: tuple[float, float, float, float] | None = None

    @property
    def label(self) -> str:
        return self.class_label or self.camel_label or ""


class FrameData(msgspec.Struct, rename="camel"):
    session_id: UUID
    video_time: float
    frame_number: int | None = None
    detections: list[FrameDetection] = msgspec.field(default_factory=list)


class FrameEnvelope(msgspec.Struct):
    position: int
    data: FrameData


class SessionEnvelope(msgspec.Struct, rename="camel"):
    position: int
    type: str
    aggregate_id: UUID
    id: str | None = None
    correlation_id: str | None = None


class BatchFrame(msgspec.Struct, gc=False):
    """A frame inside a relayed `frame_batch.recorded` event (Struct keys: snake_case)."""

    video_time: float
    frame_number: int | None = None
    detections: list[FrameDetection] = msgspec.field(default_factory=list)


class BatchData(msgspec.Struct, rename="camel"):
    session_id: UUID
    frames: list[BatchFrame] = msgspec.field(default_factory=list)


class BatchEnvelope(msgspec.Struct):
    position: int
    data: BatchData


Frame = FrameData | BatchFrame

_frame_decoder = msgspec.json.Decoder(FrameEnvelope)
_batch_decoder = msgspec.json.Decoder(BatchEnvelope)
_session_decoder = msgspec.json.Decoder(SessionEnvelope)


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
    codes = [vocab.setdefault(d.label, len(vocab)) for d in dets]
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


def progress_data(
    session_id: UUID, counts: Counts, running: RunningEvaluation, frames: int
) -> dict[str, Any]:
    has_gt = len(running.gt) > 0
    sid = str(session_id)
    return {
        "sessionId": sid,
        "session_id": sid,
        "running": True,
        "framesEvaluated": int(running.frames_seen),
        "framesThisTick": frames,
        "truePositives": counts.tp,
        "falsePositives": counts.fp,
        "falseNegatives": counts.fn,
        "precision": counts.precision if has_gt else None,
        "recall": counts.recall if has_gt else None,
        "f1Score": counts.f1 if has_gt else None,
        "groundTruthObjects": len(running.gt),
        "scale": "fraction",
        "timestamp": datetime.now(UTC).isoformat(),
    }


def completed_data(session_id: UUID, done: Evaluated) -> dict[str, Any]:
    c = done.report.counts

    def pct(v: float | None) -> float:
        return 0.0 if v is None else round(100 * v, 4)

    sid = str(session_id)
    results = {
        "accuracy": pct(c.accuracy),
        "precision": pct(c.precision),
        "recall": pct(c.recall),
        "f1Score": pct(c.f1),
        "truePositives": c.tp,
        "falsePositives": c.fp,
        "falseNegatives": c.fn,
        "totalDetections": c.tp + c.fp,
        "verdict": None if done.verdict is None else done.verdict.outcome.value,
    }
    return {
        "test_session_id": sid,
        "testSessionId": sid,
        "sessionId": sid,
        "evaluationId": str(done.evaluation_id),
        "results": results,
        "timestamp": datetime.now(UTC).isoformat(),
    }


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
        self.buffer[env.data.session_id].append(env.data)
        self.frames += 1

    def on_batch(self, payload: bytes) -> None:
        try:
            env = _batch_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("evaluator: undecodable frame batch envelope skipped")
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
            self.completed[env.aggregate_id] = (env.position, meta)
        elif env.type == "failed":
            self.running.pop(env.aggregate_id, None)

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
        messages: dict[UUID, dict[str, Any]] = {}
        for sid, frames in pending.items():
            state = self.running.get(sid) or await self._start(sid)
            if state is None:  # not in the read model yet: keep the frames for the next tick
                self.buffer[sid][:0] = frames
                continue
            counts = await anyio.to_thread.run_sync(_fold, state, frames)
            messages[sid] = progress_data(sid, counts, state.evaluation, len(frames))
        if not messages:
            return
        stored = await self._stored_counts(list(messages))
        for sid, data in messages.items():
            await self._live(
                "test_progress", f"test_session:{sid}", {**stored.get(sid, {}), **data}
            )

    async def _stored_counts(self, sessions: list[UUID]) -> dict[UUID, dict[str, Any]]:
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
            data = completed_data(sid, done)
            for room in (f"test_session:{sid}", "dashboard"):
                await self._live("test_completed", room, data)
        elif isinstance(done, str):
            log.info("session %s completed but cannot be evaluated: %s", sid, done)

    async def _live(self, event: str, room: str, data: dict[str, Any]) -> None:
        subject = f"{self.live_prefix}.{room.replace(':', '.')}"
        await self.publish(subject, _encoder.encode({"event": event, "room": room, "data": data}))


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
