"""Real servers for the tests: the machine's PostgreSQL and NATS, or embedded ones.

A fresh database per test module; a unique NATS subject/stream prefix per test, whose streams
are deleted after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import nats
import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from psycopg import sql

from tests.background_checks import MYPY
from tests.background_checks import start as start_in_background
from verity.embedded import EmbeddedNats, EmbeddedPostgres
from verity.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SERVERS_DIR = REPO / ".data" / "test-servers"
KINDS = ("unit", "integration", "e2e")

# CI (CI=true) replays the same examples every run, so a landing is judged on the code, not on
# the draw; a developer's run draws new ones and keeps what fails in .hypothesis/ to replay.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test says what it needs: a test without a kind would be skipped silently by
    `-m unit`, `-m integration` and `-m e2e` alike."""
    unmarked = [i.nodeid for i in items if not any(i.get_closest_marker(k) for k in KINDS)]
    if unmarked:
        raise pytest.UsageError(
            "tests without a unit/integration/e2e marker: " + ", ".join(unmarked)
        )
    if any(i.nodeid.endswith("test_quality.py::test_mypy_strict") for i in items):
        start_in_background(MYPY)


def _postgres_reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _tcp_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A superuser URL: VERITY_TEST_POSTGRES_URL, the machine's server, or an embedded one."""
    url = os.environ.get(
        "VERITY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    if _postgres_reachable(url):
        yield url
        return
    with EmbeddedPostgres(SERVERS_DIR / "postgres") as pg:
        yield pg.database_url("postgres")


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    url = os.environ.get("VERITY_TEST_NATS_URL", "nats://127.0.0.1:4222")
    if _tcp_reachable(url):
        yield url
        return
    with EmbeddedNats(SERVERS_DIR / "nats") as server:
        yield server.url


def create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return str(psycopg.conninfo.make_conninfo(admin_url, dbname=name))


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def fresh_database(admin_url: str, stem: str) -> Iterator[str]:
    name = f"{stem}_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


@pytest.fixture(scope="module")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database per test module (migrated on first use by the code under test).

    Per module, not per run: each test's relay publishes the whole database to its own new
    stream, so one module's ten thousand detections would otherwise slow every later test."""
    with fresh_database(postgres_admin_url, "verity_test") as url:
        yield url


@pytest.fixture
def nats_prefix(nats_url: str) -> Iterator[str]:
    """A subject/stream prefix of the test's own; its streams are deleted afterwards, so the
    shared NATS server does not keep every run's streams on disk."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield prefix
    # In a thread of its own: the test may have left an event loop running in this one.
    cleanup = threading.Thread(target=asyncio.run, args=(delete_streams(nats_url, prefix),))
    cleanup.start()
    cleanup.join(30)


async def delete_streams(nats_url: str, prefix: str) -> None:
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        for stream in await js.streams_info():
            if stream.config.name and stream.config.name.startswith(f"{prefix.upper()}_"):
                await js.delete_stream(stream.config.name)
    finally:
        await nc.close()


def settings_for(
    database_url: str, nats_url: str, data_dir: Path, nats_prefix: str | None = None, **more: Any
) -> Settings:
    """The settings every test's app runs with (a new NATS prefix unless one is given)."""
    return Settings(
        database_url=database_url,
        nats_url=nats_url,
        data_dir=data_dir,
        nats_prefix=nats_prefix or f"t{uuid.uuid4().hex[:12]}",
        read_wait_timeout=10.0,
        db_pool_size=4,
        **more,
    )


@pytest.fixture
def settings(database_url: str, nats_url: str, nats_prefix: str, tmp_path: Path) -> Settings:
    return settings_for(database_url, nats_url, tmp_path, nats_prefix)
