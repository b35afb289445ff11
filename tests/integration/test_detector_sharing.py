"""Two detector workers on one work queue share the runs, and each frame is stored once.

Two `DetectorWorker`s bind the same durable consumer (as two `verity worker detector`
processes would); four test-session runs are queued over one short video, and a slow fake
detector makes a run last long enough that the second worker gets messages while the first is
busy. Every run must complete, each worker must have run some of them (its name is what the
run's `Started` event and the detection-runs read model record), each run must have been
started exactly once (no message went to both), and the event store must hold every frame of
every run exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from typing import Any
from uuid import UUID

import nats
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from commands.application import Verity
from commands.detection_runs import RequestRun, load_run, request_run
from commands.detections import frame_recorder
from domain.detection_runs import DetectionRun, RunMode, RunParameters, RunStatus, device_id_of
from domain.detections import FRAME_EVENTS, frames_of
from projections.detection_runs import get_run
from storage.frames import PostgresFrameStore
from tests.integration.detector_fixtures import video_and_ready_model
from verity.bootstrap import open_application, projection_runners
from verity.settings import Settings
from verity.worker_registry import build_detector_worker
from workers.detector import DetectorWorker
from workers.detector_queue import DetectorQueue
from workers.inference import FakeDetector, RawDetection

pytestmark = pytest.mark.integration

FRAMES = 24
RUNS = 4
WORKERS = ("detector-a", "detector-b")


def boxes(frame: int) -> list[RawDetection]:
    return [RawDetection(class_name="person", confidence=0.7, x=3, y=4, width=6, height=8)]


def _setup(app: Verity, settings: Settings) -> list[UUID]:
    video_id, model_id = video_and_ready_model(app, settings, "shared", FRAMES, seed="2")
    runs = []
    for _ in range(RUNS):
        run = RequestRun(
            model_id=model_id,
            video_id=video_id,
            mode=RunMode.TEST_SESSION,
            parameters=RunParameters(batch_size=4),
        )
        request_run(run, app)
        runs.append(run.id)
    return runs


def _worker(nc: Any, app: Verity, settings: Settings, name: str) -> DetectorWorker:
    return build_detector_worker(
        nc,
        app,
        settings,
        frame_recorder(PostgresFrameStore(app)),
        open_detector=lambda _w, _p: FakeDetector(boxes, class_names=("person",), delay_s=0.02),
        ack_wait=5.0,
        progress_every=0.1,
        name=name,
    )


async def _share(app: Verity, settings: Settings, runs: list[UUID]) -> None:
    assert settings.nats_url is not None
    nc = await nats.connect(settings.nats_url)
    try:
        queue = DetectorQueue(nc.jetstream(), settings.nats_prefix)
        await queue.ensure()
        for run_id in runs:
            await queue.run(run_id)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(_worker(nc, app, settings, name).run(stop)) for name in WORKERS
        ]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if all(load_run(app, r).finished for r in runs):
                break
            if any(t.done() for t in tasks):  # a worker that ended early: its error below
                break
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
    finally:
        await nc.close()


def _from_events(app: Verity) -> tuple[dict[UUID, list[str]], dict[str, Counter[int]]]:
    """Per run, the workers its `Started` events name; per device id, how often each frame
    was stored. Both from the event store itself."""
    started: dict[UUID, list[str]] = defaultdict(list)
    stored: dict[str, Counter[int]] = defaultdict(Counter)
    for n in app.recorder.select_notifications(start=1, limit=1_000_000):
        event: Any = app.mapper.to_domain_event(n)
        if isinstance(event, DetectionRun.Started):
            started[event.originator_id].append(event.worker)
        elif isinstance(event, FRAME_EVENTS):
            for f in frames_of(event):
                stored[f.device_id][f.seq] += 1
    return started, stored


async def _read_model_workers(url: str, runs: list[UUID]) -> dict[UUID, str | None]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = {r: await get_run(conn, r) for r in runs}
    return {r: row.worker if row is not None else None for r, row in rows.items()}


def test_two_workers_share_the_runs_and_store_each_frame_once(settings: Settings) -> None:
    assert settings.database_url is not None
    app = open_application(settings.database_url)
    try:
        runs = _setup(app, settings)
        asyncio.run(_share(app, settings, runs))

        for run_id in runs:
            run = load_run(app, run_id)
            assert run.status == RunStatus.COMPLETED, (run_id, run.status, run.reason)
            assert run.frames_done == FRAMES

        started, stored = _from_events(app)
        # each run was taken once, by one of the two workers, and both took some
        assert {r: len(started[r]) for r in runs} == dict.fromkeys(runs, 1)
        runners = {r: started[r][0] for r in runs}
        assert set(runners.values()) == set(WORKERS), runners
        for run_id in runs:
            frames = stored[device_id_of(run_id)]
            assert sorted(frames) == list(range(FRAMES)), (run_id, sorted(frames))
            assert set(frames.values()) == {1}, (run_id, frames)
        assert set(stored) == {device_id_of(r) for r in runs}

        # the detection-runs read model names the same worker for each run
        with ConnectionPool(settings.database_url, min_size=1, max_size=2) as pool:
            for runner in projection_runners(app, pool, 1000):
                runner.catch_up()
        assert asyncio.run(_read_model_workers(settings.database_url, runs)) == runners
    finally:
        app.close()
