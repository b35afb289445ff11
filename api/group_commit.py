"""Group commit of frames posted one per HTTP request: concurrent posts share one transaction.

Devices of the original platform post one detection per request. Storing each in its own
event-store transaction made the write lock and the commit the limit (~260 requests/s at 8
connections). Here a post is queued; while `IN_FLIGHT` `record_frames` calls are under way,
every post that arrives waits for the next call, which stores them all in ONE transaction. A
lone post is stored at once (no added delay). Each post is answered only after the call that
stored it has committed; a store failure fails every post of that call, and a frame the call
refuses (unknown or closed session, box outside the video) fails only its own post.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID, uuid4

import anyio.to_thread
import msgspec

from commands.application import Position, Verity
from commands.context import run_as
from commands.detections import FrameRecorder, RecordFrames, RecordResult, Rejection
from commands.device_messages import FrameMessage
from domain.events import EventMeta

MAX_FRAMES = 1000
"""Posts stored by one call at most; more wait for the next (bounds one transaction's size)."""
IN_FLIGHT = 2
"""Store calls under way at once. They queue for the event store's write lock, but a second
call's Python work and round trips overlap the first's time under it (at 8 connections, 7-40%
more posts per second than one call at a time, in noisy runs of bench_http_detections.py)."""


class FrameOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one posted frame."""

    status: Literal["stored", "duplicate", "rejected"]
    position: Position | None
    """The position of the call that stored it (None when nothing new was stored)."""
    rejection: Rejection | None = None
    """Why it was refused, for `rejected` (its `index` is the frame's in the call)."""


class _Post(msgspec.Struct):
    frame: FrameMessage
    frame_id: UUID
    meta: EventMeta
    answer: asyncio.Future[FrameOutcome]


class GroupCommit:
    """One queue of frames for the whole process, stored by up to `in_flight` calls at once."""

    def __init__(
        self,
        app: Verity,
        record: FrameRecorder,
        *,
        max_frames: int = MAX_FRAMES,
        in_flight: int = IN_FLIGHT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.record = record
        self.max_frames = max_frames
        self.in_flight = in_flight
        self.clock = clock
        self.calls = 0
        """Store calls made so far (for tests and benchmarks)."""
        self.position: Position = 0
        """The highest position stored so far, known before any post of its call is answered:
        reads wait for it (`api/detections.py`), so a GET after a POST sees the detection."""
        self._queue: list[_Post] = []
        self._flushers: set[asyncio.Task[None]] = set()

    async def submit(self, frame: FrameMessage, frame_id: UUID, meta: EventMeta) -> FrameOutcome:
        """Store `frame` under `frame_id` with the posts around it; its outcome once committed."""
        answer: asyncio.Future[FrameOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append(_Post(frame, frame_id, meta, answer))
        if sum(not f.done() for f in self._flushers) < self.in_flight:
            # a flusher not done is at an await in _store: it looks at the queue again
            flusher = asyncio.create_task(self._flush(), name="group-commit")
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await answer

    async def close(self) -> None:
        """Wait for the posts already queued to be stored and answered."""
        if self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)

    async def _flush(self) -> None:
        """Store what is queued, call after call, until the queue is empty."""
        while self._queue:
            posts = self._queue[: self.max_frames]
            del self._queue[: self.max_frames]
            await self._store(posts)

    async def _store(self, posts: list[_Post]) -> None:
        cmd = RecordFrames(
            frames=tuple(p.frame for p in posts),
            received_at=self.clock(),
            ids=tuple(p.frame_id for p in posts),
        )
        # one event per session holds the call's frames: several requests' ids cannot all be
        # its correlation, so a shared call gets one of its own
        meta = posts[0].meta if len(posts) == 1 else EventMeta(correlation_id=uuid4())
        self.calls += 1
        try:
            result: RecordResult = await anyio.to_thread.run_sync(
                run_as, meta, self.record, cmd, self.app
            )
            outcomes = _outcomes(result, len(posts))
        except Exception as err:  # every post of the call failed alike
            for p in posts:
                if not p.answer.done():
                    p.answer.set_exception(err)
            return
        except BaseException:  # cancelled: the posts are not answered
            for p in posts:
                p.answer.cancel()
            raise
        if result.position is not None:
            self.position = max(self.position, result.position)
        for p, outcome in zip(posts, outcomes, strict=True):
            if not p.answer.done():  # its client may have gone
                p.answer.set_result(outcome)


def _outcomes(result: RecordResult, count: int) -> list[FrameOutcome]:
    """Each post's outcome, in the order of the call's frames."""
    out = {i: FrameOutcome(status="stored", position=result.position) for i in result.stored}
    out.update(
        (i, FrameOutcome(status="duplicate", position=result.position)) for i in result.duplicates
    )
    out.update(
        (r.index, FrameOutcome(status="rejected", position=None, rejection=r))
        for r in result.rejected
    )
    if sorted(out) != list(range(count)):
        msg = f"record_frames accounted for {len(out)} of {count} frames"
        raise RuntimeError(msg)
    return [out[i] for i in range(count)]
