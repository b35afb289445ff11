"""CLI commands around devices: a simulated device, the wire schema."""

from __future__ import annotations

import asyncio
import json
import sys
from uuid import UUID

from verity.settings import Settings


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
            nc = await nats.connect(
                endpoints.nats_url, name="verity-simulator", **endpoints.nats_options
            )
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
