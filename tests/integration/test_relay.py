"""The event relay on real PostgreSQL and NATS: no event jams it, no store's events are lost.

An event over NATS's max_payload goes out as a reference that resolves to the stored event;
the relay resumes from its own tracking, not from what the stream holds; two databases on one
NATS neither mix their histories unasked nor drop each other's events as duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlparse
from uuid import UUID, uuid4

import msgspec
import nats
import psycopg
import pytest
from nats.aio.client import Client as NatsClient
from psycopg_pool import ConnectionPool

from api.services import services_of
from commands.application import Verity
from commands.projects import CreateProject, create_project
from domain.projects import CameraView, Project, SignalType
from projections.envelopes import stored_envelope
from projections.notifications import NotificationLog
from tests.conftest import fresh_database
from tests.e2e.helpers import api_client, next_event
from verity.bootstrap import open_application
from verity.settings import Settings
from workers.references import REFERENCE_HEADER, body_of
from workers.relay import Relay
from workers.store_identity import description
from workers.streams import ensure_stream

pytestmark = pytest.mark.integration

BIG = 2_000_000
"""Characters of the description that made the relay stick (NATS's limit is 1 MB)."""


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=2)
    yield application
    application.close()


def settings_for(database_url: str, nats_url: str, prefix: str) -> Settings:
    return Settings(database_url=database_url, nats_url=nats_url, nats_prefix=prefix)


@contextlib.asynccontextmanager
async def relaying(app: Verity, settings: Settings, *, adopt: bool = False) -> AsyncIterator[Relay]:
    """A relay running as `verity serve` runs it, for the duration of the block."""
    assert settings.database_url is not None and settings.nats_url is not None
    nc = await nats.connect(settings.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    stop = asyncio.Event()
    with ConnectionPool(settings.database_url, min_size=1, max_size=2) as pool:
        relay = Relay(
            nc,
            NotificationLog(pool),
            app.mapper.to_domain_event,
            pool,
            settings.database_url,
            settings.events_stream,
            settings.events_subject,
            adopt_stream=adopt,
            ack_timeout=1.0,
            refused_retry=0.2,
        )
        task = asyncio.create_task(relay.run(stop))
        try:
            yield relay
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    await nc.close()


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def store_of(database_url: str) -> UUID:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT id FROM store_identity").fetchone()
    assert row is not None
    return UUID(str(row[0]))


def new_project(app: Verity, description: str | None = None) -> tuple[UUID, int]:
    """Stored through the application, past any bound the HTTP edge puts on text."""
    project = Project._create(
        Project.Created,
        id=uuid4(),
        name="relay test",
        camera_model="AX-200",
        camera_view=CameraView.FRONT_FACING_VRU,
        signal_type=SignalType.GPIO,
        description=description,
    )
    position = app.commit(project)
    assert position is not None
    return project.id, position


class Stored(msgspec.Struct):
    msg_id: str
    headers: dict[str, str]
    envelope: dict[str, Any]


async def stream_messages(nc: NatsClient, stream: str) -> list[Stored]:
    js = nc.jetstream()
    info = await js.stream_info(stream)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq=seq)
        headers = msg.headers or {}
        found.append(Stored(headers["Nats-Msg-Id"], headers, msgspec.json.decode(msg.data or b"")))
    return found


async def test_an_event_too_large_for_nats_goes_as_a_reference_and_the_next_follows(
    app: Verity, database_url: str, nats_url: str, nats_prefix: str
) -> None:
    settings = settings_for(database_url, nats_url, nats_prefix)
    nc = await nats.connect(nats_url)
    heard: list[Any] = []

    async def hear(msg: Any) -> None:
        heard.append(msg)

    await nc.subscribe(f"{settings.events_subject}.project.>", cb=hear)
    async with relaying(app, settings) as relay:
        big_id, big_at = new_project(app, "d" * BIG)
        create = CreateProject(
            name="after the big one",
            camera_model="AX-200",
            camera_view=CameraView.FRONT_FACING_VRU,
            signal_type=SignalType.GPIO,
        )
        small_at = create_project(create, app)
        assert small_at is not None and small_at > big_at
        await until(lambda: relay.position >= small_at)
        await until(lambda: any(b'"after the big one"' in m.data for m in heard))
        assert relay.last_error is None and relay.referenced == 1

    references = [m for m in heard if (m.headers or {}).get(REFERENCE_HEADER)]
    assert len(references) == 1
    headers, raw = references[0].headers, references[0].data
    assert len(raw) < 2000  # the reference itself is small
    ref = msgspec.json.decode(raw)
    assert ref["reference"] is True and ref["truncated"] is True and "data" not in ref
    assert ref["position"] == big_at and ref["aggregateId"] == str(big_id)
    assert ref["aggregate"] == "project" and ref["type"] == "created" and ref["version"] == 1
    assert ref["size"] > BIG and "max_payload" in ref["reason"]
    assert headers["Nats-Msg-Id"] == f"{store_of(database_url)}:{big_at}"

    resolved = msgspec.json.decode(stored_envelope(app, ref["position"]))
    assert resolved["aggregateId"] == str(big_id) and resolved["position"] == big_at
    assert resolved["data"]["description"] == "d" * BIG
    assert await body_of(references[0], app) == stored_envelope(app, big_at)  # the evaluator's way
    stream = await stream_messages(nc, settings.events_stream)
    await nc.close()
    positions = [s.envelope["position"] for s in stream]
    assert big_at in positions and small_at in positions  # both in the stream, in order
    assert positions == sorted(positions)


async def test_an_event_the_stream_refuses_goes_as_a_reference_too(
    app: Verity, database_url: str, nats_url: str, nats_prefix: str
) -> None:
    """A stream limit below the server's max_payload (an operator's `max_msg_size`): JetStream
    refuses the message itself, and nats-py never answers that publish's ack."""
    settings = settings_for(database_url, nats_url, nats_prefix)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    async with relaying(app, settings) as relay:
        await until(lambda: relay.store is not None and relay.position > 0)
        earlier = relay.referenced  # the module's 2 MB event, relayed before the limit
        config = (await js.stream_info(settings.events_stream)).config
        config.max_msg_size = 8000
        await js.update_stream(config)
        _, refused = new_project(app, "r" * 20_000)
        _, after = new_project(app, "fits")
        await until(lambda: relay.position >= after)
        assert relay.referenced == earlier + 1 and relay.last_error is None
    stream = {s.envelope["position"]: s for s in await stream_messages(nc, settings.events_stream)}
    await nc.close()
    assert stream[refused].envelope["reference"] is True
    assert "refused by the stream" in stream[refused].envelope["reason"]
    assert stream[after].envelope["data"]["description"] == "fits"


async def test_a_restarted_relay_resumes_from_its_tracking(
    app: Verity, database_url: str, nats_url: str, nats_prefix: str
) -> None:
    settings = settings_for(database_url, nats_url, nats_prefix)
    async with relaying(app, settings) as relay:
        _, first = new_project(app)
        await until(lambda: relay.position >= first)
    _, second = new_project(app)  # stored while no relay runs
    async with relaying(app, settings) as relay:
        await until(lambda: relay.position >= second)
        # from the tracking row, not from zero (which the dedup window would hide here)
        assert relay.published == second - first
    nc = await nats.connect(nats_url)
    stream = await stream_messages(nc, settings.events_stream)
    await nc.close()
    positions = [s.envelope["position"] for s in stream]
    assert positions == list(range(1, second + 1))  # each once, none skipped


@pytest.fixture
def other_database(postgres_admin_url: str) -> Iterator[str]:
    """A second Verity database, e.g. a test database beside staging, on the same NATS."""
    with fresh_database(postgres_admin_url, "verity_relay_other") as url:
        yield url


async def test_a_second_store_is_refused_the_stream_and_with_adoption_loses_nothing(
    app: Verity, database_url: str, other_database: str, nats_url: str, nats_prefix: str
) -> None:
    first = settings_for(database_url, nats_url, nats_prefix)
    async with relaying(app, first) as relay:
        for _ in range(3):
            _, head = new_project(app)
        await until(lambda: relay.position >= head)

    other_app = open_application(other_database, pool_size=2)
    try:
        second = settings_for(other_database, nats_url, nats_prefix)
        _, other_head = new_project(other_app)
        assert other_head < head  # positions the first store has already published
        async with relaying(other_app, second) as refused:
            await until(lambda: refused.last_error is not None)
            await asyncio.sleep(0.5)  # retried at least once, still refusing
            assert refused.published == 0
            assert f"fed by event store {store_of(database_url)}" in (refused.last_error or "")
            assert "VERITY_RELAY_ADOPT_STREAM" in (refused.last_error or "")
        async with relaying(other_app, second, adopt=True) as adopted:
            await until(lambda: adopted.position >= other_head)
            assert adopted.last_error is None
        other_store = store_of(other_database)
    finally:
        other_app.close()

    nc = await nats.connect(nats_url)
    stream = await stream_messages(nc, second.events_stream)
    await nc.close()
    theirs = [s for s in stream if s.msg_id.startswith(f"{other_store}:")]
    # every event of the fresh database arrived, though the stream's newest id was beyond
    # them and their positions were published by the first store moments ago
    assert [s.envelope["position"] for s in theirs] == list(range(1, other_head + 1))
    ours = [s for s in stream if s.msg_id.startswith(f"{store_of(database_url)}:")]
    assert [s.envelope["position"] for s in ours] == list(range(1, head + 1))


class Outage:
    """A TCP proxy in front of NATS that the test can cut and restore on the same port: the
    machine's NATS is shared, so it is not the server that goes down."""

    def __init__(self, target: str) -> None:
        parsed = urlparse(target)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 4222)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.close()
        await self.server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.links.difference_update((writer, up_writer))


async def test_the_relay_waits_out_a_nats_outage_without_skipping(
    app: Verity, database_url: str, nats_url: str, nats_prefix: str
) -> None:
    outage = Outage(nats_url)
    await outage.up()
    settings = settings_for(database_url, outage.url, nats_prefix)
    async with relaying(app, settings) as relay:
        _, before = new_project(app)
        await until(lambda: relay.position >= before)
        await outage.down()
        _, during = new_project(app)
        await until(lambda: relay.last_error is not None)
        assert relay.position < during
        await outage.up()
        await until(lambda: relay.position >= during, within=30)
    await outage.down()
    nc = await nats.connect(nats_url)
    stream = await stream_messages(nc, settings.events_stream)
    await nc.close()
    assert [s.envelope["position"] for s in stream] == list(range(1, during + 1))


@pytest.mark.e2e
def test_a_websocket_client_hears_the_big_event_in_full_and_the_next_one(
    settings: Settings,
) -> None:
    """Through `verity serve`'s wiring: the fan-out resolves the reference from the store."""
    with api_client(settings) as client:
        app = services_of(client.app.state).app
        with client.websocket_connect("/ws") as ws:
            assert next_event(ws, "connection_status")["data"]["status"] == "connected"
            ws.send_json({"action": "join", "room": "dashboard"})
            assert next_event(ws, "joined")["room"] == "dashboard"
            big_id, _ = new_project(app, "w" * BIG)
            small_id, _ = new_project(app, "small")
            big = next_event(ws, "project_created", projectId=str(big_id))
            small = next_event(ws, "project_created", projectId=str(small_id))
    assert big["data"]["description"] == "w" * BIG
    assert small["data"]["description"] == "small"


@pytest.mark.e2e
def test_health_names_a_stream_that_another_store_feeds(settings: Settings) -> None:
    async def fed_by_another_store() -> None:
        nc = await nats.connect(settings.nats_url or "")
        subjects = [f"{settings.events_subject}.>"]
        await ensure_stream(nc.jetstream(), settings.events_stream, subjects, description(uuid4()))
        await nc.close()

    asyncio.run(fed_by_another_store())

    def problems() -> list[str]:
        body = client.get("/health").json()
        return [p for p in body["problems"] if p.startswith("relay: ")]

    with api_client(settings) as client:
        deadline = time.monotonic() + 10
        while not problems():
            assert time.monotonic() < deadline, "no relay problem in /health"
            time.sleep(0.1)
        assert "fed by event store" in problems()[0]
        assert client.get("/health").status_code == 503
