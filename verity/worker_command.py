"""`verity worker NAME`: one worker alone (scale-out), started as `verity serve` starts it.

The same opening (bootstrap.connected) and the same registry entry (worker_registry.WORKERS)
as inside `verity serve`; only the pools are smaller. SIGTERM/SIGINT stop it at any point,
including while it still waits for PostgreSQL or NATS.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from verity.settings import Settings

if TYPE_CHECKING:
    from verity.bootstrap import Endpoints

READ_POOL_SIZE = 4
WRITE_POOL_SIZE = 2


def worker_command(settings: Settings, name: str) -> None:
    from verity.bootstrap import servers  # noqa: PLC0415 - keep other commands light
    from verity.waiting import nats_location, postgres_location  # noqa: PLC0415

    with servers(settings) as endpoints:
        db, mq = postgres_location(endpoints.database_url), nats_location(endpoints.nats_url)
        print(f"{name}: database {db}, NATS {mq} (prefix {settings.nats_prefix})", flush=True)
        asyncio.run(_run_alone(settings, endpoints, name))


async def _run_alone(settings: Settings, endpoints: Endpoints, name: str) -> None:
    from verity.bootstrap import connected, settle_heap  # noqa: PLC0415
    from verity.waiting import Stopped, stop_on_signals  # noqa: PLC0415
    from verity.worker_registry import RunningWorkers  # noqa: PLC0415

    stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        async with connected(
            settings,
            endpoints,
            stop,
            client_name=f"verity-{name}",
            read_pool_size=READ_POOL_SIZE,
            write_pool_size=WRITE_POOL_SIZE,
        ) as ctx:
            workers = RunningWorkers(stop)
            try:
                await workers.start(ctx, [name])
                settle_heap()
                await stop.wait()
            finally:
                await workers.close()
            print(f"{name} stopped: {workers.workers[name].summary()}", flush=True)
    except Stopped:
        return
