"""Group commit of frames posted one per HTTP request: concurrent posts share one transaction.

Devices of the original platform post one detection per request. Storing each in its own
event-store transaction made the write lock and the commit the limit (~260 requests/s at 8
connections). Here a post is queued; while one `record_frames` call is in flight, every post
that arrives waits for the next, which stores them all in ONE transaction. A lone post is
stored at once (no added delay). Each post is answered only after the call that stored it
has committed; a store failure fails every post of that call, and a frame the call refuses
(unknown or closed session, box outside the video) fails only its own post.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    """One queue of frames for the whole process; at most one store call in flight."""

    def __init__(
        self,
        app: Verity,
        record: FrameRecorder,
        *,
        max_frames: int = MAX_FRAMES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.record = record
        self.max_frames = max_frames
        self.clock = clock
        self.calls = 0
        """Store calls made so far (for tests and benchmarks)."""
        self._queue: list[_Post] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, frame: FrameMessage, frame_id: UUID, meta: EventMeta) -> FrameOutcome:
        """Store `frame` under `frame_id` with the posts around it; its outcome once committed."""
        answer: asyncio.Future[FrameOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append(_Post(frame, frame_id, meta, answer))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="group-commit")
        return await answer

    async def close(self) -> None:
        """Wait for the posts already queued to be stored and answered."""
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

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
