"""A detector worker that dies mid-run: the next one resumes it and every frame is stored once.

Worker A's detector kills it (an exception no handler catches, as a kill would leave things:
nothing acked, frames stored after the last progress event); worker B gets the message again
once its ack wait passes, resumes after the last recorded progress, and stores the frames A
already stored again under the same ids. The event store must then hold each frame exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any
from uuid import UUID

import nats
import pytest

from commands.application import Verity
from commands.detection_runs import RequestRun, load_run, request_run
from commands.detections import frame_recorder
from domain.annotations import Annotation
from domain.detection_runs import DetectionRun, RunMode, RunParameters, RunStatus
from domain.detections import FRAME_EVENTS, frames_of
from storage.frames import PostgresFrameStore
from tests.integration.detector_fixtures import video_and_ready_model
from verity.bootstrap import open_application
from verity.settings import Settings
from verity.worker_registry import build_detector_worker
from workers.detector import DetectorWorker
from workers.detector_queue import DetectorQueue
from workers.inference import FakeDetector, RawDetection

pytestmark = pytest.mark.integration

FRAMES = 60
CRASH_AT = 40


class Crash(BaseException):
    """What a kill looks like from inside: nothing after it runs, no handler sees it."""


def boxes(frame: int) -> list[RawDetection]:
    time.sleep(0.01)
    return [RawDetection(class_name="person", confidence=0.8, x=1, y=2, width=5, height=9)]


PROGRESS_EVERY = 2.0
"""Seconds between the worker's progress events. The crashing worker's first batch takes
longer, so exactly that batch records progress and the later ones (fast, far under this on
any machine) store frames after it: the frames a resumed worker must not store twice."""


def crashing(frame: int) -> list[RawDetection]:
    if frame >= CRASH_AT:
        raise Crash
    if frame == 0:
        time.sleep(PROGRESS_EVERY + 0.2)
    return boxes(frame)


def _setup(app: Verity, settings: Settings, mode: RunMode) -> UUID:
    video_id, model_id = video_and_ready_model(app, settings, "clip", FRAMES, seed="0")
    run = RequestRun(
        model_id=model_id,
        video_id=video_id,
        mode=mode,
        parameters=RunParameters(batch_size=4),
    )
    request_run(run, app)
    return run.id


def _worker(nc: Any, app: Verity, settings: Settings, detect: Any) -> DetectorWorker:
    return build_detector_worker(
        nc,
        app,
        settings,
        frame_recorder(PostgresFrameStore(app)),
        open_detector=lambda _w, _p: FakeDetector(detect, class_names=("person",)),
        ack_wait=1.0,
        progress_every=PROGRESS_EVERY,
    )


def _stored(app: Verity, run: DetectionRun) -> Counter[int]:
    """How often each frame's results were stored, from the event store itself."""
    counts: Counter[int] = Counter()
    notifications = app.recorder.select_notifications(start=1, limit=1_000_000)
    for n in notifications:
        event: Any = app.mapper.to_domain_event(n)
        if run.mode == RunMode.TEST_SESSION and isinstance(event, FRAME_EVENTS):
            counts.update(f.seq for f in frames_of(event) if f.device_id.endswith(str(run.id)))
        elif isinstance(event, Annotation.Created) and event.video_id == run.video_id:
            counts[event.frame_number] += 1
    return counts


@pytest.mark.parametrize("mode", [RunMode.TEST_SESSION, RunMode.GROUND_TRUTH])
def test_a_crashed_run_resumes_and_stores_every_frame_once(
    settings: Settings, mode: RunMode
) -> None:
    assert settings.database_url is not None and settings.nats_url is not None
    app = open_application(settings.database_url)
    try:
        run_id = _setup(app, settings, mode)
        asyncio.run(_crash_then_resume(app, settings, run_id))
        run = load_run(app, run_id)
        assert run.status == RunStatus.COMPLETED, run.reason
        assert run.frames_done == FRAMES
        stored = _stored(app, run)
        assert sorted(stored) == list(range(FRAMES))
        assert set(stored.values()) == {1}, stored
    finally:
        app.close()


async def _crash_then_resume(app: Verity, settings: Settings, run_id: UUID) -> None:
    assert settings.nats_url is not None
    nc = await nats.connect(settings.nats_url)
    try:
        await DetectorQueue(nc.jetstream(), settings.nats_prefix).run(run_id)
        first = _worker(nc, app, settings, crashing)
        with pytest.raises(Crash):
            await asyncio.wait_for(first.run(asyncio.Event()), 60)
        crashed = load_run(app, run_id)
        assert crashed.status == RunStatus.RUNNING
        assert 0 < crashed.next_frame <= CRASH_AT
        # frames stored after the last progress event: the next worker stores them again
        assert max(_stored(app, crashed)) + 1 > crashed.next_frame
        stop = asyncio.Event()
        second = _worker(nc, app, settings, boxes)
        task = asyncio.create_task(second.run(stop))
        deadline = time.monotonic() + 60
        while not load_run(app, run_id).finished and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        await nc.close()
