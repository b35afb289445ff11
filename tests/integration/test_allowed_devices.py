"""A session that names its devices takes frames from them only; others are dead-lettered as
`device_not_allowed`, checked from the ingest's per-session cache (no query per frame)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import msgspec
import nats
import pytest
from nats.aio.client import Client as NatsClient

from commands.application import Verity
from commands.test_sessions import (
    AllowDevices,
    CreateTestSession,
    allow_devices,
    create_test_session,
)
from domain.errors import InvalidValue
from domain.limits import MAX_ALLOWED_DEVICES
from tests.integration.test_ingest import frame, new_session, stored_frames
from tests.integration.test_nats_authorization import ingest_worker, ingesting, wait_stored
from verity.bootstrap import open_application
from verity.settings import Settings
from workers.ingest import HEADER_DETAIL, HEADER_REASON

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=4)
    yield application
    application.close()


@pytest.fixture
async def nc(settings: Settings) -> AsyncIterator[NatsClient]:
    client = await nats.connect(settings.nats_url or "")
    yield client
    await client.drain()


async def test_frames_from_devices_the_session_does_not_name_are_dead_lettered(
    app: Verity, settings: Settings, database_url: str, nc: NatsClient
) -> None:
    session = new_session(app)
    allow_devices(AllowDevices(id=session, allowed_device_ids=("cam-a",)), app)
    worker = ingest_worker(nc, app, settings)
    await worker.prepare()
    js = nc.jetstream()
    dlq = await js.subscribe(f"{settings.detections_subject}.dlq", ordered_consumer=True)
    subject = f"{settings.detections_subject}.{session}"
    async with ingesting(worker):
        await js.publish(subject, msgspec.json.encode(frame(session, 0, device="cam-a")))
        await js.publish(subject, msgspec.json.encode(frame(session, 0, device="cam-b")))
        letter = await dlq.next_msg(timeout=15)
        assert await wait_stored(database_url, session, range(1), "cam-a") == 1
        assert letter.headers is not None
        assert letter.headers[HEADER_REASON] == "device_not_allowed"
        assert "cam-b" in letter.headers[HEADER_DETAIL]
        assert msgspec.json.decode(letter.data)["deviceId"] == "cam-b"
        assert stored_frames(database_url, session, range(1), "cam-b") == 0

        # Naming it too: frames stored from the next refresh of the session on.
        allow_devices(AllowDevices(id=session, allowed_device_ids=("cam-a", "cam-b")), app)
        await asyncio.sleep(1.1)
        await js.publish(subject, msgspec.json.encode(frame(session, 1, device="cam-b")))
        assert await wait_stored(database_url, session, range(1, 2), "cam-b") == 1
        assert worker.stats.dead_lettered == 1


def test_the_allowed_list_is_bounded_and_empty_means_any(app: Verity) -> None:
    session = new_session(app)
    too_many = tuple(f"cam-{i}" for i in range(MAX_ALLOWED_DEVICES + 1))
    with pytest.raises(InvalidValue, match="allowedDeviceIds: at most 100"):
        allow_devices(AllowDevices(id=session, allowed_device_ids=too_many), app)
    twice = ("cam-a", "cam-a", "cam-b")
    allow_devices(AllowDevices(id=session, allowed_device_ids=twice), app)
    assert app.repository.get(session).allowed_device_ids == ("cam-a", "cam-b")
    cmd = CreateTestSession(
        name="x",
        project_id=app.repository.get(session).project_id,
        video_id=app.repository.get(session).video_id,
        allowed_device_ids=too_many,
    )
    with pytest.raises(InvalidValue):
        create_test_session(cmd, app)
