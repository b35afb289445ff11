"""Start-up waiting: capped backoff, stops on request, and never logs credentials."""

from __future__ import annotations

import asyncio
import logging

import pytest

from verity import waiting
from verity.waiting import Stopped, keep_running, nats_location, postgres_location, wait_for

pytestmark = pytest.mark.unit


def test_locations_name_where_and_never_who() -> None:
    url = "postgresql://verity:s3cret@db.example:6543/verity?sslmode=require"
    assert postgres_location(url) == "db.example:6543/verity"
    assert nats_location("nats://user:s3cret@mq.example:4333") == "mq.example:4333"
    assert nats_location("tls://token@mq.example") == "mq.example:4222"


async def test_wait_for_backs_off_doubling_up_to_the_cap(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(waiting, "FIRST_DELAY", 0.01)
    monkeypatch.setattr(waiting, "MAX_DELAY", 0.04)
    tries = 0

    async def attempt() -> str:
        nonlocal tries
        tries += 1
        if tries < 6:
            raise ConnectionRefusedError("refused")
        return "up"

    with caplog.at_level(logging.INFO, logger="verity.waiting"):
        assert await wait_for("PostgreSQL", "db:5432/verity", attempt, asyncio.Event()) == "up"
    delays = [r.args[3] for r in caplog.records if r.levelno == logging.WARNING]  # type: ignore[index]
    assert delays == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert "waiting for PostgreSQL at db:5432/verity" in caplog.records[0].getMessage()
    assert caplog.records[-1].getMessage() == "PostgreSQL at db:5432/verity is up"


async def test_a_stop_ends_the_wait_at_once() -> None:
    stop = asyncio.Event()

    async def never() -> None:
        raise ConnectionRefusedError("refused")

    asyncio.get_running_loop().call_later(0.1, stop.set)
    started = asyncio.get_running_loop().time()
    with pytest.raises(Stopped):
        await wait_for("NATS", "mq:4222", never, stop)
    assert asyncio.get_running_loop().time() - started < 0.5  # not the 0.5 s + 1 s of backoff


async def test_a_stop_cancels_an_attempt_that_hangs() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    with pytest.raises(Stopped):
        await wait_for("NATS", "mq:4222", lambda: asyncio.sleep(60), stop)


async def test_keep_running_starts_a_failed_worker_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "FIRST_DELAY", 0.01)
    runs = 0

    async def run(stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("database went away during start-up")
        await stop.wait()

    stop = asyncio.Event()
    task = asyncio.create_task(keep_running("ingest", run, stop))
    await asyncio.sleep(0.2)
    assert runs == 3 and not task.done()
    stop.set()
    await asyncio.wait_for(task, 1)
