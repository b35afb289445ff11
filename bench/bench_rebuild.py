"""Benchmark of rebuilding every read model from the log: the batched runner against the
eventsourcing library's own per-event processing of the same events.

    uv run python bench/bench_rebuild.py [--events 1000000] [--runs 3]
        [--library-seconds 30] [--processes N] [--keep]

Runs against the local PostgreSQL (VERITY_BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres) in a fresh database verity_bench_rebuild_<random>,
dropped at the end unless --keep.

The log (default 50,000 events; `--events 1000000` for the full size) is mostly frame batches
(2 frames of 2 detections each by default, over 20 test sessions) and annotations (created,
every tenth then validated), plus projects, videos and sessions. Events are built as the
aggregates build them, encoded by the application's own mapper and COPYed into the event store
(generation is not what is measured).

1. Batch runner: every read model (all thirteen) built from the whole log into a schema of
   its own, exactly as `verity replay` builds it (projections/schema_build.py: the log read
   once per page for all read models, batches of 5000, rows and tracking in one transaction,
   read-only indexes built after the fill; split over `--processes` processes, default one
   per core, in groups that read no topic in common). Events/s = events in the log / wall
   time; CPU is this process's and its workers'. `--runs` times; median.
2. The library: eventsourcing 9.5's `ProjectionRunner` (an `ApplicationSubscription` on the
   same application, decoding with the same mapper) calls `Projection.process_event` once per
   event, and that runs the very same read-model code for that one event and records the
   library's tracking row, in one transaction per event (its documented pattern for a
   PostgreSQL materialised view). Timed over `--library-seconds` (it would take hours over 1M
   events); events/s = events it tracked / time. The batch runner is timed over the same log
   prefix for the like-for-like ratio. Both read models are compared row by row on that prefix.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import secrets
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection as LibraryProjection
from eventsourcing.projection import ProjectionRunner as LibraryRunner
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_spine import fmt_rate, fresh_database, load, project_unit

from commands.application import Verity
from domain.annotations import Annotation, BoundingBox
from domain.detections import Box, Detection, FrameBatch, RecordedFrame
from domain.test_sessions import TestSession
from domain.vru import VruType
from projections.notifications import NotificationLog
from projections.runner import AnyProjection, writer
from projections.schema_build import SchemaBuild, build_in_processes, schema_pool
from storage.read_model_schema import create_read_model_schema
from verity.bootstrap import PROJECTIONS, eventsourcing_env, open_application

FRAMES_PER_BATCH = 2
"""Frames per batch event by default: one camera at 30 fps whose frames the ingest commits
every ~50 ms. `--frames-per-batch` changes it (a batch is up to 200 frames under heavy load)."""
SESSIONS = 20
BATCH_SIZE = 5000
LIBRARY_SCHEMA = "bench_library"
LIBRARY_VIEW = "bench_view"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """Runs and (max - min) / median, so noise is visible."""
    m = median(values)
    text = ", ".join(fmt_rate(v) for v in values)
    return f"[{text}] spread {100 * (max(values) - min(values)) / m:.0f}%" if m else text


# --------------------------------------------------------------------------- the log


def _frame_batch(
    session: UUID, seq: int, received: datetime, frames_per_batch: int
) -> FrameBatch.Recorded:
    frames = tuple(
        RecordedFrame(
            id=uuid4(),
            device_id="bench-cam",
            seq=seq + k,
            video_time=(seq + k) / 30,
            frame_number=seq + k,
            detections=(
                Detection(
                    class_label="pedestrian",
                    confidence=0.9,
                    box=Box(x=10, y=20, width=30, height=60),
                ),
                Detection(
                    class_label="cyclist", confidence=0.7, box=Box(x=200, y=40, width=50, height=80)
                ),
            ),
        )
        for k in range(frames_per_batch)
    )
    batch = FrameBatch(session_id=session, received_at=received, frames=frames)
    event: FrameBatch.Recorded = batch.collect_events()[0]  # type: ignore[assignment]
    return event


def store_log(app: Verity, url: str, events: int, frames_per_batch: int) -> dict[str, int]:
    """About `events` events: a frame batch or an annotation each, after a small set-up."""
    setup: list[Any] = []
    units = [project_unit(i) for i in range(10)]
    for unit in units:
        setup += unit
    project = next(a for a in units[0] if a.__class__.__name__ == "Project")
    video = next(a for a in units[0] if a.__class__.__name__ == "Video")
    sessions = [
        TestSession(name=f"s{i}", project_id=project.id, video_id=video.id) for i in range(SESSIONS)
    ]
    for s in sessions:
        s.start()
    setup += sessions
    stored = [e for a in setup for e in a.collect_events()]
    counts: dict[str, int] = {"set-up": len(stored)}
    received = datetime.now(UTC)
    left = max(0, events - len(stored))
    frame_events = left * 6 // 10
    with psycopg.connect(url) as conn:
        _copy(conn, app, stored)
        made = 0
        while made < left:
            chunk: list[Any] = []
            for i in range(made, min(left, made + 20_000)):
                if i % 10 < 6 and counts.get("frame batches", 0) < frame_events:
                    s = sessions[i % SESSIONS]
                    chunk.append(
                        _frame_batch(s.id, i * frames_per_batch, received, frames_per_batch)
                    )
                    counts["frame batches"] = counts.get("frame batches", 0) + 1
                else:
                    a = Annotation(
                        video_id=video.id,
                        frame_number=i % 900,
                        seconds=(i % 900) / 30,
                        vru_type=VruType.PEDESTRIAN,
                        box=BoundingBox(1 + i % 500, 1, 20, 40),
                    )
                    if i % 10 == 9:
                        a.validate(True)
                    done = a.collect_events()
                    chunk += done
                    counts["annotation events"] = counts.get("annotation events", 0) + len(done)
            _copy(conn, app, chunk)
            made += 20_000
            print(f"\r  stored {made + len(stored):,} events", end="", flush=True)
    print()
    return counts


def _copy(conn: psycopg.Connection[Any], app: Verity, events: Sequence[Any]) -> None:
    with conn.cursor().copy(
        "COPY verity_events (originator_id, originator_version, topic, state) FROM STDIN"
    ) as copy:
        for event in events:
            s = app.mapper.to_stored_event(event)
            copy.write_row((s.originator_id, s.originator_version, s.topic, s.state))
    conn.commit()


# --------------------------------------------------------------------------- 1. batch runner


def batch_rebuild(
    app: Verity, url: str, schema: str, until: int, processes: int
) -> tuple[float, float]:
    """(wall, CPU of this process and its workers) seconds to build every read model into
    `schema` up to `until`, as `verity replay` does."""
    with psycopg.connect(url, autocommit=True) as conn:
        create_read_model_schema(conn, schema, "bench")
    t0, c0 = time.perf_counter(), _cpu()
    if processes > 1:
        build_in_processes(
            url,
            schema,
            [cls() for cls in PROJECTIONS],
            app.mapper.to_domain_event,
            until,
            BATCH_SIZE,
            processes,
        )
    else:
        with (
            ConnectionPool(url, min_size=1, max_size=5) as log_pool,
            schema_pool(url, schema, 5) as pool,
        ):
            build = SchemaBuild(
                [cls() for cls in PROJECTIONS],
                pool,
                NotificationLog(log_pool),
                app.mapper.to_domain_event,
                BATCH_SIZE,
            )
            build.fill(until)
    return time.perf_counter() - t0, _cpu() - c0


def _cpu() -> float:
    """CPU seconds of this process and of its ended child processes."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


# --------------------------------------------------------------------------- 2. the library


class ReadModelsView(PostgresTrackingRecorder):
    """The library's materialised-view recorder, writing the same read-model tables."""

    projections: Sequence[AnyProjection] = ()

    def apply(self, event: Any, tracking: Tracking) -> None:
        """One event: every interested read model's own code, and the tracking row, in the
        library's one transaction."""
        with self.datastore.transaction(commit=True) as curs:
            conn = curs.connection
            conn.row_factory = tuple_row  # type: ignore[assignment]  # the read-model code's rows
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(LIBRARY_SCHEMA)))
            for classes, write in _WRITERS:
                if isinstance(event, classes):
                    write(conn, [event])
            self._insert_tracking(curs, tracking)


_WRITERS: list[tuple[tuple[type[Any], ...], Any]] = []


class ReadModels(LibraryProjection[ReadModelsView]):
    name = LIBRARY_VIEW
    topics: tuple[str, ...] = ()

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.apply(domain_event, tracking)


def library_rebuild(url: str, seconds: float) -> tuple[int, float]:
    """(events tracked, seconds) of the library's runner, stopped after `seconds`."""
    with psycopg.connect(url, autocommit=True) as conn:
        create_read_model_schema(conn, LIBRARY_SCHEMA, "bench: the library's runner")
    projections = [cls() for cls in PROJECTIONS]
    _WRITERS[:] = [(tuple(p.event_classes), writer(p)) for p in projections]
    ReadModels.topics = tuple(sorted({t for p in projections for t in _topics(p)}))
    env = eventsourcing_env(url, 2)
    prefix = LIBRARY_VIEW.upper()
    env |= {f"{prefix}_POSTGRES_SCHEMA": LIBRARY_SCHEMA, f"{prefix}_CREATE_TABLE": "y"}
    t0 = time.perf_counter()
    with LibraryRunner(
        application_class=Verity,
        projection_class=ReadModels,
        view_class=ReadModelsView,
        env=env,
    ) as runner:
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            time.sleep(0.5)
            runner.run_forever(timeout=0)  # re-raises what its thread failed with
    elapsed = time.perf_counter() - t0  # until it stopped: what it tracked by then counts
    with psycopg.connect(url) as conn:
        row = conn.execute(
            sql.SQL("SELECT max(notification_id) FROM {}").format(
                sql.Identifier(LIBRARY_SCHEMA, f"{LIBRARY_VIEW}_tracking")
            )
        ).fetchone()
    return int(row[0]) if row and row[0] else 0, elapsed


def _topics(projection: AnyProjection) -> list[str]:
    from projections.base import topics_of  # noqa: PLC0415

    return topics_of(projection)


# --------------------------------------------------------------------------- comparison


def same_rows(url: str, a: str, b: str) -> list[str]:
    """Tables whose rows differ between schemas `a` and `b`."""
    differ = []
    tables = sorted({t for cls in PROJECTIONS for t in cls.tables})
    with psycopg.connect(url) as conn:
        for t in tables:
            # Compared by the server: every column, no ordering ties.
            q = sql.SQL(
                "SELECT (SELECT count(*) FROM {a}) - (SELECT count(*) FROM {b}),"
                " (SELECT count(*) FROM (SELECT * FROM {a} EXCEPT SELECT * FROM {b}) AS d)"
            ).format(a=sql.Identifier(a, t), b=sql.Identifier(b, t))
            if conn.execute(q).fetchone() != (0, 0):
                differ.append(t)
    return differ


def head(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT max(notification_id) FROM verity_events").fetchone()
    return int(row[0]) if row and row[0] else 0


@contextlib.contextmanager
def bench_database(keep: bool) -> Iterator[str]:
    admin = os.environ.get(
        "VERITY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    with fresh_database(admin, f"verity_bench_rebuild_{secrets.token_hex(4)}", keep) as url:
        yield url


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames-per-batch", type=int, default=FRAMES_PER_BATCH)
    parser.add_argument("--library-seconds", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="as verity replay uses"
    )
    args = parser.parse_args(argv)

    with bench_database(args.keep) as url:
        app = open_application(url, pool_size=2)
        try:
            print(f"load before: {load()} (cores: {os.cpu_count()})")
            t0 = time.perf_counter()
            counts = store_log(app, url, args.events, args.frames_per_batch)
            total = head(url)
            print(
                f"log: {total:,} events ({', '.join(f'{k} {v:,}' for k, v in counts.items())})"
                f" stored in {time.perf_counter() - t0:.1f}s"
            )
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE verity_events")

            print(
                "\n1. Batch runner: all read models from the whole log"
                f" ({args.processes} process(es))"
            )
            rates, cpu_rates = [], []
            for run in range(args.runs):
                seconds, cpu = batch_rebuild(app, url, f"bench_batch_{run}", total, args.processes)
                rates.append(total / seconds)
                cpu_rates.append(total / cpu)
                print(
                    f"  run {run + 1}: {seconds:.1f}s = {fmt_rate(total / seconds)} events/s"
                    f"  (load {load()})"
                )
            batch = median(rates)
            print(f"  median {fmt_rate(batch)} events/s  {spread(rates)}")
            print(
                f"  per CPU-second of the Verity processes (PostgreSQL's work not included):"
                f" median {fmt_rate(median(cpu_rates))} events  {spread(cpu_rates)}"
            )
            rows = counts.get("frame batches", 0) * args.frames_per_batch * 2
            print(
                f"  ({rows:,} detection rows: {fmt_rate(rows / total * batch)} rows/s;"
                f" {args.frames_per_batch} frames of 2 detections per frame batch)"
            )

            print(
                f"\n2. eventsourcing {_version()} ProjectionRunner, one event per transaction,"
                f" {args.library_seconds:.0f}s"
            )
            done, seconds = library_rebuild(url, args.library_seconds)
            library = done / seconds
            print(
                f"  tracked {done:,} events in {seconds:.1f}s = {fmt_rate(library)} events/s"
                f"  (load {load()})"
            )

            prefix_rates = []
            for run in range(args.runs):
                schema = f"bench_prefix_{run}"
                prefix_seconds, _ = batch_rebuild(app, url, schema, done, args.processes)
                prefix_rates.append(done / prefix_seconds)
            differ = same_rows(url, LIBRARY_SCHEMA, "bench_prefix_0")
            print(
                f"  batch runner over the same {done:,} events: median"
                f" {fmt_rate(median(prefix_rates))} events/s {spread(prefix_rates)}"
            )
            print(
                f"  read models equal to the library's on that prefix: "
                f"{'yes' if not differ else 'NO: ' + ', '.join(differ)}"
            )

            print("\nSummary")
            print(
                f"  rebuild of all read models, {total:,} events: {fmt_rate(batch)} events/s"
                f" (target >= 100k): {'met' if batch >= 100_000 else 'NOT met'}"
            )
            print(
                f"  batch runner vs the library's per-event runner on the same events:"
                f" {median(prefix_rates) / library:.0f}x"
            )
        finally:
            app.close()


def _version() -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version("eventsourcing")


if __name__ == "__main__":
    main()
