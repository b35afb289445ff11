"""Live messages that are not stored events, on core NATS, for the WebSocket gateway.

Subject: `<prefix>.live.<room with ':' replaced by '.'>`, e.g.
`verity.live.test_session.<sessionId>`. Payload: exactly the WebSocket message clients get,
`{"event": NAME, "room": ROOM, "data": {...}}`; the API process subscribes to `<prefix>.live.>`
and passes each message to the room it names (api/ws.py `RoomHub.on_live`). Not persisted: a
client that is not connected misses them, and the read models remain the truth.

Messages published here:
- `detection_event` (room `test_session:{id}`): the newest stored frame of a session with its
  detections, at most `1 / interval` per second per session; `coalesced` says how many further
  frames (`coalescedDetections`: detections) were stored since the previous message.
- `test_progress` (same room): read-model counts `frameCount`, `detectionCount`, `progress`
  (0-100, newest frame's time over the video's duration). The evaluation publishes
  `test_progress` on the same subject with running `precision` / `recall` once it lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from commands.device_messages import FrameMessage
from projections.live_messages import (
    detection_message,
    live_subject,
    progress_message,
    session_room,
)
from projections.test_sessions import SessionCounts

log = logging.getLogger(__name__)
IDLE = 1.0
"""Seconds the sender sleeps when nothing is folded up (frames being noted wake it)."""
MIN_WAIT = 0.001

Publish = Callable[[str, bytes], Awaitable[None]]
Counts = Callable[[Sequence[UUID]], Awaitable[dict[UUID, SessionCounts]]]


class _Pending:
    __slots__ = ("detections", "frames", "fresh", "last_sent", "latest")

    def __init__(self) -> None:
        self.frames = 0
        self.detections = 0
        self.latest: FrameMessage | None = None
        self.last_sent = 0.0
        self.fresh = False
        """`latest` was noted since the sender last looked."""

    def due(self, now: float, interval: float) -> bool:
        """Interval up, and either a frame just stored (the message shows the newest there
        is) or no newer frame within `interval / 4` after it was up (a stream that ended)."""
        waited = now - self.last_sent
        return waited >= interval and (self.fresh or waited >= interval * 1.25)


class LiveCoalescer:
    """Turns a flood of stored frames into a few `detection_event`s per second per session.

    The first frame after a quiet spell goes out at once (low latency); frames arriving within
    `interval` of the last message are folded into the next one, sent with the first frame
    stored after `interval` is up (so it shows the newest frame there is), or `interval / 4`
    later if none comes (the end of a stream).
    """

    def __init__(
        self, publish: Publish, prefix: str, interval: float = 0.2, counts: Counts | None = None
    ) -> None:
        self.publish = publish
        self.prefix = prefix
        self.interval = interval
        self.counts = counts
        self.sessions: dict[UUID, _Pending] = {}
        self.sent = 0
        self._wake = asyncio.Event()

    def stored(self, frames: Sequence[FrameMessage]) -> None:
        """Note frames that are now stored; `run` sends what is due, so the ingest loop never
        waits on a publish or on the read-model query for the counts."""
        for frame in frames:
            pending = self.sessions.setdefault(frame.session_id, _Pending())
            pending.frames += 1
            pending.detections += len(frame.detections)
            pending.latest = frame
            pending.fresh = True
        self._wake.set()

    async def _send_due(self) -> None:
        now = time.monotonic()
        due: list[tuple[UUID, bytes]] = []
        for sid, pending in self.sessions.items():
            latest = pending.latest
            if latest is None:
                continue
            ready = pending.due(now, self.interval)
            pending.fresh = False  # looked at: from now on only a newer frame is fresh
            if not ready:
                continue
            due.append((sid, detection_message(latest, pending.frames, pending.detections)))
            pending.frames = pending.detections = 0
            pending.latest = None
            pending.last_sent = now
        if not due:
            return
        for sid, message in due:  # the detections first: the counts cost a read-model query
            await self.publish(live_subject(self.prefix, session_room(sid)), message)
            self.sent += 1
        counts = await self._counts([sid for sid, _ in due])
        for sid, _ in due:
            if sid in counts:
                await self.publish(
                    live_subject(self.prefix, session_room(sid)),
                    progress_message(sid, counts[sid]),
                )

    async def _counts(self, sessions: list[UUID]) -> dict[UUID, SessionCounts]:
        if self.counts is None:
            return {}
        try:
            return await self.counts(sessions)
        except Exception:  # progress is a nicety; detections must still go out
            log.exception("cannot read session counts for test_progress")
            return {}

    async def run(self, stop: asyncio.Event) -> None:
        """Send each session's newest frame when frames are noted and its interval is up, and
        the folded-up remainder once the interval is up."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._until_due())
            self._wake.clear()
            try:
                await self._send_due()
            except Exception:  # keep the loop alive across NATS reconnects
                log.exception("live flush failed")

    def _until_due(self) -> float:
        """Seconds until the first session's folded-up frames go out even if no newer frame
        comes (a newer one wakes the sender itself)."""
        now = time.monotonic()
        waits = [
            p.last_sent + self.interval * 1.25 - now
            for p in self.sessions.values()
            if p.latest is not None
        ]
        return min(max(min(waits, default=IDLE), MIN_WAIT), IDLE)
