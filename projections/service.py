"""Keeps every projection caught up, woken by the event store's NOTIFY, and lets callers wait.

One thread drives all runners; it LISTENs on the channel eventsourcing NOTIFYs on each insert
and also polls once a second, so a missed notification only costs latency, never events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence

import psycopg

from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)


class ReadSideTimeout(Exception):
    def __init__(self, position: int, reached: int) -> None:
        super().__init__(f"read models reached {reached}, not {position}")
        self.position = position
        self.reached = reached


class ProjectionService:
    def __init__(
        self,
        runners: Sequence[ProjectionRunner],
        listen_url: str,
        channel: str = "verity_events",
        poll_interval: float = 1.0,
    ) -> None:
        self.runners = list(runners)
        self.listen_url = listen_url
        self.channel = channel
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._waiters: list[tuple[int, asyncio.Future[None], asyncio.AbstractEventLoop]] = []
        self.last_error: str | None = None

    @property
    def position(self) -> int:
        """Every read model reflects all events up to here."""
        return min((r.position for r in self.runners), default=0)

    def positions(self) -> dict[str, int]:
        return {r.name: r.position for r in self.runners}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="projections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def catch_up_once(self) -> int:
        """Bring every runner to the current head; returns events applied."""
        applied = sum(r.catch_up() for r in self.runners)
        self._release_waiters()
        return applied

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.listen_url, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    backoff = 0.1
                    while not self._stop.is_set():
                        self.catch_up_once()
                        self.last_error = None
                        for _ in conn.notifies(timeout=self.poll_interval, stop_after=1):
                            break
            except Exception as e:  # keep projecting after a database outage
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("projection loop failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _release_waiters(self) -> None:
        reached = self.position
        with self._lock:
            ready = [w for w in self._waiters if w[0] <= reached]
            self._waiters = [w for w in self._waiters if w[0] > reached]
        for _, future, loop in ready:
            loop.call_soon_threadsafe(_resolve, future)

    async def wait_for(self, position: int | None, timeout: float) -> None:  # noqa: ASYNC109
        """Return once every read model includes `position`; ReadSideTimeout after `timeout`."""
        if position is None or self.position >= position:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters.append((position, future, loop))
        if self.position >= position:  # raced with a release that ran before we registered
            self._release_waiters()
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ReadSideTimeout(position, self.position) from None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def wait_until(service: ProjectionService, position: int, timeout: float = 10.0) -> None:
    """Blocking wait, for scripts and tests outside an event loop."""
    deadline = time.monotonic() + timeout
    while service.position < position:
        if time.monotonic() > deadline:
            raise ReadSideTimeout(position, service.position)
        time.sleep(0.005)
