"""Device ingest benchmark: NATS -> event store -> read models -> WebSocket, against HTTP.

Runs `verity serve` on a fresh database and NATS prefix: by default with everything in it
(API, projections, relay, evaluator, ingest, as deployed on one node); `--workers N` adds N
`verity worker ingest` processes (serve then stops ingesting unless `--serve-ingest`), and
`--split` moves the relay and the evaluator into `verity worker` processes of their own. Then:

1. Sustained ingest: frame messages with 5 detections each, published as fast as JetStream
   acks them for `--duration` seconds, timed until every frame is stored AND projected
   (rm_test_sessions counts and rm_detections rows). Reports frames/s, detections/s, ingest
   batch size, PostgreSQL commits/s and where the CPU went (server process, PostgreSQL
   backends of this database, nats-server, this publisher).
2. Latency: frames published at `--latency-fps` for `--latency-seconds`, each stamped with
   `capturedAt`; a WebSocket client on `test_session:<id>` notes when each `detection_event`
   arrives. p50/p99 of (arrival - capturedAt of the newest frame the message carries).
   Messages are coalesced to at most 5/s per room and ingest process, so this is the delay of
   what is shown, not of every frame (each frame is counted in a message's `coalesced`).
   Each rate runs with every publish acked by JetStream and without acks (`--latency-acks`).
3. HTTP: the same detections posted one per request to POST /api/detection-events (the
   original platform's way), sequentially and with 8 concurrent clients; the ratio to (1).

Usage: uv run python bench/bench_ingest.py [--duration 60]
Other processes on the machine share the 2 cores: figures are provisional, re-run to confirm.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import msgspec
import nats
import numpy as np
import psycopg
import websockets
from psycopg import sql

from commands.device_messages import BoxIn, DetectionIn, FrameMessage

CLK = os.sysconf("SC_CLK_TCK")
encoder = msgspec.json.Encoder()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_database(admin_url: str, keep: bool) -> Iterator[tuple[str, str]]:
    name = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield str(psycopg.conninfo.make_conninfo(admin_url, dbname=name)), name
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


@contextmanager
def served(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "verity.cli", "serve"],
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "verity.cli", "worker", name],
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def start_workers(env: dict[str, str], count: int, tmp: Path) -> list[subprocess.Popen[bytes]]:
    """Extra `verity worker ingest` processes, competing for the same durable consumer."""
    return [start_worker(env, "ingest", tmp / f"worker-{i}.log") for i in range(count)]


def wait_ready(logs: list[Path], seconds: float = 120) -> None:
    """Until every ingest process has its consumer: frames published before the stream
    exists are answered 'no responders' and never stored."""
    deadline = time.monotonic() + seconds
    while not all(p.exists() and "ingest ready" in p.read_text() for p in logs):
        if time.monotonic() > deadline:
            raise SystemExit(f"ingest not ready after {seconds} s; see {logs}")
        time.sleep(0.2)


def relay_lag(database_url: str) -> int:
    """Stored events the relay has not yet published to the events stream."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT coalesce(max(notification_id), 0) - coalesce((SELECT max(position)"
            " FROM tracking WHERE name LIKE 'relay:%'), 0) FROM verity_events"
        ).fetchone()
    return int(row[0]) if row else 0


def wait_idle(
    base: str, nats_url: str, stream: str, database_url: str, timeout: float = 900
) -> None:
    """Until no frame waits in JetStream, the relay has published everything stored and every
    projection has caught up: each phase starts on a quiet system."""

    async def backlog() -> int:
        nc = await nats.connect(nats_url)
        try:
            info = await nc.jetstream().consumer_info(stream, "verity-ingest")
            return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        except nats.js.errors.NotFoundError:
            return 0
        finally:
            await nc.close()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if asyncio.run(backlog()) == 0 and relay_lag(database_url) <= 0:
            body = httpx.get(f"{base}/health", timeout=10).json()
            if not any(body.get("projectionLag", {}).values()):
                return
        time.sleep(0.5)
    raise SystemExit("ingest and read models did not catch up")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def nats_server_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "nats-server":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuMeter:
    """CPU seconds per component between start() and stop()."""

    def __init__(
        self,
        server_pid: int,
        database_url: str,
        dbname: str,
        workers: list[int],
        others: list[int],
    ) -> None:
        self.server_pid = server_pid
        self.workers = workers
        self.others = others
        self.database_url = database_url
        self.dbname = dbname

    def _pg_pids(self) -> dict[str, list[int]]:
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT pid, datname, backend_type FROM pg_stat_activity"
                " WHERE datname = %s OR backend_type IN"
                " ('walwriter', 'checkpointer', 'background writer')",
                (self.dbname,),
            ).fetchall()
        own = [r[0] for r in rows if r[1] == self.dbname]
        shared = [r[0] for r in rows if r[1] != self.dbname]
        return {"pg": own, "pg_shared": shared}

    def sample(self) -> dict[str, float]:
        pids = self._pg_pids()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "server (API, projections, relay, evaluator; ingest unless workers do it)": (
                cpu_seconds(self.server_pid)
            ),
            "ingest workers": sum(cpu_seconds(p) for p in self.workers),
            "relay + evaluator workers (--split)": sum(cpu_seconds(p) for p in self.others),
            "postgres backends (this db)": sum(cpu_seconds(p) for p in pids["pg"]),
            "postgres wal/checkpoint (shared)": sum(cpu_seconds(p) for p in pids["pg_shared"]),
            "nats-server (shared)": sum(cpu_seconds(p) for p in nats_server_pids()),
            "publisher (this script)": usage.ru_utime + usage.ru_stime,
        }


def commits(database_url: str, dbname: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (dbname,)
        ).fetchone()
    return int(row[0]) if row else 0


def write_video(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30.0, (64, 48))
    for i in range(90):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[10:20, i % 54 : i % 54 + 10] = (0, 255, 0)
        writer.write(frame)
    writer.release()
    return path


def new_session(base: str, tmp: Path) -> str:
    project = httpx.post(
        f"{base}/api/projects",
        json={
            "name": "bench",
            "cameraModel": "m",
            "cameraView": "Front-facing VRU",
            "signalType": "GPIO",
        },
        timeout=30,
    ).json()
    with write_video(tmp / "clip.mp4").open("rb") as f:
        video = httpx.post(
            f"{base}/api/projects/{project['id']}/videos",
            files={"file": ("clip.mp4", f, "video/mp4")},
            timeout=30,
        ).json()
    session = httpx.post(
        f"{base}/api/test-sessions",
        json={"name": "bench", "projectId": project["id"], "videoId": video["id"]},
        timeout=30,
    ).json()
    httpx.post(f"{base}/api/test-sessions/{session['id']}/start", timeout=30)
    return str(session["id"])


@functools.cache
def objects(count: int) -> list[DetectionIn]:
    """The detections of every bench frame, built once: the publisher shares the two cores with
    what it measures, so it spends as little as it can per message (only ids and times vary)."""
    return [
        DetectionIn(
            class_label="pedestrian" if k % 2 == 0 else "cyclist",
            confidence=0.5 + k / 20,
            box=BoxIn(x=10.0 * k, y=20.0, width=50.0, height=120.0),
            track_id=str(k),
        )
        for k in range(count)
    ]


@functools.cache
def session_uuid(session: str) -> uuid.UUID:
    return uuid.UUID(session)


def frame(session: str, seq: int, detections: int = 5) -> FrameMessage:
    return FrameMessage(
        device_id="bench-cam",
        session_id=session_uuid(session),
        seq=seq,
        frame_number=seq,
        timestamp=seq / 30,
        model_version="bench",
        detections=objects(detections),
    )


class AckCounter:
    """JetStream publish acks, counted as they arrive on one wildcard inbox.

    nats-py's `publish_async` makes a future and parses a JSON ack per message; at 10k messages
    a second that is a large share of the two cores the bench shares with what it measures.
    Here an ack is only counted; one without a stream sequence is kept as an error."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.acked = 0
        self.errors: list[str] = []
        self.moved = asyncio.Event()

    async def on_ack(self, msg: Any) -> None:
        if b'"seq"' not in msg.data:  # an error, or a status such as 503 (no stream yet)
            status = (msg.headers or {}).get("Status", "")
            self.errors.append(msg.data.decode() or f"status {status}")
        self.acked += 1
        self.moved.set()

    async def room_for(self, sent: int) -> None:
        await self.until(sent - self.window + 1)

    async def until(self, acked: int) -> None:
        while self.acked < acked:
            self.moved.clear()
            await self.moved.wait()


async def publish_for(
    nats_url: str,
    subject: str,
    session: str,
    seconds: float,
    fps: float = 0.0,
    window: int = 2000,
    acked: bool = True,
) -> tuple[int, float, float]:
    """(frames, first publish time, last ack time); fps 0 = as fast as JetStream acks.

    At most `window` messages are unacknowledged at a time; every message must be acked
    without error (a stream that refused one fails the bench). `acked=False` publishes
    without a reply subject, as a device that does not wait for JetStream's answer: the
    stream stores the frame all the same (deduplicated by `Nats-Msg-Id`), and the caller
    checks that every frame was stored."""
    nc = await nats.connect(nats_url)
    inbox = nc.new_inbox()
    acks = AckCounter(window)
    await nc.subscribe(f"{inbox}.*", cb=acks.on_ack, pending_msgs_limit=1_000_000)
    seq = 0
    start = time.time()
    mono = time.monotonic()
    end = mono + seconds
    while (now := time.monotonic()) < end:
        if fps:
            ahead = mono + seq / fps - now
            if ahead > 0:
                await asyncio.sleep(ahead)
        message = frame(session, seq)
        if acked:
            await acks.room_for(seq)
        if fps:  # stamped as it is handed to NATS: latency starts at the publish
            message.captured_at = datetime.now(UTC)
        await nc.publish(
            subject,
            encoder.encode(message),
            reply=f"{inbox}.{seq}" if acked else "",
            headers={"Nats-Msg-Id": message.msg_id},
        )
        seq += 1
    if acked:
        await acks.until(seq)
    else:
        await nc.flush()
    last = time.time()
    await nc.drain()
    if acks.errors:
        raise SystemExit(f"JetStream refused {len(acks.errors)} messages: {acks.errors[:3]}")
    return seq, start, last


def projected(database_url: str, session: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT frame_count, detection_count FROM rm_test_sessions WHERE id = %s", (session,)
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def detection_rows(database_url: str, session: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM rm_detections WHERE session_id = %s", (session,)
        ).fetchone()
    return int(row[0]) if row else 0


STATS = re.compile(r"IngestStats\(batches=(\d+), stored=(\d+), duplicates=(\d+)")


def last_ingest_stats(logs: list[Path]) -> dict[str, int]:
    """Summed running totals the ingest workers last logged (every 5 s)."""
    total = {"batches": 0, "stored": 0, "duplicates": 0}
    for log in logs:
        found = STATS.findall(log.read_text()) if log.exists() else []
        if found:
            for key, value in zip(total, map(int, found[-1]), strict=True):
                total[key] += value
    return total


def sustained(args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    base, database_url, dbname = ctx["base"], ctx["database_url"], ctx["dbname"]
    session = new_session(base, ctx["tmp"])
    wait_idle(base, ctx["nats_url"], ctx["stream"], database_url)
    stats0 = last_ingest_stats(ctx["logs"])
    meter = CpuMeter(
        ctx["server"].pid,
        database_url,
        dbname,
        [w.pid for w in ctx["workers"]],
        [w.pid for w in ctx["others"]],
    )
    cpu0, commits0 = meter.sample(), commits(database_url, dbname)
    subject = f"{ctx['prefix']}.detections.{session}"
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            samples.append((time.time(), projected(database_url, session)[0]))
            stop.wait(1.0)

    watcher = threading.Thread(target=watch)
    watcher.start()
    n, started, published_until = asyncio.run(
        publish_for(ctx["nats_url"], subject, session, args.duration)
    )
    deadline = time.monotonic() + 600
    while projected(database_url, session)[0] < n:
        if time.monotonic() > deadline:
            stop.set()
            raise SystemExit(f"only {projected(database_url, session)} of {n} frames projected")
        time.sleep(0.05)
    frames_done = time.time()
    while detection_rows(database_url, session) < n * 5:
        time.sleep(0.05)
    done = time.time()
    while relay_lag(database_url) > 0:
        time.sleep(0.2)
    relayed = time.time()
    stop.set()
    watcher.join()
    cpu1, commits1 = meter.sample(), commits(database_url, dbname)
    elapsed = done - started
    time.sleep(args.stats_wait)  # let the worker log its totals
    stats1 = last_ingest_stats(ctx["logs"])
    stats = {k: stats1[k] - stats0[k] for k in stats1}
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    window = [(t, c) for t, c in samples if started + 5 <= t <= published_until]
    steady = (
        (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
        if len(window) >= 2 and window[-1][0] > window[0][0]
        else 0.0
    )
    return {
        "frames": n,
        "publish_seconds": published_until - started,
        "publish_rate": n / (published_until - started),
        "elapsed": elapsed,
        "frames_projected_after": frames_done - started,
        "relayed_after": relayed - started,
        "frames_per_s": n / elapsed,
        "detections_per_s": 5 * n / elapsed,
        "steady_frames_per_s": steady,
        "ingest": stats,
        "batch_size": stats["stored"] / stats["batches"] if stats.get("batches") else None,
        "commits_per_s": (commits1 - commits0) / elapsed,
        "cpu": cpu,
        "cpu_total": sum(cpu.values()),
        "session": session,
    }


class WebSocketWatcher:
    """A WebSocket client on its own thread and event loop, so the time a message is seen does
    not wait on the publisher's loop."""

    def __init__(self, port: int, room: str) -> None:
        self.port = port
        self.room = room
        self.seen: list[tuple[datetime, dict[str, Any]]] = []
        self.joined = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)

    async def _watch(self) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{self.port}/ws") as ws:
            await ws.recv()
            await ws.send(json.dumps({"action": "join", "room": self.room}))
            await ws.recv()
            self.joined.set()
            while not self.stop.is_set():
                with suppress(TimeoutError):
                    raw = await asyncio.wait_for(ws.recv(), 0.2)
                    self.seen.append((datetime.now(UTC), json.loads(raw)))

    def __enter__(self) -> WebSocketWatcher:
        self.thread.start()
        if not self.joined.wait(30):
            raise SystemExit("WebSocket client could not join its room")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    at = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
    out = {k: ordered[min(len(ordered) - 1, int(len(ordered) * q))] for k, q in at.items()}
    out["max"] = ordered[-1]
    return out


async def latency(
    args: argparse.Namespace, ctx: dict[str, Any], fps: float, acked: bool
) -> dict[str, Any]:
    await asyncio.to_thread(
        wait_idle, ctx["base"], ctx["nats_url"], ctx["stream"], ctx["database_url"]
    )
    session = await asyncio.to_thread(new_session, ctx["base"], ctx["tmp"])
    subject = f"{ctx['prefix']}.detections.{session}"
    with WebSocketWatcher(ctx["port"], f"test_session:{session}") as watcher:
        n, _, last = await publish_for(
            ctx["nats_url"],
            subject,
            session,
            args.latency_seconds,
            fps=fps,
            window=50,
            acked=acked,
        )
        await asyncio.sleep(1.0)
    ended = datetime.fromtimestamp(last, UTC)
    delays: list[float] = []
    stored: list[float] = []
    """capturedAt -> sentAt: until the ingest published the live message (after its commit)."""
    published: list[float] = []
    after_end: list[float] = []
    """Messages that arrived once the stream had ended: the last frames, folded up and sent
    when their session's coalescing interval was up (by design, not pipeline delay)."""
    coalesced: list[int] = []
    for arrived, message in watcher.seen:
        if message["event"] == "detection_event":
            captured = datetime.fromisoformat(message["data"]["capturedAt"])
            sent = datetime.fromisoformat(message["data"]["sentAt"])
            coalesced.append(message["data"]["coalesced"] + 1)
            if arrived > ended:
                after_end.append((arrived - captured).total_seconds() * 1000)
                continue
            delays.append((arrived - captured).total_seconds() * 1000)
            stored.append((sent - captured).total_seconds() * 1000)
            published.append(captured.timestamp())
    deadline = time.monotonic() + 60
    while (stored_frames := projected(ctx["database_url"], session)[0]) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"latency run: only {stored_frames} of {n} frames stored")
        await asyncio.sleep(0.2)
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
        samples = args.logs / f"latency-{fps:.0f}-{'acked' if acked else 'unacked'}.csv"
        samples.write_text(
            "published_at,publish_to_websocket_ms,publish_to_sent_ms\n"
            + "".join(
                f"{p:.6f},{d:.2f},{s:.2f}\n"
                for p, d, s in zip(published, delays, stored, strict=True)
            )
        )
    return {
        "stored_frames": stored_frames,
        "frames": n,
        "achieved_fps": n / args.latency_seconds,
        "messages": len(delays),
        "frames_in_messages": sum(coalesced),
        "delays": percentiles(delays),
        "stored": percentiles(stored),
        "after_end": after_end,
    }


def http_ingest(args: argparse.Namespace, ctx: dict[str, Any], clients: int) -> float:
    wait_idle(ctx["base"], ctx["nats_url"], ctx["stream"], ctx["database_url"])
    session = new_session(ctx["base"], ctx["tmp"])
    counts = [0] * clients
    end = time.monotonic() + args.http_seconds

    def client(i: int) -> None:
        with httpx.Client(base_url=ctx["base"], timeout=30) as http:
            seq = 0
            while time.monotonic() < end:
                body = {
                    "testSessionId": session,
                    "timestamp": seq / 30,
                    "confidence": 0.8,
                    "classLabel": "pedestrian",
                }
                response = http.post("/api/detection-events", json=body)
                assert response.status_code == 200, response.text
                counts[i] += 1
                seq += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start)


async def delete_streams(nats_url: str, prefix: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for stream in (f"{prefix.upper()}_DETECTIONS", f"{prefix.upper()}_EVENTS"):
        with suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(stream)
    await nc.drain()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of sustained publishing")
    p.add_argument("--latency-fps", type=float, nargs="+", default=[5000.0, 1000.0])
    p.add_argument("--workers", type=int, default=0, help="`verity worker ingest` processes")
    p.add_argument(
        "--serve-ingest",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve ingests too (default: only when --workers is 0)",
    )
    p.add_argument(
        "--latency-acks",
        nargs="+",
        type=lambda v: {"acked": True, "unacked": False}[v],
        default=[True, False],
        metavar="{acked,unacked}",
        help="latency runs with every publish acked, not acked, or both (default: both)",
    )
    p.add_argument(
        "--split",
        action="store_true",
        help="relay and evaluator in their own `verity worker` processes, not in serve",
    )
    p.add_argument(
        "--latency-seconds", type=float, default=30.0, help="~10 messages/s: 300 samples"
    )
    p.add_argument("--http-seconds", type=float, default=10.0)
    p.add_argument("--stats-wait", type=float, default=5.5)
    p.add_argument("--skip", nargs="*", default=[], choices=["sustained", "latency", "http"])
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument("--logs", type=Path, help="copy the server's and workers' logs here at the end")
    args = p.parse_args()
    if args.serve_ingest is None:
        args.serve_ingest = args.workers == 0
    admin = os.environ.get(
        "VERITY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    nats_url = os.environ.get("VERITY_BENCH_NATS_URL", "nats://127.0.0.1:4222")
    prefix = f"b{uuid.uuid4().hex[:10]}"
    port = free_port()
    with tempfile.TemporaryDirectory() as tmpdir, fresh_database(admin, args.keep) as (url, dbname):
        tmp = Path(tmpdir)
        log = tmp / "server.log"
        env = {
            "VERITY_DATABASE_URL": url,
            "VERITY_NATS_URL": nats_url,
            "VERITY_NATS_PREFIX": prefix,
            "VERITY_DATA_DIR": str(tmp / "data"),
            "VERITY_PORT": str(port),
            "VERITY_SERVE_INGEST": "true" if args.serve_ingest else "false",
            "VERITY_SERVE_RELAY": "false" if args.split else "true",
            "VERITY_SERVE_EVALUATOR": "false" if args.split else "true",
        }
        try:
            with served(env, port, log) as server:
                workers = start_workers(env, args.workers, tmp)
                others = (
                    [
                        start_worker(env, name, tmp / f"{name}.log")
                        for name in ("relay", "evaluator")
                    ]
                    if args.split
                    else []
                )
                wait_ready(
                    ([log] if args.serve_ingest else [])
                    + [tmp / f"worker-{i}.log" for i in range(args.workers)]
                )
                ctx = {
                    "base": f"http://127.0.0.1:{port}",
                    "port": port,
                    "database_url": url,
                    "dbname": dbname,
                    "nats_url": nats_url,
                    "prefix": prefix,
                    "tmp": tmp,
                    "server": server,
                    "workers": workers,
                    "others": others,
                    "stream": f"{prefix.upper()}_DETECTIONS",
                    "logs": [log, *(tmp / f"worker-{i}.log" for i in range(args.workers))],
                }
                results: dict[str, Any] = {}
                if "sustained" not in args.skip:
                    results["sustained"] = sustained(args, ctx)
                    print_sustained(results["sustained"], args)
                if "latency" not in args.skip:
                    for fps in args.latency_fps:
                        for acked in args.latency_acks:
                            result = asyncio.run(latency(args, ctx, fps, acked))
                            print_latency(result, args, fps, acked)
                if "http" not in args.skip:
                    sequential = http_ingest(args, ctx, 1)
                    concurrent = http_ingest(args, ctx, 8)
                    print("\n== HTTP, one detection per POST /api/detection-events")
                    print(f"sequential client:   {sequential:8.0f} detections/s")
                    print(f"8 concurrent:        {concurrent:8.0f} detections/s")
                    if "sustained" in results:
                        nats_rate = results["sustained"]["detections_per_s"]
                        print(
                            f"NATS frames (5 det) vs sequential HTTP:"
                            f" {nats_rate / sequential:.0f}x;"
                            f" vs 8 concurrent: {nats_rate / concurrent:.0f}x"
                        )
                        print("(original platform, same machine: about 260 detections/s)")
                for w in workers + others:
                    w.terminate()
                    w.wait(20)
        finally:
            asyncio.run(delete_streams(nats_url, prefix))
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for path in tmp.glob("*.log"):
                    shutil.copy(path, args.logs / path.name)


def print_sustained(r: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n== Sustained ingest ({args.duration:.0f} s of publishing, 5 detections/frame,"
        f" verity serve{'' if args.workers else ' alone'}"
        f"{f' + {args.workers} verity worker ingest' if args.workers else ''};"
        f" ingest in serve: {'yes' if args.serve_ingest else 'no'})"
    )
    print(
        f"published:           {r['frames']} frames in {r['publish_seconds']:.1f} s"
        f" ({r['publish_rate']:.0f} frames/s accepted by JetStream)"
    )
    print(
        f"stored+projected:    all frames after {r['frames_projected_after']:.1f} s,"
        f" all detection rows after {r['elapsed']:.1f} s; relay re-published all frame events"
        f" to the events stream after {r['relayed_after']:.1f} s"
    )
    print(
        f"end to end:          {r['frames_per_s']:8.0f} frames/s  {r['detections_per_s']:8.0f}"
        " detections/s   (target >= 10k frames/s, 50k detections/s)"
    )
    print(f"steady (5 s .. end of publishing): {r['steady_frames_per_s']:.0f} frames/s projected")
    if r["batch_size"]:
        ing = r["ingest"]
        print(
            f"ingest batches:      {ing['batches']} (avg {r['batch_size']:.0f} frames each;"
            f" {ing['batches'] / r['elapsed']:.1f} event-store transactions/s)"
        )
    print(f"postgres commits/s:  {r['commits_per_s']:.0f} (all of this database's transactions)")
    print(f"CPU seconds ({r['cpu_total']:.1f} total over {r['elapsed']:.1f} s wall, 2 cores):")
    for name, seconds in sorted(r["cpu"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:40s} {seconds:7.1f} s  {100 * seconds / r['cpu_total']:5.1f}%")


def print_latency(r: dict[str, Any], args: argparse.Namespace, fps: float, acked: bool) -> None:
    how = (
        "each publish acked by JetStream"
        if acked
        else "publishes not acked: a device that does not wait for JetStream's answer"
    )
    print(
        f"\n== Latency at {fps:.0f} frames/s for {args.latency_seconds:.0f} s"
        f" (achieved {r['achieved_fps']:.0f} frames/s; {how})"
    )
    print(
        f"detection_event messages: {r['messages'] + len(r['after_end'])} carrying"
        f" {r['frames_in_messages']} of"
        f" {r['frames']} frames (coalesced, <= 5 per second); {r['stored_frames']} stored"
    )
    d, st = r["delays"], r["stored"]
    if d:
        print(
            f"publish -> WebSocket: p50 {d['p50']:.1f} ms  p90 {d['p90']:.1f} ms"
            f"  p99 {d['p99']:.1f} ms  max {d['max']:.1f} ms   (target p99 < 100 ms)"
        )
        print(
            f"  of which publish -> stored and sent by the ingest: p50 {st['p50']:.1f} ms"
            f"  p90 {st['p90']:.1f} ms  p99 {st['p99']:.1f} ms  max {st['max']:.1f} ms"
            " (the rest: live subject -> API -> WebSocket)"
        )
    if r["after_end"]:
        print(
            f"  not counted above: {len(r['after_end'])} message(s) after the stream ended, with"
            f" its last frames after {', '.join(f'{v:.0f}' for v in r['after_end'])} ms"
            " (held until the coalescing interval was up)"
        )


if __name__ == "__main__":
    main()
