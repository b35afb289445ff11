"""Benchmark of Verity's spine: event append, projection catch-up and the HTTP read path.

    uv run python bench/bench_spine.py [--events 100000] [--quick]

Everything runs against the local PostgreSQL and NATS servers, in fresh databases named
verity_bench_<random>[_append|_http] and under a unique NATS prefix; the databases and the
JetStream stream are removed at the end, so no other data is touched.

1. Append: events/s of one transaction per event (one `app.commit(project)` per new Project)
   vs many aggregates per `app.commit(*aggregates)`. Only the commit calls are timed.
2. Projection catch-up: N stored events (projects created/updated/deleted, videos uploaded/
   metadata/linked/deleted), rebuilt from zero by the batched runner (batch 1000 and 5000)
   and, over a prefix, by the same runner with batch_size=1 (one transaction per event);
   the read models of both are compared row by row.
3. HTTP: the real `uv run verity serve`, 100 projects created through the API, then
   `wrk -t2 -c4 -d15s --latency /api/projects`, three times.

The catch-up is timed the way `verity serve` catches up on start: all read models side by
side (ProjectionService.catch_up_once), each batch folded in memory and written set-wise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import msgspec
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from commands.application import Verity
from domain.events import VerityAggregate
from domain.projects import (
    CENTRAL_STORE_ID,
    CameraView,
    Project,
    ProjectChanges,
    ProjectStatus,
    SignalType,
)
from domain.videos import Video, VideoMetadata
from projections.runner import ProjectionRunner
from projections.service import ProjectionService
from verity.bootstrap import open_application, projection_runners

ROOT = Path(__file__).resolve().parents[1]
VIEWS = list(CameraView)
SIGNALS = list(SignalType)
READ_MODEL_TABLES = ("rm_projects", "rm_videos")


# --------------------------------------------------------------------------- helpers


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def runs_text(values: Sequence[float], fmt: Callable[[float], str] = fmt_rate) -> str:
    return "[" + ", ".join(fmt(v) for v in values) + "]"


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 74 - len(title)), flush=True)


@dataclass
class Row:
    """One line of the final summary."""

    metric: str
    value: str
    target: str = ""
    verdict: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        self.rows.append(Row(metric, value, target, verdict))

    def print(self) -> None:
        section("Summary")
        w0 = max(len(r.metric) for r in self.rows)
        w1 = max(len(r.value) for r in self.rows)
        w2 = max(len(r.target) for r in self.rows)
        print(f"{'metric':<{w0}}  {'median':>{w1}}  {'target':<{w2}}  verdict")
        print("-" * (w0 + w1 + w2 + 13))
        for r in self.rows:
            print(f"{r.metric:<{w0}}  {r.value:>{w1}}  {r.target:<{w2}}  {r.verdict}")


def db_url(base: str, dbname: str) -> str:
    info = conninfo_to_dict(base)
    info["dbname"] = dbname
    return make_conninfo(**{k: v for k, v in info.items() if v is not None})


@contextlib.contextmanager
def fresh_database(admin_url: str, name: str, keep: bool) -> Iterator[str]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield db_url(admin_url, name)
    finally:
        if keep:
            print(f"(kept database {name})")
        else:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- aggregates


def new_project(i: int, tag: str) -> Project:
    project: Project = Project._create(
        Project.Created,
        id=uuid5(NAMESPACE_URL, f"bench:{tag}:project:{i}"),
        name=f"Project {i}",
        camera_model=f"CM-{i % 7}",
        camera_view=VIEWS[i % len(VIEWS)],
        signal_type=SIGNALS[i % len(SIGNALS)],
        description=f"bench project {i}",
        lens_type="wide" if i % 2 else None,
        resolution="1920x1080",
        frame_rate=30,
    )
    return project


def project_unit(i: int, videos: int = 3) -> list[VerityAggregate]:
    """One project's life: created, updated twice, three videos uploaded/measured/linked,
    and every fifth project deleted with its videos (as `delete_project` does)."""
    project = new_project(i, "mix")
    project.update(ProjectChanges(name=f"Project {i} rev 2", status=ProjectStatus.TESTING))
    clips: list[Video] = []
    for k in range(videos):
        vid = uuid5(NAMESPACE_URL, f"bench:mix:video:{i}:{k}")
        video: Video = Video._create(
            Video.Uploaded,
            id=vid,
            project_id=CENTRAL_STORE_ID,
            filename=f"{vid}.mp4",
            original_name=f"clip_{i}_{k}.mp4",
            size_bytes=1_000_000 + i * 10 + k,
            sha256=f"{i:032x}{k:032x}",
        )
        video.record_metadata(
            VideoMetadata(
                fps=30.0,
                frame_count=900 + k,
                duration=30.0 + k / 10,
                width=1920,
                height=1080,
                codec="h264",
            )
        )
        video.link_to(project.id)
        clips.append(video)
    project.update(ProjectChanges(description=f"bench project {i}, final", frame_rate=60))
    if i % 5 == 4:
        project.delete()
        for video in clips:
            video.delete(reason=f"project {project.id} deleted")
    return [project, *clips]


def pending(aggregates: Sequence[VerityAggregate]) -> int:
    return sum(len(a.pending_events) for a in aggregates)


# --------------------------------------------------------------------------- 1. append


def bench_append(url: str, args: argparse.Namespace, report: Report) -> None:
    section("1. Append: Verity.commit on the eventsourcing 9.5.6 PostgreSQL recorder")
    print("new Project aggregates are built first; only the commit calls are timed")
    app = open_application(url, pool_size=2)
    try:
        for i in range(20):  # warm-up: connections, prepared statements
            app.commit(new_project(i, "warm"))
        counter = iter(range(10**9))

        def single_run(n: int) -> float:
            projects = [new_project(next(counter), "single") for _ in range(n)]
            t0 = time.perf_counter()
            for p in projects:
                app.commit(p)
            return n / (time.perf_counter() - t0)

        def batched_run(n: int, per_commit: int) -> float:
            projects = [new_project(next(counter), f"batch{per_commit}") for _ in range(n)]
            batches = [projects[j : j + per_commit] for j in range(0, n, per_commit)]
            t0 = time.perf_counter()
            for batch in batches:
                app.commit(*batch)
            return n / (time.perf_counter() - t0)

        single = [single_run(args.single_events) for _ in range(args.runs)]
        print(
            f"single saves   ({args.single_events} commits of 1 event per run): "
            f"median {fmt_rate(median(single))} events/s  runs {runs_text(single)}"
        )
        report.add(
            "append, 1 event/commit (events/s)", fmt_rate(median(single)), "(reference)", None
        )
        for per_commit in (100, 500):
            rates = [batched_run(args.batched_events, per_commit) for _ in range(args.runs)]
            ratio = median(rates) / median(single)
            print(
                f"batched saves  ({args.batched_events // per_commit} commits of {per_commit}"
                f" per run): median {fmt_rate(median(rates))} events/s  runs "
                f"{runs_text(rates)}  = {ratio:.1f}x single"
            )
            report.add(
                f"append, {per_commit} events/commit (events/s)",
                f"{fmt_rate(median(rates))} ({ratio:.0f}x)",
                "(vs single)",
                None,
            )
    finally:
        app.close()


# --------------------------------------------------------------------------- 2. projections


def store_mixed_events(app: Verity, n_events: int, commit_events: int) -> tuple[int, float]:
    stored = 1  # the central store, created by open_application
    i = 0
    batch: list[VerityAggregate] = []
    batch_events = 0
    elapsed = 0.0
    while stored + batch_events < n_events:
        unit = project_unit(i)
        i += 1
        batch.extend(unit)
        batch_events += pending(unit)
        if batch_events >= commit_events:
            t0 = time.perf_counter()
            app.commit(*batch)
            elapsed += time.perf_counter() - t0
            stored += batch_events
            batch, batch_events = [], 0
    if batch:
        t0 = time.perf_counter()
        app.commit(*batch)
        elapsed += time.perf_counter() - t0
        stored += batch_events
    return stored, elapsed


def event_mix(pool: ConnectionPool[Any]) -> list[tuple[str, int]]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT topic, count(*) FROM verity_events GROUP BY topic ORDER BY 2 DESC"
        ).fetchall()
    return [(str(t).rsplit(":", 1)[-1], int(n)) for t, n in rows]


def snapshot(pool: ConnectionPool[Any]) -> dict[str, list[tuple[Any, ...]]]:
    with pool.connection() as conn:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in READ_MODEL_TABLES
        }


def rebuild(runners: Sequence[ProjectionRunner], head: int) -> tuple[float, int]:
    """Reset every read model, then time catching up to `head` the way `verity serve` does on
    start (ProjectionService.catch_up_once: the runners side by side); (seconds, applied)."""
    for r in runners:
        r.reset()
    service = ProjectionService(runners, "")
    t0 = time.perf_counter()
    applied = service.catch_up_once(head)
    return time.perf_counter() - t0, applied


def bench_projections(url: str, args: argparse.Namespace, report: Report) -> None:
    section("2. Projection catch-up (projects_v1 + videos_v1)")
    app = open_application(url, pool_size=4)
    pool: ConnectionPool[Any] = ConnectionPool(url, min_size=1, max_size=4, open=True)
    try:
        t0 = time.perf_counter()
        stored, commit_s = store_mixed_events(app, args.events, commit_events=1000)
        setup_s = time.perf_counter() - t0
        head = app.head()
        mix = ", ".join(f"{name} {n:,}" for name, n in event_mix(pool))
        print(
            f"stored {stored:,} events in {setup_s:.1f}s ({fmt_rate(stored / commit_s)} events/s"
            f" in commits of ~1000 events); head position {head:,}"
        )
        print(f"mix: {mix}")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE verity_events")

        results: dict[int, list[float]] = {}
        snapshots: dict[int, dict[str, list[tuple[Any, ...]]]] = {}
        for batch_size in (1000, 5000):
            runners = projection_runners(app, pool, batch_size)
            rates = []
            for _ in range(args.runs):
                seconds, applied = rebuild(runners, head)
                assert applied == stored, (applied, stored)
                rates.append(stored / seconds)
            results[batch_size] = rates
            snapshots[batch_size] = snapshot(pool)
            print(
                f"batched runner, batch_size={batch_size:<5} all {stored:,} events: median "
                f"{fmt_rate(median(rates))} events/s  runs {runs_text(rates)}"
            )
        same_full = snapshots[1000] == snapshots[5000]
        counts = ", ".join(f"{t} {len(rows):,} rows" for t, rows in snapshots[1000].items())
        print(f"batch 1000 vs 5000 read models identical: {same_full} ({counts})")

        # The same runner with batch_size=1 commits once per event; time it over a prefix.
        prefix = min(args.prefix, stored)
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT notification_id FROM verity_events ORDER BY notification_id"
                " OFFSET %s LIMIT 1",
                (prefix - 1,),
            ).fetchone()
        assert row is not None
        prefix_head = int(row[0])
        batched = projection_runners(app, pool, 1000)
        seconds_b, applied_b = rebuild(batched, prefix_head)
        prefix_batched = snapshot(pool)
        per_event = projection_runners(app, pool, 1)
        seconds_1, applied_1 = rebuild(per_event, prefix_head)
        prefix_single = snapshot(pool)
        assert applied_b == applied_1 == prefix, (applied_b, applied_1, prefix)
        rate_1 = prefix / seconds_1
        rate_b_prefix = prefix / seconds_b
        print(
            f"per-event runner, batch_size=1, first {prefix:,} events only: "
            f"{fmt_rate(rate_1)} events/s ({seconds_1:.1f}s, one run)"
        )
        print(
            f"batched runner, batch_size=1000, same first {prefix:,} events: "
            f"{fmt_rate(rate_b_prefix)} events/s ({seconds_b:.2f}s)"
        )
        same_prefix = prefix_batched == prefix_single
        counts = ", ".join(f"{t} {len(rows):,} rows" for t, rows in prefix_single.items())
        print(
            f"batched vs per-event read models over the first {prefix:,} events identical: "
            f"{same_prefix} ({counts})"
        )
        best = median(results[1000])
        speedup = median(results[5000]) / rate_1
        print(
            f"speed-up batch 5000 (all events) vs batch 1 (prefix): {speedup:.0f}x;"
            f" over the same prefix: {rate_b_prefix / rate_1:.0f}x"
        )
        default = median(results[5000])
        report.add(
            "catch-up, batch 5000 = default (events/s)",
            fmt_rate(default),
            ">= 50,000",
            default >= 50_000,
        )
        report.add("catch-up, batch 1000 (events/s)", fmt_rate(best), "(smaller batches)")
        report.add(
            f"catch-up, batch 1, first {prefix:,} (events/s)", fmt_rate(rate_1), "(reference)"
        )
        report.add("catch-up speed-up 5000 vs 1", f"{speedup:.0f}x", ">= 20x", speedup >= 20)
        report.add(
            "read models identical (batched vs per-event)",
            str(same_prefix and same_full),
            "True",
            same_prefix and same_full,
        )
    finally:
        pool.close()
        app.close()


# --------------------------------------------------------------------------- 3. HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, bytes]:
    data = None if body is None else msgspec.json.encode(body)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def server_command() -> list[str]:
    uv = shutil.which("uv")
    if uv is not None:
        return [uv, "run", "--no-sync", "verity", "serve"]
    return [str(Path(sys.executable).with_name("verity")), "serve"]


@contextlib.contextmanager
def served(command: list[str], env: dict[str, str], port: int, log_path: Path) -> Iterator[Server]:
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, base, log_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                msg = f"server exited with {proc.returncode}:\n{server.log_tail()}"
                raise RuntimeError(msg)
            with contextlib.suppress(OSError):
                status, _ = http("GET", base + "/health", timeout=2)
                if status == 200:
                    break
            if time.monotonic() > deadline:
                msg = f"server not healthy after 90s:\n{server.log_tail()}"
                raise RuntimeError(msg)
            time.sleep(0.2)
        yield server
    finally:
        stop_server(proc)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (Ctrl-C) first; the process group is killed only if that does not work."""
    if proc.poll() is not None:
        print(f"server had already exited ({proc.returncode})")
        return
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
        print(
            f"server stopped by SIGINT in {time.perf_counter() - t0:.1f}s (exit {proc.returncode})"
        )
    except subprocess.TimeoutExpired:
        print("server ignored SIGINT for 20s; sending SIGTERM, then SIGKILL, to its process group")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
                break
    # Nothing of its session may survive (e.g. the python child of `uv run`).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
        print("note: killed leftover processes of the server's session")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if m is None:
        msg = f"cannot parse wrk duration {text!r}"
        raise ValueError(msg)
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class WrkResult:
    rps: float
    p50: float
    p90: float
    p99: float
    requests: int
    errors: str

    def line(self) -> str:
        return (
            f"{fmt_rate(self.rps)} req/s  p50 {self.p50:.2f} ms  p90 {self.p90:.2f} ms"
            f"  p99 {self.p99:.2f} ms  ({self.requests:,} requests{self.errors})"
        )


def parse_wrk(out: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.MULTILINE))
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None or not {"50", "90", "99"} <= pct.keys():
        msg = f"cannot parse wrk output:\n{out}"
        raise ValueError(msg)
    errors = ""
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += f", {m.group(1)} non-2xx"
    if m := re.search(r"Socket errors: (.*)", out):
        errors += f", socket errors: {m.group(1)}"
    return WrkResult(
        float(rps.group(1)),
        to_ms(pct["50"]),
        to_ms(pct["90"]),
        to_ms(pct["99"]),
        int(total.group(1)),
        errors,
    )


def run_wrk(wrk: str, url: str, seconds: int) -> WrkResult:
    cmd = [wrk, "-t2", "-c4", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return parse_wrk(out.stdout)


def wrk_series(wrk: str, url: str, runs: int, seconds: int, label: str) -> list[WrkResult]:
    run_wrk(wrk, url, 2)  # warm-up, not counted
    results = []
    for i in range(runs):
        res = run_wrk(wrk, url, seconds)
        results.append(res)
        print(f"  {label} run {i + 1}: {res.line()}", flush=True)
    return results


def summarize(results: Sequence[WrkResult]) -> tuple[float, float, float]:
    return (
        median([r.rps for r in results]),
        median([r.p50 for r in results]),
        median([r.p99 for r in results]),
    )


def create_projects(base: str, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        status, body = http(
            "POST",
            base + "/api/projects",
            {
                "name": f"HTTP project {i}",
                "cameraModel": f"CM-{i % 7}",
                "cameraView": VIEWS[i % len(VIEWS)].value,
                "signalType": SIGNALS[i % len(SIGNALS)].value,
                "description": f"created through the API by the benchmark ({i})",
                "lensType": "wide",
                "resolution": "1920x1080",
                "frameRate": 30,
            },
        )
        if status != 200:
            msg = f"POST /api/projects -> {status}: {body[:300]!r}"
            raise RuntimeError(msg)
    return time.perf_counter() - t0


def normalized(body: bytes) -> list[dict[str, Any]]:
    """Decoded project list with timestamps as datetimes (PostgreSQL and msgspec spell the
    same instant differently)."""
    items: list[dict[str, Any]] = msgspec.json.decode(body)
    for item in items:
        for key in ("createdAt", "updatedAt"):
            if item.get(key):
                item[key] = datetime.fromisoformat(item[key].replace("Z", "+00:00"))
    return items


async def delete_stream(nats_url: str, stream: str) -> None:
    import nats  # noqa: PLC0415
    from nats.js.errors import NotFoundError  # noqa: PLC0415

    nc = await nats.connect(nats_url, connect_timeout=3, max_reconnect_attempts=1)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def bench_http(url: str, args: argparse.Namespace, report: Report, prefix: str) -> None:
    section("3. HTTP: GET /api/projects on `verity serve` (uvicorn)")
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "wrk is not installed, so the HTTP benchmark is skipped.\n"
            "Install it (Debian/Ubuntu: sudo apt-get install -y wrk; macOS: brew install wrk)"
            " and run again."
        )
        report.add("GET /api/projects (req/s)", "skipped: no wrk", ">= 2,400", None)
        return
    with tempfile.TemporaryDirectory(prefix="verity_bench_") as tmp:

        def env_for(port: int) -> dict[str, str]:
            return {
                **os.environ,
                "VERITY_DATABASE_URL": url,
                "VERITY_NATS_URL": args.nats_url,
                "VERITY_NATS_PREFIX": prefix,
                "VERITY_HOST": "127.0.0.1",
                "VERITY_PORT": str(port),
                "VERITY_DATA_DIR": str(Path(tmp) / "data"),
            }

        try:
            port = free_port()
            command = server_command()
            print(f"server: {' '.join(command)} on port {port}, NATS prefix {prefix}")
            with served(command, env_for(port), port, Path(tmp) / "serve.log") as server:
                seconds = create_projects(server.base, args.projects)
                status, body = http("GET", server.base + "/api/projects")
                reference = normalized(body) if status == 200 else []
                print(
                    f"created {args.projects} projects through POST /api/projects in "
                    f"{seconds:.1f}s; GET /api/projects -> {status}, {len(reference)} projects,"
                    f" {len(body):,} bytes"
                )
                results = wrk_series(
                    wrk,
                    server.base + "/api/projects",
                    args.wrk_runs,
                    args.wrk_seconds,
                    f"wrk -t2 -c4 -d{args.wrk_seconds}s --latency",
                )
            rps, p50, p99 = summarize(results)
            print(
                f"median of {len(results)}: {fmt_rate(rps)} req/s, p50 {p50:.2f} ms,"
                f" p99 {p99:.2f} ms"
            )
            report.add("GET /api/projects (req/s)", fmt_rate(rps), ">= 2,400", rps >= 2400)
            report.add("GET /api/projects p50 (ms)", f"{p50:.2f}")
            report.add("GET /api/projects p99 (ms)", f"{p99:.2f}", "< 20", p99 < 20)
        finally:
            with contextlib.suppress(Exception):
                asyncio.run(delete_stream(args.nats_url, f"{prefix.upper()}_EVENTS"))


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=100_000, help="events to store for catch-up")
    p.add_argument("--quick", action="store_true", help="small sizes, short wrk runs (smoke)")
    p.add_argument("--prefix", type=int, default=10_000, help="events for the per-event run")
    p.add_argument("--runs", type=int, default=3, help="repetitions for medians")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin connection used to create and drop the bench databases",
    )
    p.add_argument("--nats-url", default=os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument("--skip", action="append", default=[], choices=["append", "catchup", "http"])
    p.add_argument("--keep", action="store_true", help="do not drop the bench databases")
    args = p.parse_args(argv)
    args.single_events = 2_000
    args.batched_events = 20_000
    args.projects = 100
    args.wrk_runs = 3
    args.wrk_seconds = 15
    if args.quick:
        args.events = min(args.events, 20_000)
        args.prefix = min(args.prefix, 2_000)
        args.single_events = 300
        args.batched_events = 3_000
        args.wrk_seconds = 3
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    tag = secrets.token_hex(4)
    name = f"verity_bench_{tag}"
    report = Report()
    with psycopg.connect(args.pg_url) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()
    print(
        f"Verity spine benchmark: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"PostgreSQL {pg_version[0] if pg_version else '?'} "
        f"(synchronous_commit={sync_commit[0] if sync_commit else '?'}), databases {name}*"
        + (", --quick" if args.quick else ""),
        flush=True,
    )
    print(f"load average at start: {load()} (other work on this machine skews the figures)")
    t_start = time.perf_counter()
    if "append" not in args.skip:
        with fresh_database(args.pg_url, f"{name}_append", args.keep) as url:
            bench_append(url, args, report)
    if "catchup" not in args.skip:
        with fresh_database(args.pg_url, name, args.keep) as url:
            bench_projections(url, args, report)
    if "http" not in args.skip:
        with fresh_database(args.pg_url, f"{name}_http", args.keep) as url:
            bench_http(url, args, report, f"bench{tag}")
    report.print()
    print(f"\nload average at end: {load()}; total time {time.perf_counter() - t_start:.0f}s")


if __name__ == "__main__":
    main()
