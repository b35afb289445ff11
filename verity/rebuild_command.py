"""`verity rebuild`: rebuild read models from the events, list the events they could not
apply, or re-try those after a fix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING

from verity.settings import Settings

if TYPE_CHECKING:
    from projections.runner import ProjectionRunner
    from projections.schema_build import Progress
    from verity.live_publish import Send

Announce = Callable[[str, str, "Progress", "str | None"], None]

LIST_LIMIT = 10_000
"""Failures listed per read model (the rest are counted)."""


class RebuildMode(Enum):
    REBUILD = "rebuild"
    """Blue-green: fill new tables from every event while the old ones serve, then swap them
    in (failures recorded afresh)."""
    LIST_FAILURES = "list-failures"
    RETRY_FAILURES = "retry-failures"


def rebuild_command(
    settings: Settings, names: Sequence[str], mode: RebuildMode = RebuildMode.REBUILD
) -> None:
    from psycopg_pool import ConnectionPool  # noqa: PLC0415 - keep other commands light
    from tqdm import tqdm  # noqa: PLC0415

    from projections.failures import failure_count, failures_of  # noqa: PLC0415
    from verity.bootstrap import open_application, projection_runners, servers  # noqa: PLC0415
    from verity.live_publish import live_publisher  # noqa: PLC0415

    with servers(settings) as endpoints:
        app = open_application(endpoints.database_url)
        with (
            ConnectionPool(endpoints.database_url, min_size=1, max_size=8) as pool,
            live_publisher(endpoints.nats_url) as send,
        ):
            runners = projection_runners(app, pool, settings.projection_batch_size)
            unknown = set(names) - {r.name for r in runners}
            if unknown:
                known = ", ".join(r.name for r in runners)
                raise SystemExit(f"unknown projection(s) {sorted(unknown)}; known: {known}")
            chosen = [r for r in runners if not names or r.name in names]

            def failures(runner: ProjectionRunner) -> int:
                with pool.connection() as conn:
                    return failure_count(conn, runner.name)

            def rebuild(line: int, runner: ProjectionRunner) -> str:
                outcome = blue_green(
                    endpoints.database_url, runner, line, announcer(send, settings.live_subject)
                )
                if outcome is None:
                    return f"{runner.name}: not rebuilt: {runner.name} is being rebuilt already"
                return f"{outcome}, {failures(runner)} event(s) not applied"

            def retry(line: int, runner: ProjectionRunner) -> str:
                with tqdm(
                    total=failures(runner), desc=runner.name, unit="ev", position=line
                ) as bar:
                    cleared, failing = runner.retry_failures(progress=bar.update)
                return f"{runner.name}: {cleared} applied now, {failing} still not applied"

            if mode is RebuildMode.LIST_FAILURES:
                with pool.connection() as conn:
                    for runner in chosen:
                        shown = failures_of(conn, runner.name, limit=LIST_LIMIT)
                        for f in shown:
                            held = f" (held behind {f.held_by})" if f.held_by else ""
                            print(
                                f"{f.projection}\t{f.position}\t{f.topic}\t{f.originator_id}"
                                f" v{f.originator_version}\t{f.failed_at:%Y-%m-%d %H:%M:%S}"
                                f"\t{f.error}{held}"
                            )
                        if len(shown) == LIST_LIMIT:
                            print(f"{runner.name}: {failures(runner) - LIST_LIMIT} more not shown")
                app.close()
                return
            work: Callable[[int, ProjectionRunner], str] = (
                retry if mode is RebuildMode.RETRY_FAILURES else rebuild
            )
            # Read models work side by side: one's round trips overlap another's work.
            with ThreadPoolExecutor(max(1, min(len(chosen), 4))) as workers:
                outcomes = list(workers.map(work, range(len(chosen)), chosen))
            print("\n".join(outcomes))
        app.close()
        if any(": not rebuilt:" in line for line in outcomes):
            raise SystemExit(1)


def announcer(send: Send | None, live_prefix: str) -> Announce:
    """`announce(name, state, progress, error)`: a `projection_rebuild_progress` message on
    the live subject (room `admin`), as the API's rebuilds send; nothing without NATS."""
    from projections.live_messages import (  # noqa: PLC0415
        ADMIN_ROOM,
        live_subject,
        rebuild_progress_message,
    )

    def announce(name: str, state: str, p: Progress, error: str | None) -> None:
        if send is None:
            return
        message = rebuild_progress_message(
            name,
            state,
            processed=p.processed,
            total=p.total,
            position=p.position,
            head=p.until,
            events_per_second=p.events_per_second,
            error=error,
        )
        send(live_subject(live_prefix, ADMIN_ROOM), message)

    return announce


def blue_green(
    database_url: str, runner: ProjectionRunner, line: int, announce: Announce
) -> str | None:
    """Rebuild `runner`'s read model blue-green with a progress bar on `line`; what was done,
    or None when another rebuild of it runs."""
    from tqdm import tqdm  # noqa: PLC0415

    from projections.blue_green import RebuildBusy, rebuild_blue_green  # noqa: PLC0415
    from projections.failures import describe  # noqa: PLC0415
    from projections.schema_build import Progress  # noqa: PLC0415

    last = Progress(0, 0, 0, 0, 0.0)
    with tqdm(total=0, desc=runner.name, unit="ev", position=line) as bar:

        def progress(p: Progress) -> None:
            nonlocal last
            bar.total = p.total
            bar.update(p.processed - bar.n)
            last = p
            announce(runner.name, "running", p, None)

        try:
            done = rebuild_blue_green(
                database_url,
                runner.projection,
                runner.reader,
                runner.decode,
                runner.batch_size,
                progress,
            )
        except RebuildBusy:
            return None
        except Exception as exc:
            announce(runner.name, "failed", last, describe(exc))
            raise
    announce(runner.name, "done", replace(last, position=done.position), None)
    return (
        f"{runner.name}: rebuilt up to {done.position} ({done.events} events,"
        f" {done.seconds:.1f}s, swapped in {done.swap_seconds * 1000:.0f} ms)"
    )
