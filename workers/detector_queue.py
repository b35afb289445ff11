"""The detector's JetStream work queue: runs to execute and models to inspect.

A work-queue stream (`<PREFIX>_DETECTOR`, subjects `<prefix>.detector.run|inspect`) keeps each
message until one worker acks it; detector workers compete on one durable consumer. A message
names a run or a model by id (`Nats-Msg-Id` = `run:<id>` / `inspect:<id>`, so a repeat within
the duplicate window is dropped); the event store holds everything else. Whoever stores a
`DetectionRun.Requested` or `DetectorModel.Registered` enqueues it; a worker's sweep enqueues
again what is still waiting (a publish lost to an outage), and a repeat finds the run taken.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

RUN = "run"
INSPECT = "inspect"


def stream_name(prefix: str) -> str:
    return f"{prefix.upper().replace('.', '_')}_DETECTOR"


def subject_prefix(prefix: str) -> str:
    return f"{prefix}.detector"


class DetectorQueue:
    def __init__(self, js: JetStreamContext, prefix: str) -> None:
        self.js = js
        self.stream = stream_name(prefix)
        self.subject_prefix = subject_prefix(prefix)
        self._ready = False
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        """Create the stream once (idempotent across processes)."""
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            config = StreamConfig(
                name=self.stream,
                subjects=[f"{self.subject_prefix}.*"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=120.0,
                description="Verity detector work queue: runs to execute, models to inspect",
            )
            try:
                await self.js.stream_info(self.stream)
            except NotFoundError:
                await self.js.add_stream(config)
            self._ready = True

    async def publish(self, kind: str, ident: UUID) -> None:
        await self.ensure()
        await self.js.publish(
            f"{self.subject_prefix}.{kind}",
            str(ident).encode(),
            headers={"Nats-Msg-Id": f"{kind}:{ident}"},
        )

    async def run(self, run_id: UUID) -> None:
        await self.publish(RUN, run_id)

    async def inspect(self, model_id: UUID) -> None:
        await self.publish(INSPECT, model_id)
