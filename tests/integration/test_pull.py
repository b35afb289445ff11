"""The continuous pull (workers/pull.py) against a real JetStream: flow control and renewal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from workers.pull import Held, PullPump
from workers.streams import ensure_stream

pytestmark = pytest.mark.integration


async def _until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_the_pump_never_holds_more_than_there_is_room_for_and_renews_its_request(
    nats_url: str, nats_prefix: str
) -> None:
    async def scenario() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        stream = f"{nats_prefix.upper()}_PULL"
        await ensure_stream(js, stream, [f"{nats_prefix}.pull.*"])
        await js.add_consumer(
            stream,
            config=ConsumerConfig(
                durable_name="pump", name="pump", ack_policy=AckPolicy.EXPLICIT, ack_wait=30
            ),
        )
        for i in range(25):
            await js.publish(f"{nats_prefix}.pull.a", str(i).encode())
        holder = Held(limit=10)
        pump = PullPump(
            nc, api_prefix="$JS.API", stream=stream, durable="pump", holder=holder, expires=0.3
        )
        stop = asyncio.Event()
        task = asyncio.create_task(pump.run(stop))
        try:
            await _until(lambda: len(holder) == 10)
            await asyncio.sleep(0.4)  # a request past its expiry must not bring more
            assert len(holder) == 10
            first = holder.drain()
            await _until(lambda: len(holder) == 10)
            second = holder.drain()
            await _until(lambda: len(holder) == 5)
            third = holder.drain()
            got = [int(m.data) for m in first + second + third]
            assert got == list(range(25))  # in order, each once
            for msg in first + second + third:
                await msg.ack()

            await asyncio.sleep(1.0)  # idle: several requests expire and are renewed
            before = pump.requests
            await js.publish(f"{nats_prefix}.pull.a", b"late")
            await _until(lambda: len(holder) == 1)
            assert before >= 3

            # A request that delivered some messages and then expired is renewed on time too
            # (the server may not say that it expired).
            await asyncio.sleep(pump.expires + 0.1)
            published = time.monotonic()
            await js.publish(f"{nats_prefix}.pull.a", b"later")
            await _until(lambda: len(holder) == 2)
            assert time.monotonic() - published < pump.expires + 0.2
            assert [m.data for m in holder.drain()] == [b"late", b"later"]
        finally:
            stop.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await nc.close()

    asyncio.run(scenario())
