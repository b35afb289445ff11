"""No device message can jam the ingest or poison a read model (issue 14), on real servers.

Each message an attacker found to either escape the decoder (holding its whole batch, never
acked, redelivered forever) or be stored with a value a read-model column cannot hold lands on
the dead-letter subject with its reason; nothing of it is stored, and the next good frame is
stored and projected as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID

import msgspec
import nats
import psycopg
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

import workers.ingest as ingest
from commands.application import Verity
from commands.detections import frame_recorder
from commands.projects import CreateProject, create_project
from commands.test_sessions import CreateTestSession, create_test_session
from commands.videos import RegisterUpload, register_upload
from domain.detections import frame_id
from domain.projects import CameraView, SignalType
from domain.videos import VideoMetadata
from storage.frames import PostgresFrameStore
from tests.conftest import fresh_database
from tests.integration.test_ingest import (
    dead_letters,
    frame,
    projected,
    publish_all,
    wait_stored,
    worker,
)
from tests.stored_frames import stored_frame_copies
from verity.bootstrap import open_application
from verity.settings import Settings
from workers.ingest import HEADER_REASON, MAX_DELIVER

pytestmark = pytest.mark.integration

WIDTH, HEIGHT = 640, 480
WAIT = 20.0
"""Seconds a good frame may take to be stored (it takes well under one)."""


@pytest.fixture(scope="module")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url, "verity_poison") as url:
        yield url


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=4)
    yield application
    application.close()


@pytest.fixture
async def nc(settings: Settings) -> AsyncIterator[NatsClient]:
    client = await nats.connect(settings.nats_url or "")
    yield client
    await client.drain()


def sized_session(app: Verity) -> UUID:
    """A running session on a video whose frame size is known (boxes are checked against it)."""
    project = CreateProject(
        name="poison",
        camera_model="m",
        camera_view=CameraView.FRONT_FACING_VRU,
        signal_type=SignalType.GPIO,
    )
    create_project(project, app)
    size = VideoMetadata(fps=30, frame_count=900, duration=30, width=WIDTH, height=HEIGHT)
    video = RegisterUpload(
        project_id=project.id,
        filename="v.mp4",
        original_name="v.mp4",
        size=1,
        sha256="x",
        metadata=size,
    )
    register_upload(video, app)
    session = CreateTestSession(name="s", project_id=project.id, video_id=video.id, start=True)
    create_test_session(session, app)
    return session.id


def with_change(session: UUID, **change: Any) -> bytes:
    return msgspec.json.encode({**frame(session, 0), **change})


def with_object(session: UUID, **obj: Any) -> bytes:
    return with_change(session, detections=[{"classLabel": "cyclist", **obj}])


def box(x: float, y: float, w: float, h: float) -> dict[str, float]:
    return {"x": x, "y": y, "width": w, "height": h}


TRIGGERS: dict[str, tuple[Any, str]] = {
    "seq 2^63": (lambda s: with_change(s, seq=2**63), "invalid"),
    "frameNumber 2^31": (lambda s: with_change(s, frameNumber=2**31), "invalid"),
    "frameNumber 10^12": (lambda s: with_change(s, frameNumber=10**12), "invalid"),
    "NUL in trackId": (lambda s: with_object(s, trackId="7\x00"), "invalid"),
    "NUL in modelVersion": (lambda s: with_change(s, modelVersion="v\x001"), "invalid"),
    "box x 1e308": (lambda s: with_object(s, box=box(1e308, 0, 1, 1)), "invalid"),
    "box left of the frame": (lambda s: with_object(s, box=box(-500, 0, 10, 10)), "invalid"),
    "box below the frame": (lambda s: with_object(s, box=box(0, HEIGHT + 1, 10, 10)), "invalid"),
    "1 x": (lambda s: b"1 x", "undecodable"),
    '"a"b': (lambda s: b'"a"b', "undecodable"),
    '{"a":1}}': (lambda s: b'{"a":1}}', "undecodable"),
    "1e400": (lambda s: b"1e400", "undecodable"),
    "seq 1e400": (
        lambda s: with_change(s, seq=0).replace(b'"seq":0', b'"seq":1e400'),
        "undecodable",
    ),
    "deep nesting": (lambda s: b"[" * 100_000, "undecodable"),
    "not UTF-8 in a string": (
        lambda s: with_change(s, deviceId="@").replace(b'"@"', b'"\x80"'),
        "undecodable",
    ),
}


@pytest.mark.parametrize("name", list(TRIGGERS))
async def test_a_bad_device_message_is_dead_lettered_and_the_next_frame_stored(
    name: str, app: Verity, settings: Settings, database_url: str, nc: NatsClient
) -> None:
    make, reason = TRIGGERS[name]
    session = sized_session(app)
    subject = f"{settings.detections_subject}.{session}"
    good = msgspec.json.encode(frame(session, 1))
    w = worker(nc, app, settings)
    await w.prepare()
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        await publish_all(nc, [(subject, make(session), {"Nats-Msg-Id": "bad"})])
        (letter,) = await dead_letters(nc, settings, 1)
        await publish_all(nc, [(subject, good, {"Nats-Msg-Id": "good"})])
        stored = await wait_stored(database_url, session, range(1, 2), WAIT)
    finally:
        stop.set()
        await task
    assert letter.headers[HEADER_REASON] == reason and letter.data == make(session)
    assert stored == 1
    assert stored_frame_copies(database_url, session) == {frame_id("cam-1", session, 1): 1}
    # the read models take it: a poisoned value would fail their COPY here
    assert projected(app, database_url, session)[:2] == (1, 2)


async def test_good_frames_in_a_batch_with_garbage_are_stored_without_waiting(
    app: Verity, settings: Settings, database_url: str, nc: NatsClient
) -> None:
    """Every trigger and 40 good frames, published before the worker starts so they arrive
    together: the good ones are stored and acked at their first delivery."""
    session = sized_session(app)
    subject = f"{settings.detections_subject}.{session}"
    messages = []
    for seq in range(40):
        messages.append(
            (subject, msgspec.json.encode(frame(session, seq)), {"Nats-Msg-Id": f"g{seq}"})
        )
        if seq < len(TRIGGERS):
            make, _ = list(TRIGGERS.values())[seq]
            messages.append((subject, make(session), {"Nats-Msg-Id": f"b{seq}"}))
    w = worker(nc, app, settings)
    await w.prepare()
    await publish_all(nc, messages)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        stored = await wait_stored(database_url, session, range(40), WAIT)
        letters = await dead_letters(nc, settings, len(TRIGGERS))
        info = await nc.jetstream().consumer_info(settings.detections_stream, w.durable)
    finally:
        stop.set()
        await task
    assert stored == 40 and w.stats.stored == 40
    assert sorted(m.headers[HEADER_REASON] for m in letters) == sorted(
        r for _, r in TRIGGERS.values()
    )
    assert w.stats.naked == 0 and w.stats.duplicates == 0 and info.num_ack_pending == 0
    assert projected(app, database_url, session)[:2] == (40, 80)


async def test_a_frame_the_store_refuses_holds_no_neighbour_and_is_dead_lettered_at_last(
    app: Verity,
    settings: Settings,
    database_url: str,
    nc: NatsClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The store fails whenever frame 13 is in the batch (as PostgreSQL would for a value it
    cannot hold): the batch is split down to it, its 29 neighbours are stored at their first
    delivery, and on its last delivery (max_deliver) frame 13 is dead-lettered as
    `store_failed`. The traceback is logged once, not once per try."""
    session = sized_session(app)
    subject = f"{settings.detections_subject}.{session}"
    real = frame_recorder(PostgresFrameStore(app))

    def refuses_13(cmd: Any, app_: Verity) -> Any:
        if any(f.seq == 13 for f in cmd.frames):
            raise psycopg.errors.NumericValueOutOfRange("integer out of range")
        return real(cmd, app_)

    w = worker(nc, app, settings, max_deliver=3, record=refuses_13)
    await w.prepare()
    await publish_all(
        nc,
        [
            (subject, msgspec.json.encode(frame(session, s)), {"Nats-Msg-Id": str(s)})
            for s in range(30)
        ],
    )
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        with caplog.at_level(logging.DEBUG, logger="workers.ingest"):
            (letter,) = await dead_letters_within(nc, settings, 1, 30)
        stored = await wait_stored(database_url, session, range(30), 1)
        info = await nc.jetstream().consumer_info(settings.detections_stream, w.durable)
    finally:
        stop.set()
        await task
    assert letter.headers[HEADER_REASON] == "store_failed"
    assert letter.headers["Verity-Original-Msg-Id"] == "13"
    assert "after 3 deliveries" in letter.headers["Verity-Dlq-Detail"]
    assert "integer out of range" in letter.headers["Verity-Dlq-Detail"]
    assert stored == 29 and w.stats.stored == 29
    assert info.config.max_deliver == 3 and info.num_ack_pending == 0
    assert w.stats.naked == 2 and w.stats.duplicates == 0, "only frame 13 came back, twice"
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]


async def test_while_the_database_is_unreachable_batches_are_retried_whole(
    app: Verity,
    settings: Settings,
    database_url: str,
    nc: NatsClient,
) -> None:
    """A connection failure is not split down (every part would fail alike) and dead-letters
    nothing: the frames are naked and stored once the database answers."""
    session = sized_session(app)
    subject = f"{settings.detections_subject}.{session}"
    real = frame_recorder(PostgresFrameStore(app))
    failing_calls: list[int] = []

    def down_twice(cmd: Any, app_: Verity) -> Any:
        if len(failing_calls) < 2:
            failing_calls.append(w.stats.batches)
            raise psycopg.OperationalError("connection refused")
        return real(cmd, app_)

    w = worker(nc, app, settings, record=down_twice)
    await w.prepare()
    await publish_all(
        nc,
        [
            (subject, msgspec.json.encode(frame(session, s)), {"Nats-Msg-Id": str(s)})
            for s in range(20)
        ],
    )
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        stored = await wait_stored(database_url, session, range(20), WAIT)
    finally:
        stop.set()
        await task
    assert stored == 20 and w.stats.dead_lettered == 0 and w.stats.naked >= 20
    assert len(set(failing_calls)) == 2, "one store call per batch while it is unreachable"


async def dead_letters_within(nc: NatsClient, settings: Settings, n: int, wait: float) -> list[Any]:
    js = nc.jetstream()
    sub = await js.subscribe(f"{settings.detections_subject}.dlq", ordered_consumer=True)
    out = []
    try:
        while len(out) < n:
            out.append(await sub.next_msg(timeout=wait))
    finally:
        await sub.unsubscribe()
    return out


async def test_a_consumer_made_with_unbounded_redelivery_is_bounded_at_start(
    app: Verity, settings: Settings, nc: NatsClient
) -> None:
    w = worker(nc, app, settings)
    js = nc.jetstream()
    await ingest.ensure_stream(js, settings.detections_stream, [f"{settings.detections_subject}.*"])
    await js.add_consumer(
        settings.detections_stream,
        config=ConsumerConfig(
            name=w.durable,
            durable_name=w.durable,
            filter_subject=f"{settings.detections_subject}.*",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=w.ack_wait,
            max_deliver=-1,
            max_ack_pending=100_000,
        ),
    )
    await w.prepare()
    info = await js.consumer_info(settings.detections_stream, w.durable)
    assert info.config.max_deliver == MAX_DELIVER
    # made before devices had subjects of their own: it now takes those too
    assert info.config.filter_subject == f"{settings.detections_subject}.>"
    stream = await js.stream_info(settings.detections_stream)
    subject = settings.detections_subject
    assert stream.config.subjects == [f"{subject}.*", f"{subject}.*.*"]
