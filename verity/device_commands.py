"""CLI commands around devices: the ingest worker alone, a simulated device, the wire schema."""

from __future__ import annotations

import asyncio
import json
import sys
from uuid import UUID

from verity.settings import Settings


def ingest_command(settings: Settings) -> None:
    """`verity worker ingest`: the device ingest worker alone (scale out by starting more)."""
    from commands.detections import frame_recorder  # noqa: PLC0415
    from storage.frames import PostgresFrameStore  # noqa: PLC0415
    from verity.bootstrap import open_application, servers, settle_heap  # noqa: PLC0415
    from verity.waiting import (  # noqa: PLC0415 - keep other commands light
        Stopped,
        close_nats,
        connect_nats,
        keep_running,
        open_when_ready,
        postgres_location,
        stop_on_signals,
    )
    from workers.ingest import IngestWorker  # noqa: PLC0415
    from workers.live import LiveCoalescer  # noqa: PLC0415

    async def main(database_url: str, nats_url: str) -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        try:
            app = await open_when_ready(database_url, stop, open_application)
        except Stopped:
            return
        try:
            nc = await connect_nats(nats_url, "verity-ingest", stop)
        except Stopped:
            app.close()
            return

        async def publish(subject: str, payload: bytes) -> None:
            await nc.publish(subject, payload)

        worker = IngestWorker(
            nc,
            app,
            record=frame_recorder(PostgresFrameStore(app)),
            stream=settings.detections_stream,
            subject_prefix=settings.detections_subject,
            live=LiveCoalescer(publish, settings.live_subject),
        )
        settle_heap()
        await keep_running("ingest", worker.run, stop)
        await close_nats(nc)
        app.close()
        print(f"ingest stopped: {worker.stats}", flush=True)

    with servers(settings) as endpoints:
        where = postgres_location(endpoints.database_url)
        print(f"ingest: {settings.detections_subject}.* -> {where}", flush=True)
        asyncio.run(main(endpoints.database_url, endpoints.nats_url))


def simulate_command(
    settings: Settings, session: UUID, fps: float, duration: float, device: str, seed: int
) -> None:
    """`verity simulate-device`: publish a session's frames like a camera would, with a bar."""
    import nats  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    from verity.bootstrap import servers  # noqa: PLC0415
    from workers.device_simulator import frames, load_ground_truth, publish  # noqa: PLC0415

    with servers(settings) as endpoints:
        truth = load_ground_truth(endpoints.database_url, session)
        source = f"{len(truth)} ground-truth boxes" if truth else "synthetic objects"
        print(f"simulating {device} on session {session} from {source}", flush=True)

        async def main() -> int:
            nc = await nats.connect(endpoints.nats_url, name="verity-simulator")
            try:
                with tqdm(total=int(fps * duration), unit="frame", desc=device) as bar:
                    return await publish(
                        nc,
                        settings.detections_subject,
                        frames(session, device, fps, duration, truth, seed=seed),
                        fps,
                        bar.update,
                    )
            finally:
                await nc.drain()

        sent = asyncio.run(main())
        print(f"published {sent} frame messages to {settings.detections_subject}.{session}")


def device_schema_command() -> None:
    """`verity device-schema`: the JSON Schema of a frame message, generated from the Structs."""
    from commands.device_messages import frame_schema  # noqa: PLC0415

    json.dump(frame_schema(), sys.stdout, indent=2)
    print()
