"""What the event store holds of a session's frames, read straight from `verity_events`.

Frames are stored many to an event (`FrameBatch.Recorded`), or one per event before batching
(`DeviceFrame.Recorded`); this lists every stored copy of every frame id, so a frame stored
twice shows up twice, whichever event carries it.
"""

from __future__ import annotations

from collections import Counter
from uuid import UUID

import msgspec
import psycopg
from eventsourcing.utils import get_topic

from domain.detections import DeviceFrame, FrameBatch

_BATCH = get_topic(FrameBatch.Recorded)
_SINGLE = get_topic(DeviceFrame.Recorded)


class _Frame(msgspec.Struct):
    id: UUID


class _Batch(msgspec.Struct):
    session_id: UUID
    frames: list[_Frame]


_decode_batch = msgspec.json.Decoder(_Batch).decode


def stored_frame_copies(database_url: str, session: UUID) -> Counter[UUID]:
    """Frame id -> how many stored events carry it (1 each when all is well)."""
    copies: Counter[UUID] = Counter()
    needle = f'"session_id":"{session}"'.encode()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT originator_id, topic, state FROM verity_events"
            " WHERE topic = ANY(%s) AND position(%s IN state) > 0",
            ([_BATCH, _SINGLE], needle),
        ).fetchall()
    for originator, topic, state in rows:
        if topic == _BATCH:
            copies.update(f.id for f in _decode_batch(state).frames)
        else:
            copies[originator] += 1
    return copies


def count_stored(database_url: str, session: UUID, ids: list[UUID]) -> int:
    """Stored copies of these frame ids: len(ids) exactly when each is stored once."""
    copies = stored_frame_copies(database_url, session)
    return sum(copies[i] for i in ids)
