"""Device ingest on real NATS JetStream and PostgreSQL: exactly once, poison parked, racing safe."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import msgspec
import nats
import psycopg
import pytest
from nats.aio.client import Client as NatsClient
from psycopg_pool import ConnectionPool

from commands.application import Verity
from commands.detections import RecordFrames, RecordResult, frame_recorder, record_frames
from commands.projects import CreateProject, create_project
from commands.test_sessions import (
    ChangeSessionStatus,
    CreateTestSession,
    complete_test_session,
    create_test_session,
    delete_test_session,
    stop_test_session,
)
from commands.videos import RegisterUpload, register_upload
from domain.detections import frame_id
from domain.projects import CameraView, SignalType
from storage.frames import PostgresFrameStore
from tests.conftest import fresh_database
from tests.stored_frames import count_stored
from verity.bootstrap import open_application, projection_runners
from verity.settings import Settings
from workers.ingest import HEADER_REASON, HEADER_SUBJECT, IngestWorker
from workers.live import LiveCoalescer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of its own: every later test's relay replays the shared one from the start,
    and tens of thousands of frames there would slow them all."""
    with fresh_database(postgres_admin_url, "verity_ingest") as url:
        yield url


DETECTIONS_PER_FRAME = 2


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=4)
    yield application
    application.close()


def new_session(app: Verity, *, completed: bool = False) -> UUID:
    project = CreateProject(
        name="ingest",
        camera_model="m",
        camera_view=CameraView.FRONT_FACING_VRU,
        signal_type=SignalType.GPIO,
    )
    create_project(project, app)
    video = RegisterUpload(
        project_id=project.id,
        filename="v.mp4",
        original_name="v.mp4",
        size=1,
        sha256="x",
        metadata=None,
    )
    register_upload(video, app)
    session = CreateTestSession(name="s", project_id=project.id, video_id=video.id, start=True)
    create_test_session(session, app)
    if completed:
        complete_test_session(ChangeSessionStatus(id=session.id), app)
    return session.id


def frame(session: UUID, seq: int, device: str = "cam-1") -> dict[str, Any]:
    return {
        "deviceId": device,
        "sessionId": str(session),
        "seq": seq,
        "frameNumber": seq,
        "timestamp": seq / 30,
        "detections": [
            {
                "classLabel": "pedestrian",
                "confidence": 0.9,
                "box": {"x": 1, "y": 2, "width": 3, "height": 4},
            },
            {"classLabel": "cyclist", "trackId": str(seq % 7)},
        ],
    }


async def publish_all(nc: NatsClient, messages: list[tuple[str, bytes, dict[str, str]]]) -> None:
    js = nc.jetstream()
    for start in range(0, len(messages), 500):
        acks = [
            await js.publish_async(subject, data, headers=headers)
            for subject, data, headers in messages[start : start + 500]
        ]
        await asyncio.gather(*acks)


def stored_frames(database_url: str, session: UUID, seqs: range, device: str = "cam-1") -> int:
    """Stored copies of these frames (by their deterministic ids): len(seqs) when each is once."""
    return count_stored(database_url, session, [frame_id(device, session, seq) for seq in seqs])


async def wait_stored(database_url: str, session: UUID, seqs: range, wait: float) -> int:
    deadline = time.monotonic() + wait
    count = 0
    while time.monotonic() < deadline:
        count = await asyncio.to_thread(stored_frames, database_url, session, seqs)
        if count >= len(seqs):
            break
        await asyncio.sleep(0.2)
    return count


def projected(app: Verity, database_url: str, session: UUID) -> tuple[Any, ...]:
    """(frame_count, detection_count, class_counts, detection rows, distinct ids) once caught up."""
    with ConnectionPool(database_url, min_size=1, max_size=2) as pool:
        for runner in projection_runners(app, pool, 1000):
            runner.catch_up()
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT frame_count, detection_count, class_counts FROM rm_test_sessions"
                " WHERE id = %s",
                (session,),
            ).fetchone()
            rows = conn.execute(
                "SELECT count(*), count(DISTINCT (frame_id, idx)) FROM rm_detections"
                " WHERE session_id = %s",
                (session,),
            ).fetchone()
    assert row is not None and rows is not None
    return (*row, *rows)


async def dead_letters(nc: NatsClient, settings: Settings, n: int) -> list[Any]:
    js = nc.jetstream()
    sub = await js.subscribe(f"{settings.detections_subject}.dlq", ordered_consumer=True)
    out = []
    try:
        while len(out) < n:
            out.append(await sub.next_msg(timeout=5))
    finally:
        await sub.unsubscribe()
    return out


@pytest.fixture
async def nc(settings: Settings) -> AsyncIterator[NatsClient]:
    client = await nats.connect(settings.nats_url or "")
    yield client
    js = client.jetstream()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(settings.detections_stream)
    await client.drain()


def worker(conn: NatsClient, app: Verity, settings: Settings, **kw: Any) -> IngestWorker:
    kw.setdefault("record", frame_recorder(PostgresFrameStore(app)))
    return IngestWorker(
        conn,
        app,
        stream=settings.detections_stream,
        subject_prefix=settings.detections_subject,
        **kw,
    )


async def test_exactly_the_unique_valid_frames_are_stored_and_garbage_is_dead_lettered(
    app: Verity, settings: Settings, database_url: str, nc: NatsClient
) -> None:
    """10k frames, 1% repeated, 0.1% garbage of every kind (VERITY_INGEST_TEST_FRAMES=100000
    runs the issue's 100k; too slow for every suite run on two cores)."""
    n = int(os.environ.get("VERITY_INGEST_TEST_FRAMES", "10000"))
    session = new_session(app)
    closed = new_session(app, completed=True)
    subject = f"{settings.detections_subject}.{session}"
    rng = random.Random(4)
    messages: list[tuple[str, bytes, dict[str, str]]] = []
    for seq in range(n):
        body = msgspec.json.encode(frame(session, seq))
        messages.append((subject, body, {"Nats-Msg-Id": f"cam-1:{session}:{seq}"}))
    repeats = rng.sample(range(n), n // 100)
    for i, seq in enumerate(repeats):  # half caught by JetStream's window, half by our ids
        msg_id = f"cam-1:{session}:{seq}" if i % 2 else f"late-copy-{i}"
        messages.append(
            (subject, msgspec.json.encode(frame(session, seq)), {"Nats-Msg-Id": msg_id})
        )
    unknown = uuid4()
    garbage = [
        (subject, b"\xff not json", "undecodable"),
        (subject, b'{"deviceId": "cam-1"}', "invalid"),
        (subject, msgspec.json.encode({**frame(session, 1), "timestamp": -1}), "invalid"),
        (
            subject,
            msgspec.json.encode({**frame(session, 2), "detections": [{"classLabel": "car"}]}),
            "invalid",
        ),
        (subject, msgspec.json.encode(frame(uuid4(), 3)), "invalid"),  # subject != session
        (
            f"{settings.detections_subject}.{unknown}",
            msgspec.json.encode(frame(unknown, 1)),
            "unknown_session",
        ),
        (
            f"{settings.detections_subject}.{closed}",
            msgspec.json.encode(frame(closed, 1)),
            "session_closed",
        ),
    ]
    while len(garbage) < n // 1000 + 3:
        garbage.append((subject, b"[1, 2, 3]", "invalid"))
    for i, (subj, body, _) in enumerate(garbage):
        messages.append((subj, body, {"Nats-Msg-Id": f"garbage-{i}"}))
    rng.shuffle(messages)

    w = worker(nc, app, settings)
    await w.prepare()
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    started = time.monotonic()
    await publish_all(nc, messages)
    count = await wait_stored(database_url, session, range(n), 60 + n / 500)
    elapsed = time.monotonic() - started
    letters = await dead_letters(nc, settings, len(garbage))
    stop.set()
    await task

    assert count == n
    assert w.stats.stored == n and w.stats.dead_lettered == len(garbage)
    assert w.stats.duplicates == len(repeats) // 2  # the other half JetStream dropped
    reasons = sorted(m.headers[HEADER_REASON] for m in letters)
    assert reasons == sorted(r for _, _, r in garbage)
    assert {m.headers[HEADER_SUBJECT] for m in letters} == {s for s, _, _ in garbage}
    assert all(m.headers["Verity-Dlq-Detail"] for m in letters)
    print(f"\n{n} frames stored in {elapsed:.1f}s ({n / elapsed:.0f} frames/s incl. publish)")

    d = n * DETECTIONS_PER_FRAME
    assert projected(app, database_url, session) == (n, d, {"pedestrian": n, "cyclist": n}, d, d)


async def test_two_competing_workers_store_nothing_twice(
    app: Verity, settings: Settings, database_url: str, nc: NatsClient, tmp_path: Any
) -> None:
    """Every frame is published twice under different msg ids, so both workers see copies."""
    n = 3000
    session = new_session(app)
    other_app = open_application(database_url, pool_size=2)
    nc2 = await nats.connect(settings.nats_url or "")
    try:
        workers = [
            worker(nc, app, settings, batch_size=200),
            worker(nc2, other_app, settings, batch_size=200),
        ]
        for w in workers:
            await w.prepare()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stop)) for w in workers]
        subject = f"{settings.detections_subject}.{session}"
        messages = [
            (subject, msgspec.json.encode(frame(session, seq)), {"Nats-Msg-Id": f"{copy}:{seq}"})
            for seq in range(n)
            for copy in ("a", "b")
        ]
        await publish_all(nc, messages)
        count = await wait_stored(database_url, session, range(n), 60 + n / 500)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        await nc2.drain()
        other_app.close()
    assert count == n
    d = n * DETECTIONS_PER_FRAME
    assert projected(app, database_url, session) == (n, d, {"pedestrian": n, "cyclist": n}, d, d)
    assert sum(w.stats.stored for w in workers) == n
    assert sum(w.stats.duplicates for w in workers) == n
    assert all(w.stats.stored > 0 for w in workers), "both workers should have taken a share"


async def test_database_outage_naks_and_nothing_is_lost(
    app: Verity, settings: Settings, database_url: str, nc: NatsClient
) -> None:
    """A failing store acks nothing; the frames come back and are stored once it works again."""
    session = new_session(app)
    w = worker(nc, app, settings, batch_size=50)
    await w.prepare()
    real_store = w._store
    failures = 0

    async def flaky(frames: list[Any]) -> Any:
        nonlocal failures
        if failures < 3:
            failures += 1
            w._failures += 1
            w._unreachable = True
            return None  # as _store answers when the database is down
        return await real_store(frames)

    w._store = flaky  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    subject = f"{settings.detections_subject}.{session}"
    await publish_all(
        nc,
        [
            (subject, msgspec.json.encode(frame(session, s)), {"Nats-Msg-Id": str(s)})
            for s in range(100)
        ],
    )
    count = await wait_stored(database_url, session, range(100), 30)
    stop.set()
    await task
    assert count == 100 and failures == 3 and w.stats.naked > 0


async def test_live_coalescer_sends_a_few_messages_saying_how_many_were_folded() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    async def publish(subject: str, payload: bytes) -> None:
        sent.append((subject, msgspec.json.decode(payload)))

    from commands.device_messages import decode_frame

    session = uuid4()
    live = LiveCoalescer(publish, "p.live", interval=0.2)
    frames = [decode_frame(msgspec.json.encode(frame(session, s))) for s in range(100)]
    stop = asyncio.Event()
    sender = asyncio.create_task(live.run(stop))
    live.stored(frames[:1])  # first one goes out at once
    await asyncio.sleep(0.05)
    live.stored(frames[1:])  # folded: the interval is not up
    await asyncio.sleep(0.05)
    assert len(sent) == 1 and sent[0][1]["data"]["coalesced"] == 0
    await asyncio.sleep(0.3)  # the remainder goes out a quarter interval after it is up
    stop.set()
    await sender
    assert len(sent) == 2
    subject, message = sent[1]
    assert subject == f"p.live.test_session.{session}"
    assert message["event"] == "detection_event" and message["room"] == f"test_session:{session}"
    assert message["data"]["seq"] == 99 and message["data"]["coalesced"] == 98
    assert message["data"]["coalescedDetections"] == 98 * DETECTIONS_PER_FRAME


@pytest.mark.parametrize("competitor_commits", [True, False])
def test_a_competitor_claiming_the_same_frames_makes_us_wait_and_store_only_the_rest(
    app: Verity, database_url: str, competitor_commits: bool
) -> None:
    """A competing writer has claimed frames 0-3 and not committed yet: our batch waits on its
    claims, then stores only frames 4-9 if it commits, or all ten if it rolls back."""
    from commands.device_messages import decode_frame

    session = new_session(app)
    messages = tuple(decode_frame(msgspec.json.encode(frame(session, s))) for s in range(10))
    ids = [frame_id("cam-1", session, s) for s in range(10)]
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as competitor:
        competitor.execute(
            "INSERT INTO frame_receipts (frame_id, event_id) SELECT unnest(%s::uuid[]), %s",
            (ids[:4], uuid4()),
        )
        outcome: list[RecordResult] = []
        store = PostgresFrameStore(app)
        racer = threading.Thread(
            target=lambda: outcome.append(
                record_frames(RecordFrames(frames=messages, received_at=now), app, store)
            )
        )
        racer.start()
        racer.join(1.0)
        assert racer.is_alive() and not outcome, "our claim must wait for the competitor's"
        if competitor_commits:
            competitor.commit()
        else:
            competitor.rollback()
        racer.join(10)
    (result,) = outcome
    if competitor_commits:
        assert result.stored == tuple(range(4, 10)) and result.duplicates == tuple(range(4))
        assert count_stored(database_url, session, ids) == 6
    else:
        assert result.stored == tuple(range(10)) and result.duplicates == ()
        assert count_stored(database_url, session, ids) == 10


def test_frames_racing_a_completion_are_refused_not_stored_after_it(
    app: Verity, database_url: str
) -> None:
    """The session completes between our check of it and our insert: the check under the event
    store's write lock sees the completion, so the frames are rejected, not stored after it."""
    import commands.detections as detections
    from commands.device_messages import decode_frame

    session = new_session(app)
    messages = tuple(decode_frame(msgspec.json.encode(frame(session, s))) for s in range(5))
    real = detections._session_problems
    calls = 0

    def complete_after_check(app_: Verity, known_open: Any, sessions: Any) -> Any:
        nonlocal calls
        calls += 1
        problems = real(app_, known_open, sessions)
        if calls == 1:
            complete_test_session(ChangeSessionStatus(id=session), app_)
        return problems

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detections, "_session_problems", complete_after_check)
        result = detections.record_frames(
            detections.RecordFrames(frames=messages, received_at=datetime.now(UTC)),
            app,
            PostgresFrameStore(app),
        )
    assert result.stored == () and result.position is None
    assert [r.reason for r in result.rejected] == ["session_closed"] * 5
    ids = [frame_id("cam-1", session, s) for s in range(5)]
    assert count_stored(database_url, session, ids) == 0
    with psycopg.connect(database_url) as conn:
        claimed = conn.execute(
            "SELECT count(*) FROM frame_receipts WHERE frame_id = ANY(%s)", (ids,)
        ).fetchone()
    assert claimed == (0,), "the refused frames' claims were rolled back with them"


@pytest.mark.parametrize(
    ("end", "status"),
    [
        (complete_test_session, "completed"),
        (stop_test_session, "completed"),
        (delete_test_session, "deleted"),
    ],
)
def test_a_session_known_to_be_open_is_still_refused_once_completed(
    app: Verity,
    database_url: str,
    end: Callable[[ChangeSessionStatus, Verity], object],
    status: str,
) -> None:
    """The ingest remembers sessions it saw open instead of loading them for every batch; the
    check under the write lock still refuses frames of one closed since (by complete, by the
    frontend's Stop, or deleted), naming its status."""
    from commands.device_messages import decode_frame

    session = new_session(app)
    record_frames = frame_recorder(PostgresFrameStore(app))
    messages = tuple(decode_frame(msgspec.json.encode(frame(session, s))) for s in range(6))
    first = record_frames(RecordFrames(frames=messages[:3], received_at=datetime.now(UTC)), app)
    assert first.stored == (0, 1, 2)
    end(ChangeSessionStatus(id=session), app)
    late = record_frames(RecordFrames(frames=messages[3:], received_at=datetime.now(UTC)), app)
    assert late.stored == () and late.position is None
    assert [r.reason for r in late.rejected] == ["session_closed"] * 3
    assert status in late.rejected[0].detail
    ids = [frame_id("cam-1", session, s) for s in range(6)]
    assert count_stored(database_url, session, ids) == 3


def test_stored_batches_are_lz4_compressed_and_detection_ids_are_derived_when_read(
    app: Verity, database_url: str
) -> None:
    """Migration 0008 switched event state to lz4; rm_detections keeps no id column, and the
    ids read back are `detection_id(frame, index)`, the same every time they are read."""
    from commands.device_messages import decode_frame
    from domain.detections import detection_id
    from projections.test_sessions import session_detections

    session = new_session(app)
    messages = tuple(decode_frame(msgspec.json.encode(frame(session, s))) for s in range(50))
    cmd = RecordFrames(frames=messages, received_at=datetime.now(UTC))
    record_frames(cmd, app, PostgresFrameStore(app))
    with psycopg.connect(database_url) as conn:
        kinds = conn.execute(
            "SELECT DISTINCT pg_column_compression(state) FROM verity_events"
            " WHERE topic = 'domain.detections:FrameBatch.Recorded' AND octet_length(state) > 4096"
        ).fetchall()
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'rm_detections'"
        ).fetchall()
    assert kinds == [("lz4",)]
    assert ("id",) not in columns and ("frame_id",) in columns

    projected(app, database_url, session)

    async def read() -> list[Any]:
        from psycopg_pool import AsyncConnectionPool

        async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
            return await session_detections(pool, session)

    rows = asyncio.run(read())
    assert len(rows) == 50 * DETECTIONS_PER_FRAME
    assert {row.frame_id for row in rows} == {frame_id("cam-1", session, s) for s in range(50)}
    expected = {
        detection_id(frame_id("cam-1", session, s), i)
        for s in range(50)
        for i in range(DETECTIONS_PER_FRAME)
    }
    assert {row.id for row in rows} == expected
    assert [row.id for row in asyncio.run(read())] == [row.id for row in rows]


def test_backends_of_the_database_flush_their_writes_as_they_go(database_url: str) -> None:
    """Migration 0010: a new session on the product's database gets backend_flush_after, so
    read-model writes do not pile up into a writeback burst that stalls every commit."""
    from storage.migrate import migrate

    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SHOW backend_flush_after").fetchone()
    assert row == ("256kB",)
