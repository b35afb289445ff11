"""SIGKILL the server mid-traffic and restart it: nothing lost, nothing applied twice."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import nats
import psycopg
import pytest

from tests.conftest import fresh_database
from verity.settings import Settings

pytestmark = pytest.mark.e2e
BODY = {
    "name": "crash",
    "cameraModel": "m",
    "cameraView": "Rear-facing VRU",
    "signalType": "Serial",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VERITY_DATABASE_URL": settings.database_url or "",
        "VERITY_NATS_URL": settings.nats_url or "",
        "VERITY_NATS_PREFIX": settings.nats_prefix,
        "VERITY_DATA_DIR": str(settings.data_dir),
        "VERITY_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "verity.cli", "serve"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")


@pytest.fixture
def server_log(tmp_path: Path) -> Path:
    return tmp_path / "server.log"


def stream_msg_ids(settings: Settings) -> list[int]:
    async def read() -> list[int]:
        nc = await nats.connect(settings.nats_url or "")
        js = nc.jetstream()
        sub = await js.subscribe(f"{settings.events_subject}.>", ordered_consumer=True)
        ids: list[int] = []
        while True:
            try:
                msg = await sub.next_msg(timeout=2)
            except nats.errors.TimeoutError:
                break
            store, _, position = (msg.headers or {})["Nats-Msg-Id"].rpartition(":")
            assert store and position.isdigit()  # `<store id>:<position>`
            ids.append(int(position))
        await nc.close()
        return ids

    return asyncio.run(read())


@pytest.fixture
def own_database(postgres_admin_url: str, settings: Settings) -> Iterator[Settings]:
    """This test floods projects; a database of its own keeps other tests' lists short."""
    with fresh_database(postgres_admin_url, "verity_crash") as url:
        yield msgspec.structs.replace(settings, database_url=url)


def test_sigkill_mid_traffic_then_restart(own_database: Settings, server_log: Path) -> None:
    settings = own_database
    port = free_port()
    server = start_server(settings, port, server_log)
    stop = threading.Event()
    accepted: list[str] = []

    def traffic() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while not stop.is_set():
                try:
                    response = client.post("/api/projects", json=BODY)
                except httpx.HTTPError:
                    return  # the server died under us
                if response.status_code == 200:
                    accepted.append(response.json()["id"])

    worker = threading.Thread(target=traffic)
    worker.start()
    time.sleep(1.5)
    server.send_signal(signal.SIGKILL)
    server.wait(10)
    stop.set()
    worker.join(10)
    assert accepted, "no request got through before the kill"

    server = start_server(settings, port, server_log)
    try:
        with psycopg.connect(settings.database_url or "") as conn:
            head = conn.execute("SELECT max(notification_id) FROM verity_events").fetchone()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                lag = conn.execute(
                    "SELECT min(position) FROM tracking WHERE name IN ('projects_v1','videos_v1')"
                ).fetchone()
                if lag and head and lag[0] >= head[0]:
                    break
                time.sleep(0.2)
            created = conn.execute(
                "SELECT count(*) FROM verity_events WHERE topic = 'domain.projects:Project.Created'"
                ' AND state LIKE \'%"name":"crash"%\''
            ).fetchone()
            rows = conn.execute("SELECT count(*) FROM rm_projects WHERE name = 'crash'").fetchone()
            ids = {
                r[0] for r in conn.execute("SELECT id::text FROM rm_projects WHERE name = 'crash'")
            }
            positions = [
                r[0] for r in conn.execute("SELECT notification_id FROM verity_events ORDER BY 1")
            ]
        assert created is not None and rows is not None
        assert rows[0] == created[0]  # every stored Created event projected exactly once
        assert set(accepted) <= ids  # every answered request is in the read model
        time.sleep(1.0)  # the relay catches up after restart
        msg_ids = stream_msg_ids(settings)
        assert head is not None
        assert len(msg_ids) == len(set(msg_ids))  # nothing re-emitted
        assert msg_ids == positions  # nothing lost, in the store's order
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(15)
