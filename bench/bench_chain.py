"""Benchmark of the event log's hash chain (migration 0020): verify speed and ingest cost.

    uv run python bench/bench_chain.py [--events 1000000] [--rounds 5] [--seconds 8]

Runs against the local PostgreSQL in fresh databases (verity_bench_chain_<random>), dropped at
the end.

1. Verify: `--events` events are bulk-loaded (binary COPY, the chain trigger on, so the
   database computes every hash) from templates of real stored events — annotations created
   and changed through the commands, and a frame batch (`--frames` frames of 5 detections)
   stored by the ingest path — 9 annotation events to 1 frame batch. Then the stored log is
   verified as `verity audit verify --database` does (binary COPY, hashlib), and exported and
   the export verified as `verity audit verify FILE` does. Each verify runs `--rounds` times;
   medians in events/s and MB/s.
2. Ingest cost: the ingest core — `record_frames` (the command the ingest workers run per
   NATS batch) through the PostgreSQL frame store, batches of 1000 frames of 5 detections
   (5 events of 200 frames, ~125 kB each) — for `--seconds`, with the chain triggers on and
   off, alternating, `--rounds` times each; and the same for single commands (one small
   event per transaction: `create_project`). Medians and the on/off ratio. Off means the two
   chain triggers disabled (and the hash column nullable) in the bench database only.

The figures share 2 cores with other work on this machine: they are medians of the rounds,
with the spread (min-max) printed so the noise shows.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import struct
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from commands.annotations import (
    CreateAnnotation,
    UpdateAnnotation,
    create_annotation,
    update_annotation,
)
from commands.application import Verity
from commands.detections import RecordFrames, record_frames
from commands.device_messages import BoxIn, DetectionIn, FrameMessage
from commands.projects import CreateProject, create_project
from commands.test_sessions import CreateTestSession, create_test_session
from commands.videos import RegisterUpload, register_upload
from domain.annotations import AnnotationChanges, AnnotationDraft, BoundingBox
from domain.projects import CameraView, SignalType
from domain.vru import VruType
from formats.event_chain import ChainError, export_lines, header_for, verify_export
from storage.event_chain import hash_before, stored_rows, verify_stored
from storage.frames import PostgresFrameStore
from storage.store_identity import store_id
from verity.bootstrap import open_application
from verity.chain_verify import verify_database, verify_file

CHAIN_TRIGGERS = ("verity_events_lock_for_chain", "verity_events_chain")


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"verity_bench_chain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield str(psycopg.conninfo.make_conninfo(admin_url, dbname=name))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def new_session(app: Verity) -> uuid.UUID:
    project = CreateProject(
        name="bench",
        camera_model="m",
        camera_view=CameraView.MULTI_ANGLE,
        signal_type=SignalType.GPIO,
    )
    create_project(project, app)
    video = RegisterUpload(
        project_id=project.id, filename="f", original_name="f", size=1, sha256="x", metadata=None
    )
    register_upload(video, app)
    session = CreateTestSession(name="s", project_id=project.id, video_id=video.id, start=True)
    create_test_session(session, app)
    return session.id


DETECTIONS = [
    DetectionIn(
        class_label="pedestrian" if k % 2 == 0 else "cyclist",
        confidence=0.5 + k / 20,
        box=BoxIn(x=10.0 * k, y=20.0, width=50.0, height=120.0),
        track_id=str(k),
    )
    for k in range(5)
]


def frames(session: uuid.UUID, first_seq: int, count: int) -> RecordFrames:
    return RecordFrames(
        frames=tuple(
            FrameMessage(
                device_id="bench-cam",
                session_id=session,
                seq=seq,
                frame_number=seq,
                timestamp=seq / 30,
                model_version="bench",
                detections=DETECTIONS,
            )
            for seq in range(first_seq, first_seq + count)
        ),
        received_at=datetime.now(UTC),
    )


def templates(app: Verity, url: str, frames_per_batch: int) -> list[tuple[str, bytes]]:
    """(topic, state) of real stored events: 9 annotation events to 1 frame batch."""
    session = new_session(app)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT originator_id FROM verity_events WHERE topic LIKE %s LIMIT 1", ("%Video%",)
        ).fetchone()
    assert row is not None
    video_id = row[0]
    for i in range(5):
        cmd = CreateAnnotation(
            video_id=video_id,
            draft=AnnotationDraft(
                frame_number=i * 7,
                timestamp=i * 0.23,
                vru_type=list(VruType)[i % len(list(VruType))],
                box=BoundingBox(12.5 * i, 40.0, 64.0, 128.0),
                annotator="auditor@example.org",
                notes="occluded by a parked van" if i % 2 else None,
            ),
        )
        create_annotation(cmd, app)
        update_annotation(
            UpdateAnnotation(
                id=cmd.id, changes=AnnotationChanges(box=BoundingBox(13.0, 41.0, 60.0, 120.0))
            ),
            app,
        )
    record_frames(frames(session, 0, frames_per_batch), app, PostgresFrameStore(app))
    with psycopg.connect(url) as conn:
        annotations = conn.execute(
            "SELECT topic, state FROM verity_events WHERE topic LIKE %s ORDER BY 1 LIMIT 9",
            ("%Annotation%",),
        ).fetchall()
        batch = conn.execute(
            "SELECT topic, state FROM verity_events WHERE topic LIKE %s LIMIT 1", ("%FrameBatch%",)
        ).fetchone()
    assert len(annotations) == 9 and batch is not None
    return [(t, bytes(s)) for t, s in annotations] + [(batch[0], bytes(batch[1]))]


def bulk_load(url: str, events: int, kinds: list[tuple[str, bytes]]) -> tuple[float, int]:
    """COPY `events` events (binary) with the chain trigger on; seconds taken and bytes."""
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    encoded = [(t.encode(), s) for t, s in kinds]
    total = 0
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY verity_events (originator_id, originator_version, topic, state)"
            " FROM STDIN (FORMAT binary)"
        ) as copy:
            copy.write(header)
            chunk = bytearray()
            for i in range(events):
                topic, state = encoded[i % len(encoded)]
                chunk += struct.pack(">hi16si", 4, 16, uuid.uuid4().bytes, 8)
                chunk += struct.pack(">qi", 1, len(topic)) + topic
                chunk += struct.pack(">i", len(state)) + state
                total += len(state)
                if len(chunk) > 2**20:
                    copy.write(chunk)
                    chunk = bytearray()
            chunk += b"\xff\xff"
            copy.write(chunk)
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE verity_events")
    return time.perf_counter() - started, total


def median_spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} (min {min(values):,.0f}, max {max(values):,.0f})"


def bench_verify(
    url: str, events: int, stored_bytes: int, rounds: int, tmp: Path, parallel: list[int]
) -> None:
    mb = stored_bytes / 2**20
    db_rates: list[float] = []
    for _ in range(rounds):
        with psycopg.connect(url) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            started = time.perf_counter()
            found = verify_stored(conn)
            seconds = time.perf_counter() - started
        assert found.count == events
        db_rates.append(events / seconds)
    print(
        f"  verify --database --jobs 1: {median_spread(db_rates)} events/s,"
        f" {mb * statistics.median(db_rates) / events:,.0f} MB/s of state"
    )

    for jobs in parallel:
        rates: list[float] = []
        for _ in range(rounds):
            started = time.perf_counter()
            found = verify_database(url, jobs, lambda _total: lambda _n: None)
            rates.append(events / (time.perf_counter() - started))
            assert found.count == events
        print(f"  verify --database --jobs {jobs}: {median_spread(rates)} events/s")

    path = tmp / "export.ndjson"
    started = time.perf_counter()
    with psycopg.connect(url) as conn, path.open("wb", buffering=2**20) as out:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        previous = hash_before(conn, 1)
        out.writelines(export_lines(header_for(store_id(conn), *previous), stored_rows(conn)))
    export_seconds = time.perf_counter() - started
    size = path.stat().st_size / 2**20
    print(f"  export: {events / export_seconds:,.0f} events/s ({size:,.0f} MB file)")
    file_rates: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        with path.open("rb", buffering=2**20) as lines:
            found = verify_export(lines)
        file_rates.append(events / (time.perf_counter() - started))
        assert found.count == events
    print(f"  verify FILE --jobs 1: {median_spread(file_rates)} events/s")
    for jobs in parallel:
        rates = []
        for _ in range(rounds):
            started = time.perf_counter()
            found = verify_file(path, jobs, lambda _total: lambda _n: None)
            rates.append(events / (time.perf_counter() - started))
            assert found.count == events
        print(f"  verify FILE --jobs {jobs}: {median_spread(rates)} events/s")
    path.unlink()


def set_chain(url: str, on: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        action = "ENABLE" if on else "DISABLE"
        for trigger in CHAIN_TRIGGERS:
            conn.execute(
                sql.SQL("ALTER TABLE verity_events {} TRIGGER {}").format(
                    sql.SQL(action), sql.Identifier(trigger)
                )
            )
        if not on:
            conn.execute("ALTER TABLE verity_events ALTER COLUMN record_hash DROP NOT NULL")


def timed(seconds: float, step: Callable[[], int]) -> float:
    """Units per second of `step` (which returns its units) run for about `seconds`."""
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        done += step()
    return done / elapsed


def bench_ingest_cost(url: str, rounds: int, seconds: float) -> None:
    app = open_application(url, pool_size=2)
    store = PostgresFrameStore(app)
    session = new_session(app)
    seq = [10**6]

    def ingest_batch() -> int:
        cmd = frames(session, seq[0], 1000)
        seq[0] += 1000
        result = record_frames(cmd, app, store)
        return len(result.stored)

    def one_command() -> int:
        create_project(
            CreateProject(
                name="p",
                camera_model="m",
                camera_view=CameraView.MULTI_ANGLE,
                signal_type=SignalType.GPIO,
            ),
            app,
        )
        return 1

    results: dict[tuple[str, bool], list[float]] = {}
    for r in range(rounds):
        for on in (True, False) if r % 2 == 0 else (False, True):
            set_chain(url, on)
            for name, step in (("ingest frames/s", ingest_batch), ("commands/s", one_command)):
                results.setdefault((name, on), []).append(timed(seconds, step))
    set_chain(url, True)
    app.close()
    for name in ("ingest frames/s", "commands/s"):
        on, off = results[(name, True)], results[(name, False)]
        ratios = [a / b for a, b in zip(on, off, strict=True)]
        print(f"  {name}: chain on {median_spread(on)}; off {median_spread(off)}")
        print(
            f"    on/off per round: {', '.join(f'{x:.3f}' for x in ratios)};"
            f" median cost {100 * (1 - statistics.median(on) / statistics.median(off)):+.1f}%"
        )


def bench_trigger(url: str, rounds: int) -> None:
    """The chain's cost per stored event inside PostgreSQL: autocommit inserts of one event
    each (as the frame store's call: lock, insert, commit), chain on vs off."""
    sizes = {"frame batch (125 kB)": (125_000, 100), "annotation (600 B)": (600, 1000)}
    with psycopg.connect(url, autocommit=True) as conn:
        for name, (size, count) in sizes.items():
            state = os.urandom(size // 2).hex().encode()[:size]
            costs: dict[bool, list[float]] = {True: [], False: []}
            for r in range(rounds):
                for on in (True, False) if r % 2 == 0 else (False, True):
                    set_chain(url, on)
                    started = time.perf_counter()
                    for _ in range(count):
                        conn.execute(
                            "INSERT INTO verity_events (originator_id, originator_version,"
                            " topic, state) VALUES (gen_random_uuid(), 1, 'bench:Event', %s)",
                            (state,),
                        )
                    costs[on].append(1e6 * (time.perf_counter() - started) / count)
            on, off = statistics.median(costs[True]), statistics.median(costs[False])
            print(
                f"  {name}: {on:,.0f} us/event with the chain, {off:,.0f} without"
                f" (+{on - off:,.0f} us, {100 * (on / off - 1):+.1f}%);"
                f" rounds on {', '.join(f'{x:,.0f}' for x in costs[True])},"
                f" off {', '.join(f'{x:,.0f}' for x in costs[False])}"
            )
    set_chain(url, True)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--frames", type=int, default=5, help="frames per frame batch template")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=8.0, help="per ingest-cost measurement")
    p.add_argument("--jobs", type=int, nargs="*", default=[2, 4], help="parallel verify runs")
    p.add_argument("--skip", nargs="*", default=[], choices=["verify", "ingest", "trigger"])
    args = p.parse_args()
    admin = os.environ.get(
        "VERITY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    print(
        f"bench_chain: {args.events:,} events, {args.rounds} rounds, {os.cpu_count()} CPUs (shared)"
    )
    if "verify" not in args.skip:
        with fresh_database(admin) as url, tempfile.TemporaryDirectory() as tmp:
            app = open_application(url, pool_size=2)
            kinds = templates(app, url, args.frames)
            app.close()
            sizes = ", ".join(f"{t.rsplit(':', 1)[-1]} {len(s)} B" for t, s in kinds)
            print(f"1. verify; templates: {sizes}")
            seconds, stored = bulk_load(url, args.events, kinds)
            print(
                f"  bulk load with the chain trigger: {args.events / seconds:,.0f} events/s"
                f" ({stored / args.events:,.0f} B of state per event)"
            )
            with psycopg.connect(url) as conn:
                total = conn.execute("SELECT count(*) FROM verity_events").fetchone()
            events = int(total[0]) if total else 0
            try:
                bench_verify(url, events, stored, args.rounds, Path(tmp), args.jobs)
            except ChainError as err:
                print(f"  CHAIN BROKEN: {err}")
    if "trigger" not in args.skip:
        with fresh_database(admin) as url:
            print(f"3. the chain per stored event in PostgreSQL, {args.rounds} rounds each way")
            open_application(url, pool_size=1).close()
            bench_trigger(url, args.rounds)
    if "ingest" not in args.skip:
        with fresh_database(admin) as url:
            print(f"2. ingest cost, {args.rounds} rounds of {args.seconds:.0f} s each way")
            bench_ingest_cost(url, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
