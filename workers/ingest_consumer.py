"""How the device ingest is doing, seen from JetStream's durable consumer rather than a process.

Every ingest worker (the one in `verity serve` and any `verity worker ingest`) pulls from the
same durable consumer, so its state covers them all: what waits to be delivered, what was
delivered and not acked, what came back, how many pull requests are open (workers asking
for more), and when the consumer last delivered and last saw an ack.

Unhealthy: a backlog of at least `BACKLOG_LIMIT` frames and no ack for `STALL_AFTER`
seconds: the frames are there and nobody stores them (workers gone, or failing on every
batch). A large backlog that is being worked through is healthy: acks keep coming.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

BACKLOG_LIMIT = 1_000
"""Frames waiting (undelivered + unacked) from which a stall counts: at the measured ~13k
frames/s one worker clears that in a tenth of a second, a 30 fps camera sends it in 33 s."""
STALL_AFTER = 30.0
"""Seconds without any ack, with such a backlog, before the ingest is called stalled: well
above the retry pause (2 s) and the redelivery wait (10 s) of a worker riding out an outage."""
INFO_TIMEOUT = 1.0
"""Seconds the consumer-info request may take (a health probe must answer quickly)."""


class IngestConsumer(msgspec.Struct, kw_only=True, rename="camel"):
    durable: str
    exists: bool
    pending: int = 0
    """Stored and not yet delivered to any worker."""
    ack_pending: int = 0
    """Delivered to a worker and not yet acked (being stored, or lost with a worker)."""
    redelivered: int = 0
    """Delivered more than once and not yet acked."""
    waiting_pulls: int = 0
    """Open pull requests: workers alive and asking for frames."""
    last_delivered: datetime | None = None
    last_acked: datetime | None = None
    problem: str | None = None


async def ingest_consumer(
    js: JetStreamContext, stream: str, durable: str, now: datetime | None = None
) -> IngestConsumer:
    """The consumer's state and, when it has stalled, what is wrong."""
    try:
        info = await asyncio.wait_for(js.consumer_info(stream, durable), INFO_TIMEOUT)
    except NotFoundError:  # no ingest worker has started yet: nothing to judge
        return IngestConsumer(durable=durable, exists=False)
    state = IngestConsumer(
        durable=durable,
        exists=True,
        pending=info.num_pending or 0,
        ack_pending=info.num_ack_pending or 0,
        redelivered=info.num_redelivered or 0,
        waiting_pulls=info.num_waiting or 0,
        last_delivered=info.delivered.last_active if info.delivered else None,
        last_acked=info.ack_floor.last_active if info.ack_floor else None,
    )
    state.problem = stalled(state, now or datetime.now(UTC))
    return state


def stalled(state: IngestConsumer, now: datetime) -> str | None:
    """What is wrong when a large backlog sees no acks; None otherwise."""
    backlog = state.pending + state.ack_pending
    if backlog < BACKLOG_LIMIT:
        return None
    if state.last_acked is not None:
        quiet = (now - state.last_acked).total_seconds()
        if quiet < STALL_AFTER:
            return None
        since = f"no ack for {quiet:.0f}s"
    else:
        since = "never acked"
    return (
        f"{backlog} frames waiting ({state.pending} undelivered, {state.ack_pending} unacked)"
        f" and {since}; {state.waiting_pulls} pull requests open"
    )
