"""Socket.IO fan-out: many page sockets in one session room while detections are ingested.

Starts `verity serve` (API, projections, relay, evaluator, ingest: one node) on a fresh
database and NATS prefix. Each round, on a new running session:

1. without: frames (5 detections each, `capturedAt` stamped at publish) are published to the
   session's NATS subject at `--fps` for `--seconds`, while a prober process times
   `GET /api/test-sessions/{id}` at `--get-rate` requests/s, and one plain `/ws` client in
   the room notes each `detection_event` (the pipeline's own delay, for reference);
2. with: the same, with `--clients` Socket.IO clients (websocket transport, spread over
   `--client-procs` processes so they do not share the server's event loop, at nice
   `--client-nice` so that, like browsers on other machines, they take only the CPU the
   server leaves) joined to the session's room with `join_test_session`, each noting when
   every `detection_event` arrives. `--real-clients` of them (default 1) are python-socketio
   clients, to show the protocol is right; the others are `LeanClient`s speaking the same
   Engine.IO v4 / Socket.IO v5 packets at a fraction of the client CPU, so the client
   processes' own backlog does not pass for the server's latency.

Prints p50/p99 publish -> client latency: arrival - sentAt, the time the ingest stamps on the
message as it publishes it on NATS once the frame is stored (NATS, hub, Socket.IO fan-out and
the wire). Messages arriving after publishing ended are the coalescer's last flush and left
out, as in bench_ingest. Also: device -> client (arrival - capturedAt of the newest frame the
message carries) with its pipeline share (capturedAt -> sentAt), messages per client, GET
p50/p99 without and with the clients and their ratio, and CPU seconds of the server and the
clients.
Targets: Socket.IO p99 < 150 ms; GET p99 with clients within 20 % of without.

`--door-only RATE` publishes no frames: ready `detection_event` messages go straight onto the
session's live subject at RATE a second (what the ingest's coalescer sends, ~5/s per session),
so the figures are the door's alone (NATS -> hub -> Socket.IO -> clients).

Usage: uv run python bench/bench_socketio_fanout.py                 (small: 50 clients, 1k fps)
       uv run python bench/bench_socketio_fanout.py --clients 500 --fps 5000 --seconds 30
       uv run python bench/bench_socketio_fanout.py --clients 500 --door-only 10
Other processes on the machine share its cores: figures are provisional, re-run to confirm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import socketio
import websockets
from bench_ingest import (
    WebSocketWatcher,
    cpu_seconds,
    delete_streams,
    frame,
    free_port,
    fresh_database,
    new_session,
    percentiles,
    publish_for,
    served,
    start_workers,
    wait_idle,
    wait_ready,
)

from projections.live_messages import detection_message, live_subject, session_room

Receipt = tuple[float, float, float]
"""(arrived, capturedAt, sentAt) as POSIX seconds."""


# --- processes beside the server ---------------------------------------------------------------


def page_clients(base: str, count: int, real: int, nice: int, orders: Any, results: Any) -> None:
    """A client process: on ("join", session) connects `count` clients (the first `real` of
    them python-socketio clients, the others lean ones) and joins them to the session's room,
    answers "ready"; on "stop" disconnects them and answers their receipts. Runs at `nice`:
    browsers are on other machines and take none of the server's CPU; here they share its
    cores and should take only what it leaves."""
    os.nice(nice)
    asyncio.run(_page_clients(base, count, real, orders, results))


async def _page_clients(base: str, count: int, real: int, orders: Any, results: Any) -> None:
    while (order := await asyncio.to_thread(orders.get)) != "exit":
        _, session = order
        receipts: list[list[Receipt]] = [[] for _ in range(count)]
        heard = [0]
        gate = asyncio.Semaphore(16)
        clients = [_client(receipts[i], heard) for i in range(real)]
        await asyncio.gather(*(_join(c, base, session, gate) for c in clients))
        lean = [LeanClient(receipts[i], heard) for i in range(real, count)]
        await asyncio.gather(*(c.join(base, session, gate) for c in lean))
        results.put(("ready", None))
        await asyncio.to_thread(orders.get)  # "stop"
        await asyncio.gather(*(c.disconnect() for c in clients), *(c.close() for c in lean))
        results.put(("receipts", (receipts, heard[0])))


_TIMES = re.compile(r'"capturedAt":\s*"([^"]+)".*"sentAt":\s*"([^"]+)"')


class LeanClient:
    """A page socket at the least client-side cost: Engine.IO v4 / Socket.IO v5 text packets
    over one `websockets` connection (no compression), noting each `detection_event`'s arrival
    and its `capturedAt` / `sentAt` with a regular expression instead of decoding it. What the
    server sends it is exactly what it sends a python-socketio client or a browser."""

    def __init__(self, receipts: list[Receipt], heard: list[int]) -> None:
        self.receipts, self.heard = receipts, heard
        self.reader: asyncio.Task[None] | None = None
        self.ws: Any = None

    async def join(self, base: str, session: str, gate: asyncio.Semaphore) -> None:
        url = base.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        async with gate:
            self.ws = ws = await websockets.connect(url, compression=None, max_size=None)
            assert str(await ws.recv()).startswith("0")  # engine.io OPEN
            await ws.send("40")  # socket.io CONNECT to "/"
            while not (await self._next()).startswith("40"):
                pass
            join = json.dumps(["join_test_session", {"sessionId": session}])
            await ws.send(f"421{join}")
            while not (await self._next()).startswith("431"):  # its acknowledgement
                pass
        self.reader = asyncio.create_task(self._read())

    async def _next(self) -> str:
        while (message := await self.ws.recv()) == "2":  # engine.io PING
            await self.ws.send("3")
        return str(message)

    async def _read(self) -> None:
        receipts, heard = self.receipts, self.heard
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self.ws:
                arrived = time.time()
                if message == "2":  # engine.io PING
                    await self.ws.send("3")
                elif isinstance(message, str) and message.startswith('42["detection_event"'):
                    found = _TIMES.search(message)
                    assert found is not None, message[:200]
                    captured = datetime.fromisoformat(found[1]).timestamp()
                    sent = datetime.fromisoformat(found[2]).timestamp()
                    receipts.append((arrived, captured, sent))
                else:
                    heard[0] += 1

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            await self.reader


async def _join(
    client: socketio.AsyncClient, base: str, session: str, gate: asyncio.Semaphore
) -> None:
    async with gate:
        await client.connect(base, transports=["websocket"], wait_timeout=60)
        await client.call("join_test_session", {"sessionId": session}, timeout=60)


def _client(receipts: list[Receipt], heard: list[int]) -> socketio.AsyncClient:
    """A client noting each detection_event's times, and counting every event it hears."""
    client = socketio.AsyncClient(reconnection=False)

    async def on_any(event: str, *args: Any) -> None:
        heard[0] += 1

    client.on("*", on_any)

    async def on_detection(data: dict[str, Any]) -> None:
        arrived = time.time()
        captured = datetime.fromisoformat(data["capturedAt"]).timestamp()
        sent = datetime.fromisoformat(data["sentAt"]).timestamp()
        receipts.append((arrived, captured, sent))

    client.on("detection_event", on_detection)
    return client


def get_prober(url: str, seconds: float, rate: float, results: Any) -> None:
    """GET `url` at `rate` per second for `seconds`, one at a time; answers the latencies."""
    latencies: list[float] = []
    with httpx.Client(timeout=30) as http:
        start = time.monotonic()
        n = 0
        while (now := time.monotonic()) < start + seconds:
            wait = start + n / rate - now
            if wait > 0:
                time.sleep(wait)
            t0 = time.perf_counter()
            response = http.get(url)
            latencies.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.text
            n += 1
    results.put(latencies)


async def publish_live(
    nats_url: str, prefix: str, session: str, seconds: float, rate: float
) -> tuple[int, float, float]:
    """`--door-only`: ready `detection_event` messages straight onto the live subject at `rate`
    a second, as the ingest publishes them, with no frames stored: the door's share alone."""
    nc = await nats.connect(nats_url)
    subject = live_subject(f"{prefix}.live", session_room(session))
    start, mono, n = time.time(), time.monotonic(), 0
    while (now := time.monotonic()) < mono + seconds:
        ahead = mono + n / rate - now
        if ahead > 0:
            await asyncio.sleep(ahead)
        message = frame(session, n)
        message.captured_at = datetime.now(UTC)
        await nc.publish(subject, detection_message(message, frames=1, detections=5))
        n += 1
    await nc.flush()
    last = time.time()
    await nc.drain()
    return n, start, last


# --- one phase ---------------------------------------------------------------------------------


def run_phase(args: argparse.Namespace, ctx: dict[str, Any], with_clients: bool) -> dict[str, Any]:
    wait_idle(ctx["base"], ctx["nats_url"], ctx["stream"], ctx["database_url"])
    session = new_session(ctx["base"], ctx["tmp"])
    pool: list[tuple[Any, Any, Any]] = ctx["pool"] if with_clients else []
    connect_started = time.monotonic()
    for orders, _, _ in pool:
        orders.put(("join", session))
    for _, results, _ in pool:
        kind, _ = results.get(timeout=600)
        assert kind == "ready"
    connect_seconds = time.monotonic() - connect_started
    client_cpu0 = sum(cpu_seconds(p.pid or 0) for _, _, p in pool)
    server_cpu0 = cpu_seconds(ctx["server"].pid)

    probe_results: Any = ctx["mp"].Queue()
    url = f"{ctx['base']}/api/test-sessions/{session}"
    prober = ctx["mp"].Process(
        target=get_prober, args=(url, args.seconds, args.get_rate, probe_results)
    )
    subject = f"{ctx['prefix']}.detections.{session}"
    with WebSocketWatcher(ctx["port"], f"test_session:{session}") as plain:
        prober.start()
        frames, started, last = asyncio.run(
            publish_live(ctx["nats_url"], ctx["prefix"], session, args.seconds, args.door_only)
            if args.door_only
            else publish_for(
                ctx["nats_url"], subject, session, args.seconds, fps=args.fps, window=500
            )
        )
        get_latencies: list[float] = probe_results.get(timeout=120)
        prober.join(30)
        time.sleep(1.0)
    server_cpu = cpu_seconds(ctx["server"].pid) - server_cpu0

    def during(receipts: list[Receipt]) -> list[Receipt]:
        return [r for r in receipts if r[0] <= last]

    client_cpu = sum(cpu_seconds(p.pid or 0) for _, _, p in pool) - client_cpu0
    per_client: list[list[Receipt]] = []
    events = 0
    for orders, _, _ in pool:
        orders.put("stop")
    for _, results, _ in pool:
        kind, (receipts, heard) = results.get(timeout=300)
        assert kind == "receipts"
        per_client.extend(receipts)
        events += heard
    real = [r for receipts in per_client[: args.real_clients] for r in during(receipts)]

    plain_receipts = during(
        [
            (
                arrived.timestamp(),
                datetime.fromisoformat(m["data"]["capturedAt"]).timestamp(),
                datetime.fromisoformat(m["data"]["sentAt"]).timestamp(),
            )
            for arrived, m in plain.seen
            if m["event"] == "detection_event"
        ]
    )
    sio = [r for receipts in per_client for r in during(receipts)]
    return {
        "session": session,
        "frames": frames,
        "fps": frames / max(last - started, 1e-9),
        "connect_seconds": connect_seconds if pool else None,
        "get": percentiles(get_latencies),
        "gets": len(get_latencies),
        "plain": percentiles([(a - c) * 1000 for a, c, _ in plain_receipts]),
        "plain_messages": len(plain_receipts),
        "pipeline": percentiles([(s - c) * 1000 for _, c, s in plain_receipts + sio]),
        "socketio": percentiles([(a - c) * 1000 for a, c, _ in sio]),
        "fan_out": percentiles([(a - s) * 1000 for a, _, s in sio]),
        "real": percentiles([(a - s) * 1000 for a, _, s in real]),
        "real_messages": len(real),
        "per_client": [len(during(r)) for r in per_client],
        "events": events + sum(len(r) for r in per_client),
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "wall": last - started,
    }


# --- report ------------------------------------------------------------------------------------


def fmt(p: dict[str, float]) -> str:
    if not p:
        return "no samples"
    return f"p50 {p['p50']:7.1f}  p90 {p['p90']:7.1f}  p99 {p['p99']:7.1f}  max {p['max']:7.1f} ms"


def print_round(i: int, without: dict[str, Any], with_: dict[str, Any], clients: int) -> None:
    print(f"\n== round {i + 1}")
    for name, r in (("without clients", without), (f"with {clients} clients", with_)):
        print(
            f"{name}: {r['frames']} published at {r['fps']:.0f}/s;"
            f" server CPU {r['server_cpu']:.1f} s over {r['wall']:.1f} s"
            + (f"; client processes CPU {r['client_cpu']:.1f} s" if r["client_cpu"] else "")
        )
        print(f"  GET /api/test-sessions/{{id}} ({r['gets']}):  {fmt(r['get'])}")
        print(f"  plain /ws publish->client ({r['plain_messages']}): {fmt(r['plain'])}")
    counts = with_["per_client"]
    rate = with_["events"] / max(len(counts), 1) / with_["wall"]
    print(
        f"  Socket.IO publish->client, sentAt (the ingest's NATS publish) -> arrival"
        f" ({sum(counts)} detection_event receipts; per client min {min(counts, default=0)},"
        f" median {statistics.median(counts) if counts else 0:.0f}; {rate:.1f} events/s per"
        f" client, all kinds; joined in {with_['connect_seconds']:.1f} s): {fmt(with_['fan_out'])}"
    )
    print(f"    python-socketio client(s) ({with_['real_messages']}): {fmt(with_['real'])}")
    print(f"  device->client, capturedAt -> arrival: {fmt(with_['socketio'])}")
    print(f"    of which capturedAt->sentAt (ingest stored + published): {fmt(with_['pipeline'])}")
    extra = with_["server_cpu"] - without["server_cpu"]
    print(
        f"  Socket.IO events delivered (all kinds): {with_['events']};"
        f" server CPU over the run without clients: {extra:.2f} s"
        f" ({1e6 * extra / max(with_['events'], 1):.0f} us per delivered event)"
    )
    if without["get"] and with_["get"]:
        ratio = with_["get"]["p99"] / without["get"]["p99"]
        print(f"  GET p99 with / without: {ratio:.2f} (target <= 1.20)")


def print_summary(rounds: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    def median(key: str, which: int, q: str) -> float:
        values = [pair[which][key][q] for pair in rounds if pair[which][key]]
        return statistics.median(values) if values else float("nan")

    print(f"\n== medians over {len(rounds)} round(s)")
    print(
        f"Socket.IO publish->client p50 {median('fan_out', 1, 'p50'):.1f} ms,"
        f" p99 {median('fan_out', 1, 'p99'):.1f} ms (target p99 < 150 ms);"
        f" device->client p50 {median('socketio', 1, 'p50'):.1f} ms,"
        f" p99 {median('socketio', 1, 'p99'):.1f} ms"
    )
    print(
        f"plain /ws in the same runs: p99 {median('plain', 1, 'p99'):.1f} ms with clients,"
        f" {median('plain', 0, 'p99'):.1f} ms without"
    )
    g0, g1 = median("get", 0, "p99"), median("get", 1, "p99")
    print(
        f"GET p99 without {g0:.1f} ms, with {g1:.1f} ms: ratio {g1 / g0:.2f} (target <= 1.20);"
        f" p50 {median('get', 0, 'p50'):.1f} / {median('get', 1, 'p50'):.1f} ms"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=50, help="Socket.IO clients (full: 500)")
    p.add_argument("--client-procs", type=int, default=2, help="processes the clients share")
    p.add_argument(
        "--real-clients",
        type=int,
        default=1,
        help="of the clients, python-socketio ones (the others speak the protocol leanly)",
    )
    p.add_argument(
        "--client-nice", type=int, default=19, help="niceness of the client processes (0: none)"
    )
    p.add_argument("--fps", type=float, default=1000.0, help="frames/s published (full: 5000)")
    p.add_argument("--seconds", type=float, default=10.0, help="publishing per phase (full: 30)")
    p.add_argument("--get-rate", type=float, default=50.0, help="GETs per second, one at a time")
    p.add_argument("--rounds", type=int, default=1, help="without/with pairs, alternating")
    p.add_argument(
        "--door-only",
        type=float,
        metavar="RATE",
        help="no ingest: RATE ready detection_event messages/s straight onto the live subject",
    )
    p.add_argument(
        "--ingest-workers",
        type=int,
        default=0,
        help="run the ingest in N `verity worker ingest` processes beside an API-only serve"
        " (the scale-out a 5k frames/s deployment uses) instead of inside serve",
    )
    p.add_argument("--keep", action="store_true", help="keep the database")
    args = p.parse_args()
    admin = os.environ.get(
        "VERITY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    nats_url = os.environ.get("VERITY_BENCH_NATS_URL", "nats://127.0.0.1:4222")
    prefix = f"b{uuid.uuid4().hex[:10]}"
    port = free_port()
    spawn = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmpdir, fresh_database(admin, args.keep) as (url, dbname):
        tmp = Path(tmpdir)
        log = tmp / "server.log"
        env = {
            "VERITY_DATABASE_URL": url,
            "VERITY_NATS_URL": nats_url,
            "VERITY_NATS_PREFIX": prefix,
            "VERITY_DATA_DIR": str(tmp / "data"),
            "VERITY_PORT": str(port),
        }
        base = f"http://127.0.0.1:{port}"
        pool: list[tuple[Any, Any, Any]] = []
        serve_env = {**env, "VERITY_SERVE_INGEST": "false"} if args.ingest_workers else env
        workers: list[Any] = []
        try:
            with served(serve_env, port, log) as server:
                if args.ingest_workers:
                    workers = start_workers(env, args.ingest_workers, tmp)
                    wait_ready([tmp / f"worker-{i}.log" for i in range(args.ingest_workers)])
                else:
                    wait_ready([log])
                shares = [args.clients // args.client_procs] * args.client_procs
                shares[0] += args.clients - sum(shares)
                for i, share in enumerate(shares):
                    real = min(args.real_clients, share) if i == 0 else 0
                    orders, results = spawn.Queue(), spawn.Queue()
                    proc = spawn.Process(
                        target=page_clients,
                        args=(base, share, real, args.client_nice, orders, results),
                        daemon=True,
                    )
                    proc.start()
                    pool.append((orders, results, proc))
                ctx = {
                    "base": base,
                    "port": port,
                    "database_url": url,
                    "dbname": dbname,
                    "nats_url": nats_url,
                    "prefix": prefix,
                    "tmp": tmp,
                    "server": server,
                    "stream": f"{prefix.upper()}_DETECTIONS",
                    "pool": pool,
                    "mp": spawn,
                }
                print(
                    f"{args.clients} Socket.IO clients in {args.client_procs} processes"
                    f" (nice {args.client_nice}),"
                    f" {args.fps:.0f} frames/s (5 detections each) for {args.seconds:.0f} s"
                    f" per phase, GET at {args.get_rate:.0f}/s, {os.cpu_count()} cores",
                    flush=True,
                )
                rounds = []
                for i in range(args.rounds):
                    without = run_phase(args, ctx, with_clients=False)
                    with_ = run_phase(args, ctx, with_clients=True)
                    rounds.append((without, with_))
                    print_round(i, without, with_, args.clients)
                print_summary(rounds)
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(20)
            for orders, _, proc in pool:
                orders.put("exit")
                proc.join(10)
                if proc.is_alive():
                    proc.kill()
            asyncio.run(delete_streams(nats_url, prefix))


if __name__ == "__main__":
    main()
