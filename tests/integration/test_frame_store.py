"""The FrameStore contract (commands/frame_store.py), held by the PostgreSQL store and by the
in-memory one the handler tests use: all of a call or nothing, each frame id claimed once,
nothing stored once its session is closed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic

from commands.application import Verity
from commands.frame_store import FramesStoredBefore, FrameStore, SessionsClosed
from commands.test_sessions import ChangeSessionStatus, complete_test_session
from domain.detections import FrameBatch, RecordedFrame
from domain.events import EventMeta
from storage.frames import PostgresFrameStore
from storage.memory_frames import InMemoryFrameStore
from tests.conftest import fresh_database
from tests.unit.test_device_messages import _session_on_video
from verity.bootstrap import open_application

pytestmark = pytest.mark.integration

_RECORDED: Any = FrameBatch.Recorded


@pytest.fixture(scope="module")
def postgres_app(postgres_admin_url: str) -> Iterator[Verity]:
    with fresh_database(postgres_admin_url, "verity_frame_store") as url:
        app = open_application(url, pool_size=2)
        yield app
        app.close()


@pytest.fixture(params=["postgres", "memory"])
def app_and_store(request: pytest.FixtureRequest) -> tuple[Verity, FrameStore]:
    if request.param == "postgres":
        app: Verity = request.getfixturevalue("postgres_app")
        return app, PostgresFrameStore(app)
    app = Verity(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    return app, InMemoryFrameStore(app)


def batch(session: UUID, frame_ids: list[UUID]) -> Any:
    """A FrameBatch.Recorded event of one detection-less frame per id."""
    return _RECORDED(
        originator_id=uuid4(),
        originator_version=FrameBatch.INITIAL_VERSION,
        timestamp=FrameBatch.Recorded.create_timestamp(),
        originator_topic=get_topic(FrameBatch),
        meta=EventMeta(),
        session_id=session,
        received_at=datetime.now(UTC),
        frames=tuple(
            RecordedFrame(id=f, device_id="cam", seq=i, video_time=i / 30)
            for i, f in enumerate(frame_ids)
        ),
    )


def stored_ids(app: Verity, event: Any) -> list[UUID]:
    """The frame ids of a stored batch, or [] if it was not stored."""
    if not app.exists(event.originator_id):
        return []
    stored = app.repository.get(event.originator_id)
    assert isinstance(stored, FrameBatch)
    return [f.id for f in stored.frames]


def test_a_call_stores_all_its_events_and_answers_the_last_position(
    app_and_store: tuple[Verity, FrameStore],
) -> None:
    app, store = app_and_store
    first, second = UUID(_session_on_video(app, None)), UUID(_session_on_video(app, None))
    head = app.head()
    events = [batch(first, [uuid4(), uuid4()]), batch(second, [uuid4()])]
    position = store.record(events)
    assert position == app.head() and position is not None and position > head
    assert [stored_ids(app, e) for e in events] == [[f.id for f in e.frames] for e in events]
    assert store.record([]) is None


def test_frames_stored_before_are_named_and_nothing_of_the_call_is_stored(
    app_and_store: tuple[Verity, FrameStore],
) -> None:
    app, store = app_and_store
    session = UUID(_session_on_video(app, None))
    old, new = uuid4(), uuid4()
    store.record([batch(session, [old])])
    repeat = batch(session, [new, old])
    with pytest.raises(FramesStoredBefore) as refused:
        store.record([repeat])
    assert refused.value.frame_ids == {old}
    assert stored_ids(app, repeat) == []
    rest = batch(session, [new])
    store.record([rest])  # `new` was not claimed by the refused call
    assert stored_ids(app, rest) == [new]


def test_nothing_is_stored_for_a_closed_session_and_no_frame_is_claimed(
    app_and_store: tuple[Verity, FrameStore],
) -> None:
    app, store = app_and_store
    open_session = UUID(_session_on_video(app, None))
    closed = UUID(_session_on_video(app, None))
    complete_test_session(ChangeSessionStatus(id=closed), app)
    ids = [uuid4(), uuid4()]
    late = [batch(open_session, ids[:1]), batch(closed, ids[1:])]
    with pytest.raises(SessionsClosed) as refused:
        store.record(late)
    assert refused.value.sessions == {closed}
    assert [stored_ids(app, e) for e in late] == [[], []]
    again = batch(open_session, ids)
    store.record([again])
    assert stored_ids(app, again) == ids
