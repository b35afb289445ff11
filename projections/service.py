"""Keeps every projection caught up, woken by the event store's NOTIFY, and lets callers wait.

Each runner has its own thread, so a busy read model (detections during a test run) never
holds back a quiet one, and a rebuild reads and writes several read models at once (one
runner's database round trips overlap another's Python work). One listener thread LISTENs on
the channel eventsourcing NOTIFYs on each insert and wakes them all; every runner also polls
once a second, so a missed notification only costs latency, never events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

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
        self._threads: list[threading.Thread] = []
        self._wake = [threading.Event() for _ in self.runners]
        self._lock = threading.Lock()
        self._waiters: list[tuple[int, asyncio.Future[None], asyncio.AbstractEventLoop]] = []
        self._errors: dict[str, str] = {}

    @property
    def last_error(self) -> str | None:
        """What is wrong with the runners that are failing now, or None."""
        return "; ".join(f"{n}: {e}" for n, e in sorted(self._errors.items())) or None

    @property
    def position(self) -> int:
        """Every read model reflects all events up to here."""
        return min((r.position for r in self.runners), default=0)

    def positions(self) -> dict[str, int]:
        return {r.name: r.position for r in self.runners}

    @property
    def live(self) -> bool:
        """Whether this process keeps the read models moving (its runner threads run)."""
        return bool(self._threads) and not self._stop.is_set()

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._listen, name="projections-listen", daemon=True),
            *(
                threading.Thread(
                    target=self._follow, args=(r, wake), name=f"projection-{r.name}", daemon=True
                )
                for r, wake in zip(self.runners, self._wake, strict=True)
            ),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for wake in self._wake:
            wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def catch_up_once(self, head: int | None = None) -> int:
        """Bring every runner to `head` (default: the log's end), all at once; events applied."""
        if not self.runners:
            return 0
        with ThreadPoolExecutor(len(self.runners), thread_name_prefix="catch-up") as pool:
            applied: int = sum(pool.map(lambda r: r.catch_up(head), self.runners))
        self._release_waiters()
        return applied

    def _listen(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.listen_url, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    backoff = 0.1
                    self._wake_all()  # whatever was stored while we were not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=self.poll_interval, stop_after=1):
                            self._wake_all()
            except Exception:  # the runners still poll; only latency suffers meanwhile
                log.exception("projection listener failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _wake_all(self) -> None:
        for wake in self._wake:
            wake.set()

    def _follow(self, runner: ProjectionRunner, wake: threading.Event) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            wake.wait(self.poll_interval)
            wake.clear()
            if self._stop.is_set():
                return
            try:
                runner.catch_up()
                self._errors.pop(runner.name, None)
                backoff = 0.1
            except Exception as e:  # keep projecting after a database outage
                self._errors[runner.name] = f"{type(e).__name__}: {e}"
                log.exception("projection %s failed; retrying in %.1fs", runner.name, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                wake.set()
                continue
            self._release_waiters()

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
