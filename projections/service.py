"""Keeps every projection caught up, woken by the event store's NOTIFY, and lets callers wait.

Each runner has its own thread, so a busy read model (detections during a test run) never
holds back a quiet one, and a rebuild reads and writes several read models at once (one
runner's database round trips overlap another's Python work). One listener thread LISTENs on
the channel eventsourcing NOTIFYs on each insert and wakes them all; every runner also polls
once a second, so a missed notification only costs latency, never events.

Under a stream of commits (device ingest stores a batch every few milliseconds) the listener
wakes the runners at most once per `min_interval`: the first notification after a quiet spell
is dispatched at once, later ones are folded into the next dispatch. Each wake costs every
interested runner a read and a transaction whatever the number of new events, so this keeps
the read side's cost per event low exactly when the machine is busiest, for at most
`min_interval` of extra read-model lag. A caller waiting to read its own write (`wait_for`)
is never held back: while anyone waits, every notification is dispatched at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

from projections.notifications import EVENTS_TABLE
from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

MAX_TOPIC_SCAN = 50_000
"""Beyond this many new events the listener wakes every runner rather than list topics."""


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
        min_interval: float = 0.05,
    ) -> None:
        self.runners = list(runners)
        self.listen_url = listen_url
        self.channel = channel
        self.poll_interval = poll_interval
        self.min_interval = min_interval
        self._stop = threading.Event()
        self._hurry = threading.Event()
        """Set when a caller starts waiting for a position (or on stop): dispatch now."""
        self._threads: list[threading.Thread] = []
        self._wake = [threading.Event() for _ in self.runners]
        self._news: list[tuple[int, bool] | None] = [None for _ in self.runners]
        """Per runner: (head, whether events of its types arrived), from the listener."""
        self._scanned = 0
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []
        self._errors: dict[str, str] = {}
        self._epochs: dict[str, int] = {}
        """Per read model, how many times its tables were swapped for rebuilt ones here."""

    @property
    def last_error(self) -> str | None:
        """What is wrong with the runners that are failing now, or None."""
        return "; ".join(f"{n}: {e}" for n, e in sorted(self._errors.items())) or None

    def errors(self) -> dict[str, str]:
        """Per runner failing now (an outage: it retries), what is wrong."""
        return dict(self._errors)

    @property
    def position(self) -> int:
        """Every read model reflects all events up to here."""
        return min((r.position for r in self.runners), default=0)

    def positions(self) -> dict[str, int]:
        return {r.name: r.position for r in self.runners}

    def epoch(self, name: str) -> int:
        """Changes when `name`'s tables were replaced by a rebuild in this process: the same
        position may then hold different rows (cached answers must go)."""
        return self._epochs.get(name, 0)

    def swapped(self, name: str) -> None:
        """A blue-green rebuild replaced `name`'s tables. Its runner finds the tracking row
        moved on its next write (LostRace) and follows it; cached answers go now."""
        with self._lock:
            self._epochs[name] = self._epochs.get(name, 0) + 1

    @property
    def live(self) -> bool:
        """Whether this process keeps the read models moving (its runner threads run)."""
        return bool(self._threads) and not self._stop.is_set()

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._listen, name="projections-listen", daemon=True),
            *(
                threading.Thread(
                    target=self._follow, args=(i,), name=f"projection-{r.name}", daemon=True
                )
                for i, r in enumerate(self.runners)
            ),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._hurry.set()
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
                    self._scanned = self.position
                    self._dispatch(conn)  # whatever was stored while we were not listening
                    dispatched = 0.0
                    while not self._stop.is_set():
                        notified = False
                        for _ in conn.notifies(timeout=self.poll_interval, stop_after=1):
                            notified = True  # queries must wait until the generator ends
                        if not notified:
                            continue
                        delay = dispatched + self.min_interval - time.monotonic()
                        if delay > 0 and not self._waiters:
                            self._hurry.wait(delay)
                        self._hurry.clear()
                        for _ in conn.notifies(timeout=0):
                            pass  # arrived meanwhile: this dispatch covers them
                        dispatched = time.monotonic()
                        self._dispatch(conn)
            except Exception:  # the runners still poll; only latency suffers meanwhile
                log.exception("projection listener failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _dispatch(self, conn: psycopg.Connection[Any]) -> None:
        """Tell each runner how far the log goes and whether the new part concerns it.

        One query for the topics of the new events replaces a query per runner: a runner
        none of whose event types arrived just moves its position, without touching the
        database (most notifications concern one or two of the read models)."""
        row = conn.execute(f"SELECT max(notification_id) FROM {EVENTS_TABLE}").fetchone()
        head = int(row[0]) if row and row[0] is not None else 0
        if head <= self._scanned:
            return
        topics: set[str] | None = None  # None: too much to look at, wake everyone
        if head - self._scanned <= MAX_TOPIC_SCAN:
            cur = conn.execute(
                f"SELECT DISTINCT topic FROM {EVENTS_TABLE}"
                " WHERE notification_id > %s AND notification_id <= %s",
                (self._scanned, head),
            )
            topics = {str(t) for (t,) in cur.fetchall()}
        for i, runner in enumerate(self.runners):
            behind = runner.position < self._scanned
            relevant = behind or topics is None or not topics.isdisjoint(runner.topic_set)
            with self._lock:
                previous = self._news[i]
                if previous is not None:
                    relevant = relevant or previous[1]
                self._news[i] = (head, relevant)
            self._wake[i].set()
        self._scanned = head

    def _take_news(self, i: int) -> tuple[int, bool] | None:
        with self._lock:
            news, self._news[i] = self._news[i], None
        return news

    def _follow(self, i: int) -> None:
        runner, wake = self.runners[i], self._wake[i]
        backoff = 0.1
        while not self._stop.is_set():
            wake.wait(self.poll_interval)
            wake.clear()
            if self._stop.is_set():
                return
            news = self._take_news(i)
            try:
                if news is not None and not news[1]:
                    runner.skip_to(news[0])
                else:  # news of ours, or a poll: read the log
                    runner.catch_up(news[0] if news else None)
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

    def reached(self, names: Collection[str] | None = None) -> int:
        """The position every named read model (default: all of them) includes."""
        if not names:
            return self.position
        return min((r.position for r in self.runners if r.name in names), default=0)

    def _release_waiters(self) -> None:
        with self._lock:
            ready = [w for w in self._waiters if w.position <= self.reached(w.names)]
            if not ready:
                return
            self._waiters = [w for w in self._waiters if w not in ready]
        for waiter in ready:
            waiter.loop.call_soon_threadsafe(_resolve, waiter.future)

    async def wait_for(
        self,
        position: int | None,
        timeout: float,  # noqa: ASYNC109
        names: Collection[str] | None = None,
    ) -> None:
        """Return once the named read models (default: all) include `position`;
        ReadSideTimeout after `timeout`."""
        if position is None or self.reached(names) >= position:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters.append(_Waiter(position, frozenset(names or ()), future, loop))
        self._hurry.set()
        if self.reached(names) >= position:  # raced with a release that ran before we registered
            self._release_waiters()
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ReadSideTimeout(position, self.reached(names)) from None


@dataclass(frozen=True, eq=False)
class _Waiter:
    position: int
    names: frozenset[str]
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
