"""Write side of detections: store a batch of frame messages once each, in one transaction.

The frames of one session that arrive together become one `FrameBatch.Recorded` event (split
at `MAX_FRAMES_PER_EVENT`). Exactly-once per frame id comes from `frame_receipts`: in the same
transaction as the events, each frame's id is claimed with `INSERT ... ON CONFLICT DO NOTHING`.
That whole transaction is ONE call of `verity_record_frames` (migration 0009): one round trip,
and the event store's write lock is held only while PostgreSQL works. If any frame turns out
to have been stored before (a competitor's uncommitted claim makes the call wait for its
commit first), the call stores nothing; the frames already stored are looked up and the call
is made again with the rest."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import msgspec
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic
from psycopg import Cursor, DatabaseError
from psycopg.rows import tuple_row

from commands.application import Position, Verity
from commands.device_messages import FrameMessage
from domain.detections import (
    MAX_FRAMES_PER_EVENT,
    FrameBatch,
    RecordedFrame,
    box_outside_frame,
    frame_id,
)
from domain.errors import NotFound
from domain.events import current_meta
from domain.test_sessions import TestSession
from domain.videos import Video

_BATCH_TOPIC = get_topic(FrameBatch)
_RECORDED: Any = FrameBatch.Recorded  # its typed signature shows only the base fields
_CLOSING_TOPICS = [get_topic(TestSession.Completed), get_topic(TestSession.Failed)]
_RECORD_NEW = (
    "SELECT verity_record_frames(%b::uuid[], %b::uuid[], %b::uuid[], %b::int8[], %b::text[],"
    " %b::bytea[], %b::uuid[], %s::text[], %s)"
)
"""Binary arrays carry 125 kB states as they are; the library's insert passes a text-format
array of composites, which psycopg escapes in Python byte by byte."""
_REPEATS = "VF001"
_CLOSED = "VF002"
"""SQLSTATEs raised by verity_record_frames (migration 0009)."""
_STORED_BEFORE = "SELECT frame_id FROM frame_receipts WHERE frame_id = ANY(%b::uuid[])"


class RecordFrames(msgspec.Struct, frozen=True, kw_only=True):
    frames: tuple[FrameMessage, ...]
    received_at: datetime
    ids: tuple[UUID, ...] | None = None
    """Explicit frame ids (HTTP single detections); default: derived from device, session, seq."""


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    reason: str
    """`unknown_session`, `session_closed`, or `invalid` (a box outside the video's frame)."""
    detail: str
    field: str | None = None
    """The wire path of the value at fault, for `invalid` (`detections[0].box`); `detail`
    says what is wrong with it."""


class RecordResult(msgspec.Struct, frozen=True, kw_only=True):
    position: Position | None
    stored: tuple[int, ...]
    """Indexes (into the command's frames) stored by this call."""
    duplicates: tuple[int, ...]
    """Indexes already stored before (or earlier in the same batch)."""
    rejected: tuple[Rejection, ...]


FrameSize = tuple[int, int]
_OPEN_SESSIONS: weakref.WeakKeyDictionary[Verity, dict[UUID, FrameSize | None]] = (
    weakref.WeakKeyDictionary()
)
"""Sessions seen taking detections, with their video's frame size where it is known. Loading
a session for every batch cost a query each; a session that closes later is still caught, by
the check under the event store's lock. A video's size is recorded with its upload, before any
session can run on it, so the size first seen stays right."""
_OPEN_SESSIONS_KEPT = 10_000


def _frame_size(app: Verity, session: TestSession) -> FrameSize | None:
    """The (width, height) of the session's video, if its metadata says."""
    try:
        video = app.load(Video, session.video_id, "Video")
    except NotFound:
        return None
    meta = video.metadata
    if meta is None or meta.width <= 0 or meta.height <= 0:
        return None
    return meta.width, meta.height


def _session_problems(app: Verity, session_ids: Iterable[UUID]) -> dict[UUID, Rejection]:
    problems: dict[UUID, Rejection] = {}
    known_open = _OPEN_SESSIONS.setdefault(app, {})
    for sid in session_ids:
        if sid in known_open:
            continue
        try:
            session = app.load(TestSession, sid, "Test session")
        except NotFound:
            problems[sid] = Rejection(
                index=-1, reason="unknown_session", detail=f"Test session {sid} not found"
            )
            continue
        if not session.accepts_detections:
            problems[sid] = Rejection(
                index=-1,
                reason="session_closed",
                detail=f"Test session {sid} is {session.status.value}; it takes no detections",
            )
        else:
            if len(known_open) >= _OPEN_SESSIONS_KEPT:
                known_open.clear()
            known_open[sid] = _frame_size(app, session)
    return problems


def _boxes_outside(app: Verity, frames: Sequence[FrameMessage]) -> dict[int, Rejection]:
    """Frames with a box outside their video's frame (where its size is known), by index."""
    sizes = _OPEN_SESSIONS.get(app, {})
    out: dict[int, Rejection] = {}
    for i, f in enumerate(frames):
        size = sizes.get(f.session_id)
        if size is None:
            continue
        for j, d in enumerate(f.detections):
            why = None if d.box is None else box_outside_frame(d.box, *size)
            if why is not None:
                field = f"detections[{j}].box"
                out[i] = Rejection(index=i, reason="invalid", detail=why, field=field)
                break
    return out


def _frame_ids(frames: Sequence[FrameMessage]) -> tuple[UUID, ...]:
    texts: dict[UUID, str] = {}  # str(UUID) is slow Python: once per session, not per frame
    return tuple(
        frame_id(
            f.device_id,
            texts.get(f.session_id) or texts.setdefault(f.session_id, str(f.session_id)),
            f.seq,
        )
        for f in frames
    )


def _recorded_frame(fid: UUID, f: FrameMessage) -> RecordedFrame:
    return RecordedFrame(
        id=fid,
        device_id=f.device_id,
        seq=f.seq,
        video_time=f.timestamp,
        detections=tuple(d.to_domain() for d in f.detections),
        frame_number=f.frame_number,
        captured_at=f.captured_at,
        model_version=f.model_version,
    )


class _Chunk(msgspec.Struct):
    """Up to MAX_FRAMES_PER_EVENT frames of one session: one event once claimed."""

    event_id: UUID
    session_id: UUID
    frames: list[tuple[int, RecordedFrame]]


def _chunks(todo: dict[UUID, int], frames: Sequence[FrameMessage]) -> list[_Chunk]:
    by_session: dict[UUID, list[_Chunk]] = {}
    for fid, i in todo.items():
        sid = frames[i].session_id
        chunks = by_session.setdefault(sid, [])
        if not chunks or len(chunks[-1].frames) >= MAX_FRAMES_PER_EVENT:
            chunks.append(_Chunk(event_id=uuid4(), session_id=sid, frames=[]))
        chunks[-1].frames.append((i, _recorded_frame(fid, frames[i])))
    return [c for chunks in by_session.values() for c in chunks]


def _only(chunks: list[_Chunk], keep: Callable[[UUID], bool]) -> list[_Chunk]:
    """The chunks with only the frames whose id `keep` accepts; empty chunks dropped."""
    kept = (
        _Chunk(c.event_id, c.session_id, [p for p in c.frames if keep(p[1].id)]) for c in chunks
    )
    return [c for c in kept if c.frames]


def _event(chunk: _Chunk, received_at: datetime) -> Any:
    """A batch's one event, built as `FrameBatch._create` would build it.

    A batch has no rules to check and is never changed, so the aggregate and the Application's
    save machinery are skipped; the mapper encodes the event and our transaction inserts it.
    """
    return _RECORDED(
        originator_id=chunk.event_id,
        originator_version=FrameBatch.INITIAL_VERSION,
        timestamp=FrameBatch.Recorded.create_timestamp(),
        originator_topic=_BATCH_TOPIC,
        meta=current_meta(),
        session_id=chunk.session_id,
        received_at=received_at,
        frames=tuple(f for _, f in chunk.frames),
    )


class _ClosedMeanwhile(Exception):
    """A session completed or failed after the pre-check: its frames must not be stored."""

    def __init__(self, sessions: set[UUID]) -> None:
        super().__init__(f"sessions closed meanwhile: {sessions}")
        self.sessions = sessions


def _record_new(
    cur: Cursor[Any], app: Verity, chunks: list[_Chunk], received_at: datetime
) -> tuple[Position | None, list[int]] | None:
    """Store every frame of the chunks in one statement; None if any was stored before."""
    recorder = app.recorder
    assert isinstance(recorder, PostgresApplicationRecorder)
    stored = [app.mapper.to_stored_event(_event(c, received_at)) for c in chunks]
    try:
        row = cur.execute(
            _RECORD_NEW,
            (
                [f.id for c in chunks for _, f in c.frames],
                [c.event_id for c in chunks for _ in c.frames],
                [e.originator_id for e in stored],
                [e.originator_version for e in stored],
                [e.topic for e in stored],
                [e.state for e in stored],
                list({c.session_id for c in chunks}),
                _CLOSING_TOPICS,
                f"{recorder.datastore.lock_timeout}s",
            ),
        ).fetchone()
    except DatabaseError as err:
        if err.sqlstate == _REPEATS:
            return None
        if err.sqlstate == _CLOSED:
            detail = err.diag.message_detail or ""
            raise _ClosedMeanwhile({UUID(s) for s in detail.split(",") if s}) from None
        raise
    assert row is not None
    return max(row[0]), sorted(i for c in chunks for i, _ in c.frames)


def _without_stored(cur: Cursor[Any], chunks: list[_Chunk]) -> list[_Chunk]:
    """The chunks less the frames whose claims are committed (the call that found a repeat
    waited for every competing claim, so at least one frame is dropped each time)."""
    ids = [f.id for c in chunks for _, f in c.frames]
    stored = {row[0] for row in cur.execute(_STORED_BEFORE, (ids,)).fetchall()}
    if not stored:
        msg = "verity_record_frames reported a repeat, but no frame of the batch is stored"
        raise RuntimeError(msg)
    return _only(chunks, lambda fid: fid not in stored)


_IN_MEMORY_RECEIPTS: weakref.WeakKeyDictionary[Verity, set[UUID]] = weakref.WeakKeyDictionary()
"""The receipts of apps on the in-memory recorder (unit tests); PostgreSQL keeps them in a table."""


def _store(
    app: Verity, chunks: list[_Chunk], received_at: datetime
) -> tuple[Position | None, list[int]]:
    """Store the chunks' frames not stored before; (last position, indexes stored)."""
    if isinstance(app.recorder, PostgresApplicationRecorder):
        with (
            app.recorder.datastore.get_connection() as conn,  # autocommit: a call is a transaction
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            while chunks:
                done = _record_new(cur, app, chunks, received_at)
                if done is not None:
                    return done
                chunks = _without_stored(cur, chunks)
        return None, []
    receipts = _IN_MEMORY_RECEIPTS.setdefault(app, set())
    kept = _only(chunks, lambda fid: fid not in receipts)
    closed = {
        c.session_id
        for c in kept
        if not app.load(TestSession, c.session_id, "Test session").accepts_detections
    }
    if closed:  # what PostgreSQL checks under the write lock
        raise _ClosedMeanwhile(closed)
    events = [_event(c, received_at) for c in kept]
    positions = app.recorder.insert_events([app.mapper.to_stored_event(e) for e in events])
    receipts.update(f.id for c in kept for _, f in c.frames)
    return (max(positions) if positions else None), sorted(i for c in kept for i, _ in c.frames)


def _rejections(
    problems: dict[UUID, Rejection], invalid: dict[int, Rejection], frames: Sequence[FrameMessage]
) -> list[Rejection]:
    """One rejection per refused frame, in frame order: its session's, else its own."""
    return [
        msgspec.structs.replace(problems[f.session_id], index=i)
        if f.session_id in problems
        else invalid[i]
        for i, f in enumerate(frames)
        if f.session_id in problems or i in invalid
    ]


def record_frames(cmd: RecordFrames, app: Verity) -> RecordResult:
    """Store every new, acceptable frame in one transaction; report the rest per index."""
    frames = cmd.frames
    ids = cmd.ids or _frame_ids(frames)
    problems = _session_problems(app, {f.session_id for f in frames})
    invalid = _boxes_outside(app, frames)
    while True:
        first_index: dict[UUID, int] = {}
        in_batch_repeats: list[int] = []
        for i, (fid, f) in enumerate(zip(ids, frames, strict=True)):
            if f.session_id in problems or i in invalid:
                continue
            if fid in first_index:
                in_batch_repeats.append(i)
            else:
                first_index[fid] = i
        try:
            position, stored = _store(app, _chunks(first_index, frames), cmd.received_at)
        except _ClosedMeanwhile as closed:
            known_open = _OPEN_SESSIONS.get(app, {})
            for sid in closed.sessions:
                known_open.pop(sid, None)
            problems.update(_session_problems(app, closed.sessions))  # says which status now
            for sid in closed.sessions:
                problems.setdefault(
                    sid,
                    Rejection(
                        index=-1,
                        reason="session_closed",
                        detail=f"Test session {sid} closed while the frames were being stored",
                    ),
                )
            continue
        duplicates = sorted(set(first_index.values()).difference(stored)) + in_batch_repeats
        return RecordResult(
            position=position,
            stored=tuple(stored),
            duplicates=tuple(sorted(duplicates)),
            rejected=tuple(_rejections(problems, invalid, frames)),
        )
