"""Group commit of frames posted one per request (api/group_commit.py), on the in-memory store."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest

from api.group_commit import GroupCommit
from commands.application import Verity
from commands.detections import RecordFrames, RecordResult, frame_recorder
from commands.device_messages import FrameMessage, decode_frame
from domain.detections import FrameBatch
from domain.events import EventMeta
from domain.videos import VideoMetadata
from storage.memory_frames import InMemoryFrameStore
from tests.unit.test_device_messages import _session_on_video

pytestmark = pytest.mark.unit

META = EventMeta(correlation_id=uuid4())
SIZE = VideoMetadata(fps=30, frame_count=900, duration=30, width=640, height=480)


def message(session: str, seq: int, x: float = 10) -> FrameMessage:
    body = {
        "deviceId": "cam-1",
        "sessionId": session,
        "seq": seq,
        "timestamp": seq / 30,
        "detections": [{"classLabel": "cyclist", "box": {"x": x, "y": 0, "width": 5, "height": 5}}],
    }
    return decode_frame(msgspec.json.encode(body))


class Recorder:
    """The real record_frames on an in-memory store, noting each call's frames; `gate`, when
    set, holds every call until the test opens it."""

    def __init__(self, app: Verity) -> None:
        self.real = frame_recorder(InMemoryFrameStore(app))
        self.calls: list[int] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __call__(self, cmd: RecordFrames, app: Verity) -> RecordResult:
        self.calls.append(len(cmd.frames))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        return self.real(cmd, app)


@pytest.fixture
def app() -> Verity:
    return Verity(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def stored_frames(app: Verity) -> list[Any]:
    """Every frame in the store's FrameBatch events."""
    events = app.recorder.select_notifications(1, 10_000)
    batches = [app.repository.get(n.originator_id) for n in events]
    return [f for b in batches if isinstance(b, FrameBatch) for f in b.frames]


async def test_concurrent_posts_share_one_store_call(app: Verity) -> None:
    session = _session_on_video(app, SIZE)
    record = Recorder(app)
    commit = GroupCommit(app, record)
    posts = [commit.submit(message(session, s), uuid4(), META) for s in range(6)]
    outcomes = await asyncio.gather(*posts)
    assert record.calls == [6], "six posts queued together: one transaction"
    assert [o.status for o in outcomes] == ["stored"] * 6
    assert len({o.position for o in outcomes}) == 1 and commit.position == outcomes[0].position
    assert len(stored_frames(app)) == 6


async def test_posts_arriving_during_a_call_wait_for_the_next_and_share_it(app: Verity) -> None:
    """Nothing is answered before the call that stores it returns; the posts that came while
    the first call was under way are stored together by the next."""
    session = _session_on_video(app, SIZE)
    record = Recorder(app)
    record.gate = threading.Event()
    commit = GroupCommit(app, record, in_flight=1)
    first = asyncio.create_task(commit.submit(message(session, 0), uuid4(), META))
    await asyncio.to_thread(record.entered.wait, 10)
    later = [
        asyncio.create_task(commit.submit(message(session, s), uuid4(), META)) for s in (1, 2, 3)
    ]
    await asyncio.sleep(0.05)
    assert not first.done() and not any(t.done() for t in later), "answered before its commit"
    record.gate.set()
    await asyncio.gather(first, *later)
    assert record.calls == [1, 3]
    assert first.result().position is not None
    assert all(t.result().position > first.result().position for t in later)


async def test_a_store_failure_fails_every_post_of_its_call_and_no_other(app: Verity) -> None:
    session = _session_on_video(app, SIZE)
    record = Recorder(app)
    failing = True

    def flaky(cmd: RecordFrames, app_: Verity) -> RecordResult:
        if failing:
            record.calls.append(len(cmd.frames))
            raise RuntimeError("database said no")
        return record(cmd, app_)

    commit = GroupCommit(app, flaky)
    posts = [commit.submit(message(session, s), uuid4(), META) for s in range(4)]
    outcomes = await asyncio.gather(*posts, return_exceptions=True)
    assert record.calls == [4]
    assert all(isinstance(o, RuntimeError) and "said no" in str(o) for o in outcomes)
    assert stored_frames(app) == [] and commit.position == 0
    failing = False
    again = await commit.submit(message(session, 9), uuid4(), META)
    assert again.status == "stored", "the next call is not affected"


async def test_a_refused_frame_fails_only_its_own_post(app: Verity) -> None:
    """One post of the call names an unknown session, one has a box outside the 640x480
    video: each gets its own rejection, their neighbours are stored by the same call."""
    session = _session_on_video(app, SIZE)
    record = Recorder(app)
    commit = GroupCommit(app, record)
    frames = [
        message(session, 0),
        message(str(uuid4()), 1),
        message(session, 2, x=700),
        message(session, 3),
    ]
    ids = [uuid4() for _ in frames]
    outcomes = await asyncio.gather(
        *(commit.submit(f, i, META) for f, i in zip(frames, ids, strict=True))
    )
    assert record.calls == [4]
    assert [o.status for o in outcomes] == ["stored", "rejected", "rejected", "stored"]
    assert outcomes[1].rejection is not None and outcomes[1].rejection.reason == "unknown_session"
    assert outcomes[2].rejection is not None and outcomes[2].rejection.reason == "invalid"
    assert {f.id for f in stored_frames(app)} == {ids[0], ids[3]}


async def test_the_same_frame_posted_twice_together_is_stored_once(app: Verity) -> None:
    session = _session_on_video(app, SIZE)
    commit = GroupCommit(app, Recorder(app))
    fid: UUID = uuid4()
    outcomes = await asyncio.gather(
        *(commit.submit(message(session, 5), fid, META) for _ in range(3))
    )
    assert sorted(o.status for o in outcomes) == ["duplicate", "duplicate", "stored"]
    assert [f.id for f in stored_frames(app)] == [fid]


async def test_close_waits_for_what_is_queued(app: Verity) -> None:
    session = _session_on_video(app, SIZE)
    record = Recorder(app)
    commit = GroupCommit(app, record, in_flight=1)
    posts = [asyncio.create_task(commit.submit(message(session, s), uuid4(), META)) for s in (1, 2)]
    await asyncio.sleep(0)
    await commit.close()
    assert all(p.done() for p in posts) and len(stored_frames(app)) == 2
