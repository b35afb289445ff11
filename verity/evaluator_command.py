"""`verity worker evaluator`: completion evaluations and running figures, alone (scale-out)."""

from __future__ import annotations

import asyncio
import signal

from verity.settings import Settings


def evaluator_command(settings: Settings) -> None:
    import nats  # noqa: PLC0415 - keep other commands light
    from psycopg_pool import AsyncConnectionPool  # noqa: PLC0415

    from verity.bootstrap import (  # noqa: PLC0415
        open_application,
        servers,
        settle_heap,
        start_evaluator,
    )

    async def main(database_url: str, nats_url: str) -> None:
        app = await asyncio.to_thread(open_application, database_url)
        nc = await nats.connect(nats_url, name="verity-evaluator", max_reconnect_attempts=-1)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with AsyncConnectionPool(
            database_url, min_size=1, max_size=4, kwargs={"autocommit": True}
        ) as pool:
            tasks: list[asyncio.Task[None]] = []
            evaluator = await start_evaluator(nc, app, settings, pool, stop, tasks)
            settle_heap()
            await stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await nc.drain()
        app.close()
        print(
            f"evaluator stopped: {evaluator.evaluated} evaluations, {evaluator.frames} frames",
            flush=True,
        )

    with servers(settings) as endpoints:
        print(f"evaluator: {settings.events_subject} -> {settings.live_subject}", flush=True)
        asyncio.run(main(endpoints.database_url, endpoints.nats_url))
