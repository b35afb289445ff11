"""Write side of detections: store a batch of frame messages once each, in one transaction.

The frames of one session that arrive together become one `FrameBatch.Recorded` event (split
at `MAX_FRAMES_PER_EVENT`). Exactly-once per frame id and "nothing after the session closed"
are the frame store's contract (commands/frame_store.py), kept in the same transaction as the
events. If any frame turns out to have been stored before, the store stores nothing and names
those frames; the call is made again with the rest."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import msgspec
from eventsourcing.utils import get_topic

from commands.application import Position, Verity
from commands.device_messages import FrameMessage
from commands.frame_store import FramesStoredBefore, FrameStore, SessionsClosed
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


class RecordFrames(msgspec.Struct, frozen=True, kw_only=True):
    frames: tuple[FrameMessage, ...]
    received_at: datetime
    ids: tuple[UUID, ...] | None = None
    """Explicit frame ids (HTTP single detections); default: derived from device, session, seq."""


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    reason: str
    """`unknown_session`, `session_closed`, `device_not_allowed` (the session names its
    devices, not this one), or `invalid` (a box outside the video's frame)."""
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


class OpenSessions:
    """Sessions seen taking detections, with their video's frame size where it is known and
    the devices they allow.

    Loading a session for every batch cost a query each; a session that closes later is still
    caught, by the frame store's check when the events go in. A video's size is recorded with
    its upload, before any session can run on it, so the size first seen stays right. The
    allowed devices may change while a session runs, so a session is loaded again once its
    entry is `REFRESH` seconds old: a change applies to frames stored from then on (one load
    per session and second, never one per frame)."""

    KEPT = 10_000
    REFRESH = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.sizes: dict[UUID, FrameSize | None] = {}
        self.allowed: dict[UUID, frozenset[str]] = {}
        """Each session's allowed device ids; empty (or absent): any device."""
        self.restricted: set[UUID] = set()
        """The sessions whose allowed devices are not empty."""
        self._loaded: dict[UUID, float] = {}
        self._clock = clock

    def remember(
        self, session_id: UUID, size: FrameSize | None, allowed: frozenset[str] = frozenset()
    ) -> None:
        if len(self.sizes) >= self.KEPT:
            self.sizes.clear()
            self.allowed.clear()
            self.restricted.clear()
            self._loaded.clear()
        self.sizes[session_id] = size
        self.allowed[session_id] = allowed
        if allowed:
            self.restricted.add(session_id)
        else:
            self.restricted.discard(session_id)
        self._loaded[session_id] = self._clock()

    def knows(self, session_id: UUID) -> bool:
        """Remembered open, and recently enough that its allowed devices are current."""
        loaded = self._loaded.get(session_id)
        return loaded is not None and self._clock() - loaded < self.REFRESH

    def forget(self, sessions: Iterable[UUID]) -> None:
        for sid in sessions:
            self.sizes.pop(sid, None)
            self.allowed.pop(sid, None)
            self.restricted.discard(sid)
            self._loaded.pop(sid, None)


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


def _session_problems(
    app: Verity, known_open: OpenSessions, session_ids: Iterable[UUID]
) -> dict[UUID, Rejection]:
    problems: dict[UUID, Rejection] = {}
    for sid in session_ids:
        if known_open.knows(sid):
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
            allowed = frozenset(session.allowed_device_ids)
            # a refresh: the video's size does not change, only the allowed devices may
            size = known_open.sizes[sid] if sid in known_open.sizes else _frame_size(app, session)
            known_open.remember(sid, size, allowed)
    return problems


def _devices_not_allowed(
    known_open: OpenSessions, frames: Sequence[FrameMessage]
) -> dict[int, Rejection]:
    """Frames from a device their session does not name (where it names any), by index."""
    out: dict[int, Rejection] = {}
    allowed_of = known_open.allowed
    if not known_open.restricted:  # no session names its devices: nothing to check
        return out
    for i, f in enumerate(frames):
        allowed = allowed_of.get(f.session_id)
        if allowed and f.device_id not in allowed:
            detail = f"Test session {f.session_id} does not take frames from device {f.device_id}"
            out[i] = Rejection(index=i, reason="device_not_allowed", detail=detail)
    return out


def _boxes_outside(
    known_open: OpenSessions, frames: Sequence[FrameMessage]
) -> dict[int, Rejection]:
    """Frames with a box outside their video's frame (where its size is known), by index."""
    out: dict[int, Rejection] = {}
    for i, f in enumerate(frames):
        size = known_open.sizes.get(f.session_id)
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


def _without(chunks: list[_Chunk], drop: frozenset[UUID]) -> list[_Chunk]:
    """The chunks less the frames whose ids are in `drop`; empty chunks dropped."""
    kept = (
        _Chunk(c.event_id, c.session_id, [p for p in c.frames if p[1].id not in drop])
        for c in chunks
    )
    return [c for c in kept if c.frames]


def _event(chunk: _Chunk, received_at: datetime) -> FrameBatch.Recorded:
    """A batch's one event, built as `FrameBatch._create` would build it.

    A batch has no rules to check and is never changed, so the aggregate and the Application's
    save machinery are skipped; the frame store encodes the event and inserts it.
    """
    event: FrameBatch.Recorded = _RECORDED(
        originator_id=chunk.event_id,
        originator_version=FrameBatch.INITIAL_VERSION,
        timestamp=FrameBatch.Recorded.create_timestamp(),
        originator_topic=_BATCH_TOPIC,
        meta=current_meta(),
        session_id=chunk.session_id,
        received_at=received_at,
        frames=tuple(f for _, f in chunk.frames),
    )
    return event


def _store(
    store: FrameStore, chunks: list[_Chunk], received_at: datetime
) -> tuple[Position | None, list[int]]:
    """Store the chunks' frames not stored before; (last position, indexes stored)."""
    while chunks:
        try:
            position = store.record([_event(c, received_at) for c in chunks])
        except FramesStoredBefore as before:  # the store waited for competing claims first
            chunks = _without(chunks, before.frame_ids)
            continue
        return position, sorted(i for c in chunks for i, _ in c.frames)
    return None, []


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


def record_frames(
    cmd: RecordFrames, app: Verity, store: FrameStore, known_open: OpenSessions | None = None
) -> RecordResult:
    """Store every new, acceptable frame in one transaction; report the rest per index.

    `known_open` spares loading the sessions it remembers (see `frame_recorder`)."""
    known_open = OpenSessions() if known_open is None else known_open
    frames = cmd.frames
    ids = cmd.ids or _frame_ids(frames)
    problems = _session_problems(app, known_open, {f.session_id for f in frames})
    invalid = _devices_not_allowed(known_open, frames) | _boxes_outside(known_open, frames)
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
            position, stored = _store(store, _chunks(first_index, frames), cmd.received_at)
        except SessionsClosed as closed:
            known_open.forget(closed.sessions)
            problems.update(_session_problems(app, known_open, closed.sessions))  # which status
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


FrameRecorder = Callable[[RecordFrames, Verity], RecordResult]
"""`record_frames` bound to its store: what the ingest and the HTTP routes are handed."""


def frame_recorder(store: FrameStore) -> FrameRecorder:
    """`record_frames` on `store`, remembering the sessions it found open across calls
    (the composition root makes one per process)."""
    known_open = OpenSessions()

    def record(cmd: RecordFrames, app: Verity) -> RecordResult:
        return record_frames(cmd, app, store, known_open)

    return record
