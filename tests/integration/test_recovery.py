"""Ingest rides out a PostgreSQL restart: nothing acked is lost or doubled, and it recovers fast.

The PostgreSQL here is a private one (the product's embedded launcher, in the test's own
folder), restarted in immediate mode mid-stream; the machine's shared server is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import msgspec
import nats
import pytest

from commands.detections import frame_recorder
from domain.detections import frame_id
from storage.frames import PostgresFrameStore
from tests.conftest import REPO
from tests.integration.test_ingest import frame, new_session
from tests.stored_frames import stored_frame_copies
from verity.bootstrap import open_application
from verity.embedded import EmbeddedPostgres
from verity.settings import Settings
from workers.ingest import IngestWorker

pytestmark = pytest.mark.integration

RECOVERY_LIMIT = 5.0
"""Seconds after PostgreSQL answers again by which frames must be stored again."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    """A private cluster, initialised once for the module (initdb is the slow part).

    Not under pytest's temp dir: run as root, PostgreSQL runs as another user, and every
    pytest session that starts meanwhile resets that dir's root to mode 0700, locking the
    server out of its own files (PANIC on pg_control)."""
    data_dir = Path(tempfile.mkdtemp(prefix="verity-recovery-"))
    try:
        with EmbeddedPostgres(data_dir):
            pass
        yield data_dir
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def private_postgres(cluster: Path) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(cluster) as pg:
        yield pg


def restart_immediately(pg: EmbeddedPostgres) -> float:
    """Immediate shutdown (SIGQUIT: no checkpoint, every session cut), then start; the
    moment it answers again."""
    assert pg.pid is not None
    os.kill(pg.pid, signal.SIGQUIT)
    pg.stop()  # reaps it and releases the data dir
    time.sleep(2.0)  # an outage the worker notices, not just a blip
    pg.start()
    return time.monotonic()


def copies_of(url: str, session: UUID) -> dict[UUID, int]:
    return dict(stored_frame_copies(url, session))


async def test_ingest_recovers_within_seconds_of_a_postgres_restart_and_stores_each_frame_once(
    private_postgres: EmbeddedPostgres, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    url = private_postgres.url
    settings = Settings(database_url=url, nats_url=nats_url, nats_prefix=nats_prefix)
    app = await asyncio.to_thread(open_application, url)  # pools as in production
    session = await asyncio.to_thread(new_session, app)
    nc = await nats.connect(nats_url)
    worker = IngestWorker(
        nc,
        app,
        record=frame_recorder(PostgresFrameStore(app)),
        stream=settings.detections_stream,
        subject_prefix=settings.detections_subject,
    )
    await worker.prepare()
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    acked: list[int] = []
    publishing = asyncio.Event()
    publishing.set()

    async def publish() -> None:
        js, seq = nc.jetstream(), 0
        while publishing.is_set():
            body = msgspec.json.encode(frame(session, seq))
            await js.publish(
                f"{settings.detections_subject}.{session}",
                body,
                headers={"Nats-Msg-Id": f"cam-1:{session}:{seq}"},
            )
            acked.append(seq)  # JetStream has it: the product owes us exactly one copy
            seq += 1
            await asyncio.sleep(0.01)

    publisher = asyncio.create_task(publish())
    try:
        await asyncio.sleep(2.0)
        before = await asyncio.to_thread(copies_of, url, session)
        assert before, "nothing was stored before the restart"

        answering = await asyncio.to_thread(restart_immediately, private_postgres)
        stored_at_restart = sum((await asyncio.to_thread(copies_of, url, session)).values())
        recovered = None
        while time.monotonic() - answering < 20:
            now = sum((await asyncio.to_thread(copies_of, url, session)).values())
            if now > stored_at_restart:
                recovered = time.monotonic() - answering
                break
            await asyncio.sleep(0.1)
        assert recovered is not None, "ingest did not store anything after the restart"
        assert recovered < RECOVERY_LIMIT, f"frames stored again only after {recovered:.1f}s"

        await asyncio.sleep(1.0)
        publishing.clear()
        await publisher
        expected = {frame_id("cam-1", session, seq) for seq in acked}
        deadline = time.monotonic() + 20
        copies = await asyncio.to_thread(copies_of, url, session)
        while set(copies) != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            copies = await asyncio.to_thread(copies_of, url, session)
        missing = len(expected - set(copies))
        assert missing == 0, f"{missing} of {len(expected)} acked frames never stored"
        assert set(copies) == expected
        doubled = {k: v for k, v in copies.items() if v != 1}
        assert doubled == {}, f"frames stored more than once: {len(doubled)}"
    finally:
        publishing.clear()
        stop.set()
        for task in (publisher, running):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        await nc.drain()
        await asyncio.to_thread(app.close)


# --------------------------------------------------------------------------- start-up


class Process:
    """A `verity` command in a subprocess, its log collected line by line as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "verity.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            cwd=REPO,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for_line(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, f"exited early:\n{''.join(self.lines)[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{''.join(self.lines)[-3000:]}"
            time.sleep(0.05)

    def stop_within(self, seconds: float) -> float:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(seconds + 10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return time.monotonic() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ingest_started_while_postgres_is_down_waits_then_starts(
    cluster: Path, tmp_path: Path, nats_url: str, nats_prefix: str
) -> None:
    pg = EmbeddedPostgres(cluster)
    url = pg.database_url("verity")  # not running: the worker must wait for it
    worker = Process(
        ["worker", "ingest"],
        {
            "VERITY_DATABASE_URL": url,
            "VERITY_NATS_URL": nats_url,
            "VERITY_NATS_PREFIX": nats_prefix,
            "VERITY_DATA_DIR": str(tmp_path),
        },
    )
    try:
        worker.wait_for_line("waiting for PostgreSQL at")
        assert "postgres@" not in "".join(worker.lines)  # where, never who
        with pg:
            worker.wait_for_line("ingest ready")
            assert worker.stop_within(2.0) < 2.0
    finally:
        if worker.proc.poll() is None:
            worker.proc.kill()


@pytest.mark.parametrize(
    "command", [["serve"], ["worker", "relay"], ["worker", "ingest"], ["worker", "evaluator"]]
)
def test_sigterm_while_waiting_for_nats_stops_within_two_seconds(
    command: list[str], tmp_path: Path, database_url: str, nats_prefix: str
) -> None:
    process = Process(
        command,
        {
            "VERITY_DATABASE_URL": database_url,
            "VERITY_NATS_URL": f"nats://user:secret@127.0.0.1:{_free_port()}",
            "VERITY_NATS_PREFIX": nats_prefix,
            "VERITY_DATA_DIR": str(tmp_path),
            "VERITY_PORT": str(_free_port()),
        },
    )
    try:
        process.wait_for_line("waiting for NATS at 127.0.0.1:")
        took = process.stop_within(2.0)
        assert took < 2.0, f"stopped after {took:.1f}s"
        assert "secret" not in "".join(process.lines)
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
