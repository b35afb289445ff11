"""`verity worker evaluator`: completion evaluations and running figures, alone (scale-out)."""

from __future__ import annotations

import asyncio

from verity.settings import Settings


def evaluator_command(settings: Settings) -> None:
    from psycopg_pool import AsyncConnectionPool  # noqa: PLC0415 - keep other commands light

    from verity.bootstrap import (  # noqa: PLC0415
        open_application,
        servers,
        settle_heap,
        start_evaluator,
    )
    from verity.pools import guard_async  # noqa: PLC0415
    from verity.waiting import (  # noqa: PLC0415
        Stopped,
        close_nats,
        connect_nats,
        open_when_ready,
        stop_on_signals,
    )

    async def main(database_url: str, nats_url: str) -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        try:
            app = await open_when_ready(database_url, stop, open_application)
        except Stopped:
            return
        try:
            nc = await connect_nats(nats_url, "verity-evaluator", stop)
        except Stopped:
            app.close()
            return
        pool = guard_async(
            AsyncConnectionPool(
                database_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
            )
        )
        async with pool:
            tasks: list[asyncio.Task[None]] = []
            evaluator = await start_evaluator(nc, app, settings, pool, stop, tasks)
            settle_heap()
            await stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await close_nats(nc)
        app.close()
        print(
            f"evaluator stopped: {evaluator.evaluated} evaluations, {evaluator.frames} frames",
            flush=True,
        )

    with servers(settings) as endpoints:
        print(f"evaluator: {settings.events_subject} -> {settings.live_subject}", flush=True)
        asyncio.run(main(endpoints.database_url, endpoints.nats_url))
