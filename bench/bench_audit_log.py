"""Benchmark of the audit log's reads on a frame-heavy log.

    uv run python bench/bench_audit_log.py [--batches 2000] [--frames 100] [--projects 5000]
        [--runs 5]

In a fresh database (verity_bench_audit_<random>, dropped at the end) it stores P projects
(each renamed once) and B frame batches of F frames (3 detections each), interleaved, then
times one page (limit 100) of `GET /api/audit/events`'s function for each kind of filter, and
streams the whole log as NDJSON would. Prints medians of `--runs`, the events examined and
the bytes of stored state.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_spine import fresh_database

from domain.detections import Box, Detection, FrameBatch, RecordedFrame
from domain.events import EventMeta, recorded_as
from domain.projects import CameraView, Project, ProjectChanges, SignalType
from projections.audit_filters import parse_log_query
from projections.audit_log import read_page, stream_log
from verity.bootstrap import open_application


def _box(k: int) -> Box:
    return Box(x=1.0 * k, y=2.0, width=30.0, height=60.0)


def _batch(frames: int) -> FrameBatch:
    boxes = tuple(
        Detection(class_label="pedestrian", confidence=0.5, box=_box(k)) for k in range(3)
    )
    rows = tuple(
        RecordedFrame(id=uuid4(), device_id="cam", seq=i, video_time=i / 30, detections=boxes)
        for i in range(frames)
    )
    return FrameBatch(session_id=uuid4(), received_at=datetime.now(UTC), frames=rows)


def _project(i: int) -> Project:
    project = Project(
        name=f"p{i}",
        camera_model="cam",
        camera_view=CameraView.FRONT_FACING_VRU,
        signal_type=SignalType.GPIO,
    )
    project.update(ProjectChanges(name=f"p{i} renamed"))
    return project


def fill(url: str, projects: int, batches: int, frames: int) -> tuple[datetime, datetime]:
    app = open_application(url, pool_size=2)
    per_round = max(1, batches // 50)
    project_round = max(1, projects // 50)
    started = datetime.now(UTC)
    middle = started
    for r in range(50):
        with recorded_as(EventMeta(actor="device")):
            app.commit(*(_batch(frames) for _ in range(per_round)))
        with recorded_as(EventMeta(actor=f"user-{r % 5}")):
            app.commit(*(_project(i) for i in range(project_round)))
        if r == 25:
            middle = datetime.now(UTC)
    with recorded_as(EventMeta(actor="rare")):
        app.commit(_project(-1))
    app.close()
    return started, middle


async def timed_pages(url: str, cases: dict[str, dict[str, str]], runs: int) -> None:
    from commands.codec import MsgspecMapper  # noqa: PLC0415

    mapper = MsgspecMapper()
    async with await AsyncConnection.connect(url) as conn:
        for name, filters in cases.items():
            query = parse_log_query(limit="100", **filters)
            times: list[float] = []
            page: Any = None
            for _ in range(runs):
                start = time.perf_counter()
                page = await read_page(conn, mapper, query)
                times.append(time.perf_counter() - start)
            print(
                f"page {name:<28} median {1000 * statistics.median(times):8.1f} ms"
                f"  events {len(page.events):>4}  next {page.next_after:>7}  more {page.has_more}"
            )
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        start = time.perf_counter()
        count = 0
        async for _ in stream_log(pool.connection, mapper, parse_log_query()):
            count += 1
        took = time.perf_counter() - start
        print(f"stream everything: {count} events in {took:.1f} s = {count / took:,.0f} events/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"verity_bench_audit_{secrets.token_hex(4)}"
    with fresh_database(args.admin_url, name, keep=False) as url:
        started = time.perf_counter()
        first, middle = fill(url, args.projects, args.batches, args.frames)
        print(f"stored in {time.perf_counter() - started:.1f} s")
        import psycopg  # noqa: PLC0415

        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*), pg_size_pretty(sum(pg_column_size(state))) FROM verity_events"
            ).fetchone()
        print(f"log: {row}")
        cases = {
            "no filter": {},
            "aggregate type project": {"aggregate_type": "project"},
            "event type project.updated": {"event_type": "project.updated"},
            "actor rare (one event)": {"actor": "rare"},
            "actor device (batches)": {"actor": "device"},
            "time: second half": {"since": middle.isoformat()},
            "time: first moment": {"since": first.isoformat(), "until": first.isoformat()},
        }
        asyncio.run(timed_pages(url, cases, args.runs))


if __name__ == "__main__":
    main()
