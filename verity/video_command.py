"""`verity worker video`: quality assessment of uploaded videos, alone (scale-out)."""

from __future__ import annotations

import asyncio

from verity.settings import Settings


def video_command(settings: Settings) -> None:
    from verity.bootstrap import open_application, servers, settle_heap  # noqa: PLC0415
    from verity.waiting import (  # noqa: PLC0415 - keep other commands light
        Stopped,
        close_nats,
        connect_nats,
        keep_running,
        open_when_ready,
        stop_on_signals,
    )
    from workers.video import build_video_worker  # noqa: PLC0415

    async def main(database_url: str, nats_url: str) -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        try:
            app = await open_when_ready(database_url, stop, open_application)
        except Stopped:
            return
        try:
            nc = await connect_nats(nats_url, "verity-video", stop)
        except Stopped:
            app.close()
            return
        worker = build_video_worker(nc, app, settings)
        settle_heap()
        await keep_running("video", worker.run, stop)
        await close_nats(nc)
        app.close()
        print(f"video worker stopped: {worker.stats}", flush=True)

    with servers(settings) as endpoints:
        print(f"video worker: {settings.events_subject}.video.uploaded", flush=True)
        asyncio.run(main(endpoints.database_url, endpoints.nats_url))
