"""Which publish failures the relay outlasts and which it routes round; how references and
store ids look; the fan-out resolving a reference."""

from __future__ import annotations

from uuid import uuid4

import msgspec
import nats.errors
import pytest
from nats.js.errors import (
    BadRequestError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from api.ws import Client, RoomHub
from projections.envelopes import Envelope, reference_of
from verity.settings import Settings
from workers.envelopes import msg_id
from workers.relay import refused_for_good
from workers.store_identity import description, owner_of

pytestmark = pytest.mark.unit


def test_only_a_refusal_of_the_message_itself_is_for_good() -> None:
    too_large = BadRequestError(
        code=400, err_code=10054, description="message size exceeds maximum allowed"
    )
    assert refused_for_good(too_large)
    assert refused_for_good(nats.errors.MaxPayloadError())
    for passing in (
        ServiceUnavailableError(code=503),
        NoStreamResponseError(),
        NotFoundError(code=404),
        nats.errors.TimeoutError(),
        nats.errors.ConnectionClosedError(),
        TimeoutError(),
    ):
        assert not refused_for_good(passing), passing


def envelope(data: dict[str, object]) -> Envelope[dict[str, object]]:
    return Envelope(
        position=42,
        id=str(uuid4()),
        aggregate="project",
        aggregate_id=str(uuid4()),
        version=1,
        type="created",
        occurred_at="2026-11-21T10:00:00+00:00",
        actor="anonymous",
        correlation_id=None,
        causation_id=None,
        data=data,
    )


def test_a_reference_is_the_envelope_without_its_data_and_says_so() -> None:
    env = envelope({"description": "x" * 100_000})
    ref = msgspec.json.decode(reference_of(env, 100_123, "too large"))
    assert "data" not in ref
    assert ref["reference"] is True and ref["truncated"] is True
    assert ref["position"] == 42 and ref["aggregateId"] == env.aggregate_id
    assert ref["size"] == 100_123 and ref["reason"] == "too large"
    assert len(reference_of(env, 100_123, "too large")) < 1000


def test_message_ids_differ_between_stores_at_one_position() -> None:
    assert msg_id(uuid4(), 7) != msg_id(uuid4(), 7)


def test_the_feeding_store_is_read_from_the_description_then_the_newest_id() -> None:
    one, two = uuid4(), uuid4()
    assert owner_of(description(one), f"{two}:9") == one
    assert owner_of(None, f"{two}:9") == two
    assert owner_of("", "9") is None  # a stream fed before ids named their store
    assert owner_of(None, None) is None


def test_the_adopt_setting_is_read_from_the_environment() -> None:
    assert not Settings.from_env({}).relay_adopt_stream
    assert Settings.from_env({"VERITY_RELAY_ADOPT_STREAM": "true"}).relay_adopt_stream


async def test_the_fan_out_resolves_a_reference_before_rooms_hear_it() -> None:
    env = envelope({"name": "big", "description": "y" * 10})
    full = msgspec.json.encode(env)
    asked: list[int] = []

    async def resolve(position: int) -> bytes:
        asked.append(position)
        return full

    hub = RoomHub(resolve=resolve)
    client = Client()
    hub.join(client, "dashboard")
    await hub.on_stored(reference_of(env, len(full), "too large"))
    message = msgspec.json.decode(client.queue.get_nowait() or b"")
    assert asked == [42]
    assert message["event"] == "project_created" and message["data"]["description"] == "y" * 10
    await hub.on_stored(full)  # a whole envelope is not looked up again
    assert asked == [42] and client.queue.qsize() == 1
