"""Device ingest: frame messages from JetStream into the event store, exactly once each.

Loop: pull a batch from a durable consumer -> decode each with one prebuilt typed decoder
-> store every acceptable frame in ONE event-store transaction (`record_frames`) -> ack.
Nothing is acked before it is committed. A repeat (same device, session, seq) is recognised by
its deterministic id whenever it comes, so redeliveries and competing workers store nothing
twice. Poison (undecodable, schema-invalid, unknown or closed session) is published to
`<prefix>.detections.dlq` with the reason and the original subject in headers, then
terminated. Transient failures (database down) nak the batch with growing delay; a message
delivered `max_deliver` times whose store still fails is dead-lettered as `store_failed`
(the consumer's own `max_deliver` is the same, so JetStream never drops one silently while a
worker runs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

import anyio.to_thread
import psycopg
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from commands.application import Verity
from commands.context import run_as
from commands.detections import FrameRecorder, RecordFrames, RecordResult
from commands.device_messages import FrameMessage, InvalidMessage, decode_frame
from domain.access import service
from domain.events import EventMeta
from workers.live import LiveCoalescer
from workers.pull import Held, PullPump
from workers.streams import ensure_stream

log = logging.getLogger(__name__)

DURABLE = "verity-ingest"
IDLE_WAIT = 0.5
"""Seconds one pull request stays open on an idle stream before the next is sent."""
STATS_EVERY = 5.0
"""Seconds between log lines with the running totals (batches, stored, duplicates, ...)."""
RETRY_DELAY_MAX = 2.0
"""Longest pause (and redelivery delay) after failed stores in a row: once the database is
back, frames wait at most this long (it was 30 s: frames waited 43 s after a restart)."""
HEADER_REASON = "Verity-Dlq-Reason"
HEADER_DETAIL = "Verity-Dlq-Detail"
HEADER_SUBJECT = "Verity-Original-Subject"
MAX_DELIVER = 300
"""Deliveries of one message before its frames are dead-lettered as `store_failed`. Each
failed round waits out the nak backoff (at least 2 s once it has grown), so this is at least
ten minutes of a store that keeps failing: a database restart never dead-letters a frame."""
_ERRORS_REMEMBERED = 100
ERROR_QUIET_S = 300.0
"""A failure's traceback is logged once in this long; repeats in between only count. Time,
not the next success, ends the quiet: a success in another batch says nothing about a frame
that keeps failing (clearing on success logged its traceback again on every redelivery)."""
_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError)
"""Store failures of the database, not of the frames: connection lost, pool timeout, lock wait."""

INGEST_ACTOR = service("device-ingest").actor
"""Frames from NATS are recorded by the ingest service (device identities: NATS users)."""


@dataclass
class IngestStats:
    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    naked: int = 0
    last_error: str | None = None


def _header_text(text: str) -> str:
    """One line of printable text: a header value may hold no line break or NUL."""
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split())[:500]


class IngestWorker:
    def __init__(
        self,
        nc: NatsClient,
        app: Verity,
        *,
        record: FrameRecorder,
        stream: str,
        subject_prefix: str,
        live: LiveCoalescer | None = None,
        batch_size: int = 1000,
        durable: str = DURABLE,
        ack_wait: float = 10.0,
        max_deliver: int = MAX_DELIVER,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.app = app
        self.record = record
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.dlq_subject = f"{subject_prefix}.dlq"
        self.live = live
        self.batch_size = batch_size
        self.durable = durable
        self.ack_wait = ack_wait
        """How long a fetched, unacked batch is held before JetStream redelivers it (to any
        worker): bounds the delay a crashed worker's batch adds; a slower store only costs a
        redelivery, which the deterministic ids absorb."""
        self.max_deliver = max_deliver
        self.stats = IngestStats()
        self._failures = 0
        self._errors_logged: dict[str, float] = {}
        self._unreachable = False
        """Whether the last failed store could not reach the database (no use splitting)."""

    async def prepare(self) -> None:
        await ensure_stream(
            self.js, self.stream, [f"{self.subject_prefix}.*", f"{self.subject_prefix}.*.*"]
        )
        # The first hand-off to a thread costs ~80 ms (anyio loads its thread machinery) and
        # the first event-store query a connect: paid now, not by the first frames stored.
        await anyio.to_thread.run_sync(self.app.head)
        config = ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            filter_subject=f"{self.subject_prefix}.>",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
            max_ack_pending=100_000,
        )
        try:
            info = await self.js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            await self.js.add_consumer(self.stream, config=config)
            return
        if (
            info.config.max_deliver != self.max_deliver
            or info.config.filter_subject != config.filter_subject
        ):
            # made before redelivery was bounded (max_deliver -1), or before devices had
            # their own subjects (filter `<prefix>.*`): the same create request updates an
            # existing consumer's editable fields
            try:
                await self.js.add_consumer(self.stream, config=config)
            except APIError as err:  # it still consumes; say what would fix it
                log.warning(
                    "could not set max_deliver=%d on consumer %s (%s); delete the consumer to"
                    " have it made again",
                    self.max_deliver,
                    self.durable,
                    err,
                )

    async def run(self, stop: asyncio.Event) -> None:
        """Pull and process batches until `stop` is set.

        The pump keeps a pull request open and holds what arrives while a batch is being
        committed (in a thread, waiting on PostgreSQL); the moment the commit is done,
        everything held (up to `batch_size`) is the next batch. Under a backlog batches grow
        to `batch_size`; when the stream is nearly idle a frame is stored as soon as it
        arrives, not after a fixed linger.
        """
        await self.prepare()
        pulled = Held(self.batch_size)
        pump = PullPump(
            self.nc,
            api_prefix=self.js._prefix,  # "$JS.API", or a JetStream domain's prefix
            stream=self.stream,
            durable=self.durable,
            holder=pulled,
            expires=IDLE_WAIT,
        )
        puller = asyncio.create_task(pump.run(stop), name="ingest-pull")
        log.info("ingest ready: consuming %s.* as %s", self.subject_prefix, self.durable)
        live_task = asyncio.create_task(self.live.run(stop), name="live") if self.live else None
        reported = time.monotonic()
        try:
            while not stop.is_set():
                if time.monotonic() - reported >= STATS_EVERY:
                    reported = time.monotonic()
                    log.info("ingest totals: %s", self.stats)
                try:
                    msgs = await asyncio.wait_for(pulled.take(), 0.5)
                except TimeoutError:
                    if puller.done():  # it never fails on its own; surface a bug loudly
                        puller.result()
                    continue
                try:
                    await self.process(msgs)
                except Exception as err:  # unacked messages come back after ack_wait
                    self._log_failure("ingest batch failed; JetStream will redeliver it", err)
        finally:
            puller.cancel()
            await asyncio.gather(puller, return_exceptions=True)
            # pulled, never stored: let any worker have them now
            await asyncio.gather(*(m.nak() for m in pulled.drain()), return_exceptions=True)
            if live_task is not None:
                live_task.cancel()
                await asyncio.gather(live_task, return_exceptions=True)

    async def process(self, msgs: list[Msg]) -> None:
        """One batch: decode, store in one transaction, ack; dead-letter poison; nak on failure."""
        self.stats.batches += 1
        good: list[tuple[Msg, FrameMessage]] = []
        poison: list[tuple[Msg, str, str]] = []
        for msg in msgs:
            if msg.subject == self.dlq_subject:
                await msg.ack()  # our own dead letters live in the same stream
                continue
            try:
                frame = decode_frame(msg.data)
            except InvalidMessage as err:
                poison.append((msg, err.reason, err.detail))
                continue
            wrong = self._subject_mismatch(msg.subject, frame)
            if wrong is not None:
                poison.append((msg, "invalid", wrong))
                continue
            good.append((msg, frame))
        if good:
            failed = await self._commit(good, poison)
            if failed:
                await self._retry_or_give_up(failed, poison)
        for msg, reason, detail in poison:
            await self._dead_letter(msg, reason, detail)

    def _subject_mismatch(self, subject: str, frame: FrameMessage) -> str | None:
        """What the subject says that the message contradicts, or None.

        `<prefix>.<sessionId>` (Verity's own publishers, and devices where NATS has no
        authorization) or `<prefix>.<sessionId>.<deviceId>`, the only subject a device user
        may publish on: the device id there is the one NATS authenticated."""
        session, _, device = subject[len(self.subject_prefix) + 1 :].partition(".")
        if session != str(frame.session_id):
            return f"subject names session {session}, message names {frame.session_id}"
        if device and device != frame.device_id:
            return f"subject names device {device}, message names {frame.device_id}"
        return None

    async def _commit(
        self, good: list[tuple[Msg, FrameMessage]], poison: list[tuple[Msg, str, str]]
    ) -> list[Msg]:
        """Store and settle `good`; the messages that could not be stored.

        A store that fails while the database answers may be the fault of one frame, so the
        batch is split in halves down to it: its neighbours are stored now, not after its
        last delivery. While the database is unreachable nothing is split (every part would
        fail the same way)."""
        result = await self._store([f for _, f in good])
        if result is not None:
            await self._settle(good, result, poison)
            return []
        if len(good) == 1 or self._unreachable:
            return [m for m, _ in good]
        half = len(good) // 2
        return [*await self._commit(good[:half], poison), *await self._commit(good[half:], poison)]

    async def _store(self, frames: list[FrameMessage]) -> RecordResult | None:
        cmd = RecordFrames(frames=tuple(frames), received_at=datetime.now(UTC))
        meta = EventMeta(actor=INGEST_ACTOR, correlation_id=uuid4())
        try:
            result: RecordResult = await anyio.to_thread.run_sync(
                run_as, meta, self.record, cmd, self.app
            )
        except Exception as err:  # database down or similar: retry later, never crash
            self._failures += 1
            self._unreachable = isinstance(err, _UNREACHABLE)
            self._log_failure("ingest could not store a batch; it will be retried", err)
            return None
        self._failures = 0
        self.stats.last_error = None
        return result

    def _log_failure(self, what: str, err: Exception) -> None:
        """The traceback once per distinct error per ERROR_QUIET_S; repeats only count (see
        the totals line)."""
        text = f"{type(err).__name__}: {err}"
        self.stats.last_error = text
        now = time.monotonic()
        logged = self._errors_logged.get(text)
        if logged is not None and now - logged < ERROR_QUIET_S:
            log.debug("%s (again): %s", what, text)
            return
        if len(self._errors_logged) >= _ERRORS_REMEMBERED:
            self._errors_logged.clear()
        self._errors_logged[text] = now
        log.error("%s", what, exc_info=err)

    async def _retry_or_give_up(self, msgs: list[Msg], poison: list[tuple[Msg, str, str]]) -> None:
        """Nak what may still be retried; dead-letter what has had its last delivery."""
        last = [m for m in msgs if m.metadata.num_delivered >= self.max_deliver]
        detail = f"not stored after {self.max_deliver} deliveries: {self.stats.last_error}"
        poison.extend((m, "store_failed", detail) for m in last)
        retry = [m for m in msgs if m.metadata.num_delivered < self.max_deliver]
        if retry:
            await self._nak(retry)

    async def _settle(
        self,
        good: list[tuple[Msg, FrameMessage]],
        result: RecordResult,
        poison: list[tuple[Msg, str, str]],
    ) -> None:
        rejected = {r.index: r for r in result.rejected}
        for index, r in rejected.items():
            detail = f"{r.field}: {r.detail}" if r.field else r.detail
            poison.append((good[index][0], r.reason, detail))
        for i, (msg, _) in enumerate(good):
            if i not in rejected:
                await msg.ack()  # a buffered publish: no round trip each
        self.stats.stored += len(result.stored)
        self.stats.duplicates += len(result.duplicates)
        if self.live is not None and result.stored:
            self.live.stored([good[i][1] for i in result.stored])

    async def _nak(self, msgs: list[Msg]) -> None:
        delay = min(0.25 * 2 ** min(self._failures, 8), RETRY_DELAY_MAX)
        self.stats.naked += len(msgs)
        await asyncio.gather(*(m.nak(delay=delay) for m in msgs), return_exceptions=True)
        await asyncio.sleep(delay)

    async def _dead_letter(self, msg: Msg, reason: str, detail: str) -> None:
        headers = {
            HEADER_REASON: reason,
            HEADER_DETAIL: _header_text(detail),
            HEADER_SUBJECT: msg.subject,
            "Nats-Msg-Id": f"dlq:{msg.metadata.sequence.stream}",
        }
        original = (msg.headers or {}).get("Nats-Msg-Id")
        if original:
            headers["Verity-Original-Msg-Id"] = _header_text(original)
        try:
            await self.js.publish(self.dlq_subject, msg.data, headers=headers)
        except Exception as err:  # cannot park it: let it come back rather than lose it
            log.warning("dead-lettering failed, will retry: %s", err)
            await msg.nak(delay=1.0)
            return
        await msg.term()
        self.stats.dead_lettered += 1
