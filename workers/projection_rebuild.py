"""Blue-green rebuilds asked for over HTTP: one thread each, followed by polling or WebSocket.

A rebuild runs in this process beside the live runner of the same read model (which keeps the
live tables current until the swap). Its progress goes out as `projection_rebuild_progress`
messages (room `admin`) on the live subject, so every API process's WebSocket clients hear it,
and stays readable at `GET /api/admin/projections/{name}/rebuild` until the next one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from projections.blue_green import RebuildBusy, rebuild_blue_green
from projections.failures import describe
from projections.live_messages import ADMIN_ROOM, live_subject, rebuild_progress_message
from projections.runner import ProjectionRunner
from projections.schema_build import Progress

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class RebuildJob:
    name: str
    state: str
    """`running`, `done` or `failed`."""
    started_at: datetime
    finished_at: datetime | None = None
    processed: int = 0
    total: int = 0
    position: int = 0
    head: int = 0
    events_per_second: float = 0.0
    error: str | None = None


class RebuildJobs:
    def __init__(
        self,
        database_url: str,
        runners: list[ProjectionRunner],
        publish: Publish | None,
        live_prefix: str,
        loop: asyncio.AbstractEventLoop,
        on_swapped: Callable[[str], None] | None = None,
    ) -> None:
        self.database_url = database_url
        self.runners = {r.name: r for r in runners}
        self.publish = publish
        self.live_prefix = live_prefix
        self.loop = loop
        self.on_swapped = on_swapped
        self.jobs: dict[str, RebuildJob] = {}
        self._lock = threading.Lock()

    def running(self) -> set[str]:
        with self._lock:
            return {n for n, j in self.jobs.items() if j.state == "running"}

    def start(self, name: str) -> RebuildJob:
        """Start rebuilding `name` (KeyError: unknown); RebuildBusy if one runs here already
        (another process's rebuild is found by the thread, which then fails as busy)."""
        runner = self.runners[name]
        with self._lock:
            current = self.jobs.get(name)
            if current is not None and current.state == "running":
                raise RebuildBusy(name)
            job = self.jobs[name] = RebuildJob(name, "running", datetime.now(UTC))
        threading.Thread(
            target=self._run, args=(runner,), name=f"rebuild-{name}", daemon=True
        ).start()
        return job

    def _update(self, name: str, **changes: object) -> RebuildJob:
        with self._lock:
            job = self.jobs[name] = replace(self.jobs[name], **changes)  # type: ignore[arg-type]
        self._send(job)
        return job

    def _run(self, runner: ProjectionRunner) -> None:
        name = runner.name

        def progress(p: Progress) -> None:
            self._update(
                name,
                processed=p.processed,
                total=p.total,
                position=p.position,
                head=p.until,
                events_per_second=p.events_per_second,
            )

        started = time.monotonic()
        try:
            done = rebuild_blue_green(
                self.database_url,
                runner.projection,
                runner.reader,
                runner.decode,
                runner.batch_size,
                progress,
            )
        except Exception as exc:  # reported to whoever follows it; the live model is untouched
            log.exception("rebuild of %s failed", name)
            self._update(name, state="failed", finished_at=datetime.now(UTC), error=describe(exc))
            return
        if self.on_swapped is not None:
            self.on_swapped(name)
        elapsed = time.monotonic() - started
        self._update(
            name,
            state="done",
            finished_at=datetime.now(UTC),
            position=done.position,
            head=done.position,
            events_per_second=done.events / elapsed if elapsed > 0 else 0.0,
        )
        log.info(
            "rebuilt %s: %s events in %.1fs (swap held the read model %.3fs)",
            name,
            done.events,
            done.seconds,
            done.swap_seconds,
        )

    def _send(self, job: RebuildJob) -> None:
        if self.publish is None:
            return
        message = rebuild_progress_message(
            job.name,
            job.state,
            processed=job.processed,
            total=job.total,
            position=job.position,
            head=job.head,
            events_per_second=job.events_per_second,
            error=job.error,
        )
        if self.loop.is_closed():  # the server stopped; the rebuild goes on unheard
            return
        subject = live_subject(self.live_prefix, ADMIN_ROOM)
        publishing = self.publish(subject, message)
        try:
            sent = asyncio.run_coroutine_threadsafe(publishing, self.loop)
        except RuntimeError:  # the loop closed meanwhile
            publishing.close()
            return
        sent.add_done_callback(_log_failure)


def _log_failure(sent: Future[None]) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        log.warning("cannot publish rebuild progress: %s", sent.exception())
