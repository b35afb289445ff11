"""The ingest consumer's state read from real JetStream, as /health reports it."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from verity.settings import Settings
from workers.ingest import DURABLE
from workers.ingest_consumer import BACKLOG_LIMIT, ingest_consumer
from workers.streams import ensure_stream

pytestmark = pytest.mark.integration


async def test_a_backlog_nobody_consumes_is_reported_as_a_stall(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url or "")
    try:
        js = nc.jetstream()
        stream, subject = settings.detections_stream, settings.detections_subject
        await ensure_stream(js, stream, [f"{subject}.*"])
        absent = await ingest_consumer(js, stream, DURABLE)
        assert absent.exists is False and absent.problem is None
        await js.add_consumer(
            stream,
            config=ConsumerConfig(
                durable_name=DURABLE,
                filter_subject=f"{subject}.*",
                ack_policy=AckPolicy.EXPLICIT,
            ),
        )
        acks = [await js.publish_async(f"{subject}.s", b"{}") for _ in range(BACKLOG_LIMIT + 5)]
        await asyncio.gather(*acks)
        state = await ingest_consumer(js, stream, DURABLE)
        assert state.exists
        assert state.pending == BACKLOG_LIMIT + 5
        assert state.ack_pending == 0
        assert state.problem is not None and "never acked" in state.problem
    finally:
        await nc.close()
