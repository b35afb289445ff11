"""Events round-trip through the msgspec mapper with their exact types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.codec import MsgspecMapper
from domain.events import EventMeta, VerityAggregate

pytestmark = pytest.mark.unit


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Point(msgspec.Struct, frozen=True):
    x: float
    y: float


class Shape(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    colour: Colour
    corners: tuple[Point, ...]
    weight: Decimal | None = None


class Sample(VerityAggregate):
    class Happened(VerityAggregate.Event):
        ref: UUID
        at: datetime
        amount: Decimal
        colour: Colour
        shape: Shape
        count: int
        ratio: float
        label: str
        maybe: UUID | None = None

    class Renamed(VerityAggregate.Event):
        """Version 2 split `name` into `first` and `last`."""

        class_version = 2
        first: str
        last: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            first, _, last = state.pop("name").partition(" ")
            state["first"], state["last"] = first, last

    class Tagged(VerityAggregate.Event):
        tag: str
        added_later: int = 7


finite = st.floats(allow_nan=False, allow_infinity=False)
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=6)
offsets = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(timezones=st.sampled_from([UTC]) | offsets)
shapes = st.builds(
    Shape,
    name=st.text(),
    colour=st.sampled_from(Colour),
    corners=st.lists(st.builds(Point, finite, finite), max_size=4).map(tuple),
    weight=st.none() | decimals,
)
metas = st.builds(
    EventMeta,
    actor=st.text(min_size=1),
    correlation_id=st.none() | st.uuids(),
    causation_id=st.none() | st.uuids(),
)


@settings(max_examples=200, deadline=None)
@given(
    ref=st.uuids(),
    at=aware,
    amount=decimals,
    colour=st.sampled_from(Colour),
    shape=shapes,
    count=st.integers(-(2**63), 2**63 - 1),
    ratio=finite,
    label=st.text(),
    maybe=st.none() | st.uuids(),
    meta=metas,
    version=st.integers(1, 2**31),
)
def test_event_round_trips_exactly(
    ref: UUID,
    at: datetime,
    amount: Decimal,
    colour: Colour,
    shape: Shape,
    count: int,
    ratio: float,
    label: str,
    maybe: UUID | None,
    meta: EventMeta,
    version: int,
) -> None:
    event = Sample.Happened(
        originator_id=uuid4(),
        originator_version=version,
        timestamp=datetime.now(UTC),
        meta=meta,
        ref=ref,
        at=at,
        amount=amount,
        colour=colour,
        shape=shape,
        count=count,
        ratio=ratio,
        label=label,
        maybe=maybe,
    )
    mapper = MsgspecMapper()
    restored = mapper.to_domain_event(mapper.to_stored_event(event))
    assert restored == event
    assert type(restored.amount) is Decimal  # type: ignore[attr-defined]
    assert restored.at.utcoffset() == at.utcoffset()  # type: ignore[attr-defined]
    assert type(restored.colour) is Colour  # type: ignore[attr-defined]


def _stored(cls: type, state: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        originator_id=uuid4(),
        originator_version=3,
        topic=get_topic(cls),
        state=msgspec.json.encode(state),
    )


def _base_state() -> dict[str, Any]:
    return {"timestamp": "2026-01-02T03:04:05.123456Z", "meta": {"actor": "a"}}


def test_old_version_is_upcast_on_read() -> None:
    stored = _stored(Sample.Renamed, {**_base_state(), "name": "Ada Lovelace"})
    event = MsgspecMapper().to_domain_event(stored)
    assert (event.first, event.last) == ("Ada", "Lovelace")  # type: ignore[attr-defined]


def test_current_version_is_stored_with_its_class_version() -> None:
    event = Sample.Renamed(
        originator_id=uuid4(),
        originator_version=1,
        timestamp=datetime.now(UTC),
        meta=EventMeta(),
        first="Grace",
        last="Hopper",
    )
    stored = MsgspecMapper().to_stored_event(event)
    assert msgspec.json.decode(stored.state)["class_version"] == 2
    assert MsgspecMapper().to_domain_event(stored) == event


def test_field_added_later_takes_its_default_for_old_events() -> None:
    event = MsgspecMapper().to_domain_event(_stored(Sample.Tagged, {**_base_state(), "tag": "x"}))
    assert event.added_later == 7  # type: ignore[attr-defined]


def test_corrupt_state_names_the_event() -> None:
    from eventsourcing.persistence import MapperDeserialisationError

    stored = _stored(Sample.Tagged, {**_base_state(), "tag": 5})
    with pytest.raises(MapperDeserialisationError, match=r"Sample\.Tagged"):
        MsgspecMapper().to_domain_event(stored)


def test_frame_structs_are_not_tracked_by_the_garbage_collector() -> None:
    """Ingest makes hundreds of thousands of these a second; tracked, the collector's passes
    over them cost more than decoding them (see verity.bootstrap.settle_heap)."""
    import gc
    from datetime import UTC, datetime
    from uuid import uuid4

    from commands.device_messages import decode_frame
    from domain.detections import Box, Detection, RecordedFrame

    box = Box(x=1.0, y=2.0, width=3.0, height=4.0)
    det = Detection(class_label="pedestrian", confidence=0.5, box=box)
    recorded = RecordedFrame(
        id=uuid4(),
        device_id="d",
        seq=1,
        video_time=0.0,
        detections=(det,),
        captured_at=datetime.now(UTC),
    )
    wire = decode_frame(
        b'{"deviceId":"d","sessionId":"%s","seq":1,"timestamp":0,'
        b'"detections":[{"classLabel":"cyclist","box":{"x":1,"y":2,"width":3,"height":4}}]}'
        % str(uuid4()).encode()
    )
    for value in (box, det, recorded, wire, wire.detections[0], wire.detections[0].box):
        assert not gc.is_tracked(value), type(value).__name__
