"""The original platform's device path: one detection per POST /api/detection-events.

Starts `verity serve` on a fresh database and NATS prefix (or uses `--base`, a server already
running), opens a running test session, then for each `--connections` count posts detections
in `--rounds` runs of `--seconds` from that many concurrent keep-alive connections (all in
this process's event loop; a minimal HTTP/1.1 client by default, which leaves the shared cores
to the server, or `--client httpx`), every request timed from send to answer. Prints
detections/s (median run), median and p99 latency, the server's CPU per request, and checks
that a GET after the POSTs sees exactly one stored detection per 200.

`--compare DIR` serves another checkout too (with its own .venv), e.g. the base commit in a
temporary git worktree, and takes the two servers in turn, run by run, so that other load on
the machine falls on both alike:
  git worktree add ../verity-base <commit> && (cd ../verity-base && uv sync)
  uv run python bench/bench_http_detections.py --compare ../verity-base

Usage: uv run python bench/bench_http_detections.py [--connections 1 4 8] [--rounds 3]
Other processes on the machine share its cores: figures are provisional, re-run to confirm.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import delete_streams, free_port, fresh_database, new_session

REPO = Path(__file__).resolve().parents[1]
TARGET_RATE = 1400.0
TARGET_P99_MS = 50.0


def serve(checkout: Path, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`verity serve` of `checkout`, run from it (`-m` imports the packages in the working
    directory first, so another checkout's python alone would serve this one's code)."""
    proc = subprocess.Popen(
        [str(checkout / ".venv" / "bin" / "python"), "-m", "verity.cli", "serve"],
        cwd=checkout,
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def body(session: str, seq: int) -> bytes:
    return msgspec.json.encode(
        {
            "test_session_id": session,
            "timestamp": seq / 30,
            "confidence": 0.8,
            "class_label": "pedestrian",
            "frame_number": seq % 90,
            "bounding_box": {"x": 10, "y": 20, "width": 20, "height": 20},
        }
    )


class RawConnection:
    """One keep-alive HTTP/1.1 connection speaking just enough to POST and read the answer.

    httpx spent ~1.4 ms of CPU per request here, as much as the server it measures, on a
    machine whose cores they share; this spends a few tens of microseconds."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, content: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(content)}\r\n\r\n"
        ).encode()
        self.writer.write(head + content)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def post_for(
    base: str, session: str, connections: int, seconds: float, client: str
) -> dict[str, Any]:
    """Each connection posts back to back until the time is up; latencies in ms."""
    latencies: list[float] = []
    failures: list[str] = []
    headers = {"content-type": "application/json"}
    end = time.monotonic() + seconds
    url = httpx.URL(base)

    async def raw(k: int) -> None:
        conn = RawConnection(url.host, url.port or 80)
        await conn.open()
        seq = k * 10_000_000
        try:
            while time.monotonic() < end:
                content = body(session, seq)
                sent = time.perf_counter()
                status, payload = await conn.post("/api/detection-events", content)
                if status == 200:
                    latencies.append((time.perf_counter() - sent) * 1000)
                else:
                    failures.append(f"{status} {payload[:200]!r}")
                seq += 1
        finally:
            await conn.close()

    async def with_httpx(k: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            seq = k * 10_000_000
            while time.monotonic() < end:
                content = body(session, seq)
                sent = time.perf_counter()
                r = await http.post("/api/detection-events", content=content, headers=headers)
                if r.status_code == 200:
                    latencies.append((time.perf_counter() - sent) * 1000)
                else:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                seq += 1

    connection = raw if client == "raw" else with_httpx
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    await asyncio.gather(*(connection(k) for k in range(connections)))
    elapsed = time.monotonic() - start
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "ok": len(latencies),
        "latencies": latencies,
        "failures": failures,
        "rate": len(latencies) / elapsed,
        "client_cpu": used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime,
    }


def stored_count(base: str, session: str) -> int:
    """Detections the session's read model holds (a GET after the POSTs must see them all)."""
    got = httpx.get(f"{base}/api/test-sessions/{session}", timeout=30).json()
    return int(got["detectionCount"])


def p99(ordered: list[float]) -> float:
    return ordered[int(len(ordered) * 0.99)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target:
    """One server under test: where it listens, its process (for its CPU) and its sessions."""

    def __init__(
        self, label: str, base: str, pid: int | None = None, database_url: str | None = None
    ) -> None:
        self.label, self.base, self.pid, self.database_url = label, base, pid, database_url
        self.results: dict[int, list[dict[str, Any]]] = {}
        self.sessions: dict[int, str] = {}
        self.cpu: dict[int, float] = {}
        self.transactions: dict[int, int] = {}

    def stored_transactions(self) -> int:
        """Store transactions so far: each claims its frames under one event id per session."""
        if self.database_url is None:
            return 0
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT count(DISTINCT event_id) FROM frame_receipts").fetchone()
        return int(row[0]) if row else 0


def measure(args: argparse.Namespace, targets: list[Target], tmp: Path) -> None:
    """Per connection count, `--rounds` runs of each server in turn, so that load from other
    processes on the machine falls on all of them alike."""
    for connections in args.connections:
        for t in targets:
            t.sessions[connections] = new_session(t.base, tmp)
            warm = asyncio.run(
                post_for(t.base, t.sessions[connections], connections, 1.0, args.client)
            )
            t.results[connections] = [warm]
            t.cpu[connections] = 0.0
            t.transactions[connections] = 0
        for _ in range(args.rounds):
            for t in targets:
                transactions = t.stored_transactions()
                before = cpu_seconds(t.pid) if t.pid else 0.0
                r = asyncio.run(
                    post_for(
                        t.base, t.sessions[connections], connections, args.seconds, args.client
                    )
                )
                t.cpu[connections] += (cpu_seconds(t.pid) if t.pid else 0.0) - before
                t.transactions[connections] += t.stored_transactions() - transactions
                t.results[connections].append(r)


def report(args: argparse.Namespace, targets: list[Target]) -> None:
    print(
        f"\n{args.rounds} x {args.seconds:.0f} s per server and connection count (after 1 s of"
        f" warm-up), 1 detection per request, {args.client} client; servers taken in turn"
    )
    print(
        f"{'server':>14} {'conns':>5} {'det/s':>7} {'(runs)':>18} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'max ms':>7} {'CPU ms/req':>10} {'req/commit':>10}  stored = answered"
    )
    for connections in args.connections:
        for t in targets:
            warm, *runs = t.results[connections]
            rates = sorted(r["rate"] for r in runs)
            latencies = sorted(x for r in runs for x in r["latencies"])
            ok = sum(r["ok"] for r in runs)
            stored = stored_count(t.base, t.sessions[connections])
            expected = warm["ok"] + ok
            check = "ok" if stored == expected else f"NO: {stored} stored, {expected} answered"
            cpu = f"{1000 * t.cpu[connections] / ok:10.2f}" if t.pid and ok else f"{'-':>10}"
            commits = t.transactions[connections]
            per_commit = f"{ok / commits:10.1f}" if commits else f"{'-':>10}"
            print(
                f"{t.label:>14} {connections:>5} {rates[len(rates) // 2]:7.0f}"
                f" {' '.join(f'{x:.0f}' for x in rates):>18}"
                f" {latencies[len(latencies) // 2]:7.2f} {p99(latencies):7.2f}"
                f" {latencies[-1]:7.1f} {cpu} {per_commit}  {check}"
            )
            failures = [f for r in runs for f in r["failures"]]
            if failures:
                print(f"   {len(failures)} failed, first: {failures[0]}")
    print(
        f"target at 8 connections: >= {TARGET_RATE:.0f} detections/s (median run),"
        f" p99 < {TARGET_P99_MS:.0f} ms"
    )


def start(
    args: argparse.Namespace, stack: ExitStack, tmp: Path, label: str, checkout: Path
) -> Target:
    """`verity serve` of `checkout` on a database and NATS prefix of its own."""
    admin = os.environ.get(
        "VERITY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    nats_url = os.environ.get("VERITY_BENCH_NATS_URL", "nats://127.0.0.1:4222")
    url, _ = stack.enter_context(fresh_database(admin, args.keep))
    port = free_port()
    prefix = f"b{uuid.uuid4().hex[:10]}"
    env = {
        "VERITY_DATABASE_URL": url,
        "VERITY_NATS_URL": nats_url,
        "VERITY_NATS_PREFIX": prefix,
        "VERITY_DATA_DIR": str(tmp / label / "data"),
        "VERITY_PORT": str(port),
    }
    (tmp / label).mkdir()
    server = serve(checkout, env, port, tmp / label / "server.log")

    def stop() -> None:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        asyncio.run(delete_streams(nats_url, prefix))

    stack.callback(stop)
    return Target(label, f"http://127.0.0.1:{port}", server.pid, url)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--connections", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--seconds", type=float, default=4.0, help="length of one run")
    p.add_argument("--rounds", type=int, default=3, help="runs per server and connection count")
    p.add_argument("--base", help="a running server to post to (default: start one)")
    p.add_argument(
        "--compare",
        metavar="DIR",
        type=Path,
        help="also serve this checkout (with its .venv), e.g. a worktree of the base commit",
    )
    p.add_argument(
        "--client", choices=["raw", "httpx"], default="raw", help="HTTP client (default: raw)"
    )
    p.add_argument("--keep", action="store_true", help="keep the databases")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir, ExitStack() as stack:
        tmp = Path(tmpdir)
        if args.base:
            targets = [Target("given", args.base.rstrip("/"), None)]
        else:
            targets = [start(args, stack, tmp, "this checkout", REPO)]
            if args.compare:
                targets.append(start(args, stack, tmp, "compared", args.compare.resolve()))
        measure(args, targets, tmp)
        report(args, targets)


if __name__ == "__main__":
    main()
