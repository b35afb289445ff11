"""Uploads reach the video worker over NATS and come back as a quality assessment (L6), with
the lifecycle uploaded -> processing -> completed | failed, on real PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import cv2
import msgspec
import nats
import numpy as np
import numpy.typing as npt
import psycopg
import pytest

from domain.events import EventMeta
from tests.e2e.helpers import api_client, upload_file, wait_for_video
from verity.bootstrap import open_application
from verity.settings import Settings
from workers.video import DURABLE, build_video_worker

pytestmark = pytest.mark.e2e

ASSETS = Path(cv2.__file__).parents[1] / "ultralytics" / "assets"


def street(size: tuple[int, int] = (320, 240)) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(ASSETS / "bus.jpg"))
    assert image is not None
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def video_of(
    path: Path, frame: npt.NDArray[np.uint8], count: int = 30, fourcc: str = "mp4v"
) -> Path:
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 10.0, (w, h))
    assert writer.isOpened()
    for i in range(count):
        shifted = np.roll(frame, i, axis=1)  # a moving scene, not one frame repeated
        writer.write(shifted)
    writer.release()
    return path


def topics(settings: Settings, video_id: str) -> list[str]:
    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT topic FROM verity_events WHERE originator_id = %s ORDER BY originator_version",
            (video_id,),
        ).fetchall()
    return [r[0].rsplit(".", 1)[-1] for r in rows]


def test_uploads_are_assessed_by_the_worker_and_flagged(settings: Settings, tmp_path: Path) -> None:
    with api_client(settings) as client:
        assert client.get(f"/api/video-library/quality-assessment/{uuid4()}").status_code == 404
        good = upload_file(client, "/api/videos", video_of(tmp_path / "street.mp4", street()))
        assert good.status_code == 200, good.text
        dark_frame = (cv2.GaussianBlur(street(), (0, 0), 6) * 0.12).astype(np.uint8)
        dark = upload_file(client, "/api/videos", video_of(tmp_path / "night.mp4", dark_frame))
        cut = video_of(tmp_path / "cut.avi", street(), 60, "MJPG")
        cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 5])  # first frame decodes
        broken = upload_file(client, "/api/videos", cut)
        assert broken.status_code == 200, broken.text  # the upload's probe reads frame 0 only

        done = wait_for_video(client, good.json()["id"], {"completed", "failed"})
        assert (done["status"], done["processingStatus"]) == ("completed", "completed")
        assert done["groundTruthStatus"] == "pending" and done["groundTruthGenerated"] is False
        assert 0.0 < done["qualityScore"] <= 1.0
        quality = client.get(f"/api/video-library/quality-assessment/{done['id']}")
        assert quality.status_code == 200, quality.text
        q = quality.json()
        assert q["video_id"] == q["videoId"] == done["id"]
        assert q["quality_score"] == q["qualityScore"] == done["qualityScore"]
        assert q["status"] == "completed" and q["reason"] is None
        assert not {"dark", "blurry"} & set(q["flags"])
        assert q["samples"] == 30 and len(q["series"]["sharpness"]) == 30
        assert q["thresholds"]["blurry_below"] > 0 and q["resolution_quality"] == "poor"
        assert q["brightnessAnalysis"]["dark"] is False
        assert q["sharpness_analysis"]["laplacianVariance"] > q["thresholds"]["blurry_below"]
        assert topics(settings, done["id"]) == [
            "Uploaded",
            "MetadataExtracted",
            "ProcessingStarted",
            "RenditionRecorded",  # mp4v: browsers get an H.264 copy (test_video_files_journey)
            "QualityAssessed",
        ]

        night = wait_for_video(client, dark.json()["id"], {"completed", "failed"})
        flagged = client.get(f"/api/video-library/quality-assessment/{night['id']}").json()
        assert {"dark", "blurry"} <= set(flagged["flags"])
        assert flagged["brightness_analysis"]["dark"] is True
        assert flagged["quality_score"] < q["quality_score"]

        failed = wait_for_video(client, broken.json()["id"], {"completed", "failed"})
        assert (failed["status"], failed["processingStatus"]) == ("failed", "failed")
        assert "could not be decoded" in failed["processingError"]
        answer = client.get(f"/api/video-library/quality-assessment/{failed['id']}")
        assert answer.status_code == 200
        assert answer.json()["status"] == "failed"
        assert answer.json()["reason"] == failed["processingError"]
        assert answer.json()["quality_score"] is None
        listed = {v["id"]: v for v in client.get("/api/videos").json()["videos"]}
        assert listed[failed["id"]]["status"] == "failed"


async def _republished(js: Any, settings: Settings, video_id: str) -> int:
    """The stored `video.uploaded` message of `video_id`, published again (a redelivery)."""
    subject = f"{settings.events_subject}.video.uploaded"
    sub = await js.pull_subscribe(subject, stream=settings.events_stream)
    try:
        while True:
            (msg,) = await sub.fetch(1, timeout=5)
            if msgspec.json.decode(msg.data)["aggregateId"] == video_id:
                ack = await js.publish(subject, msg.data, headers={"Nats-Msg-Id": str(uuid4())})
                return int(ack.seq)
    finally:
        await sub.unsubscribe()


async def _worker_process(settings: Settings, video_id: str) -> tuple[int, int]:
    """`verity worker video` in short: assess what is waiting, then settle a redelivery.
    Returns (assessed, skipped)."""
    assert settings.database_url is not None and settings.nats_url is not None
    app = await asyncio.to_thread(open_application, settings.database_url, 2)
    nc = await nats.connect(settings.nats_url)
    stop = asyncio.Event()
    worker = build_video_worker(nc, app, settings)
    task = asyncio.create_task(worker.run(stop))
    js = nc.jetstream()
    try:
        deadline = time.monotonic() + 60
        while worker.stats.assessed < 1:
            assert time.monotonic() < deadline and not task.done(), worker.stats
            await asyncio.sleep(0.1)
        seq = await _republished(js, settings, video_id)
        while (await js.consumer_info(settings.events_stream, DURABLE)).ack_floor.stream_seq < seq:
            assert time.monotonic() < deadline, "the worker never settled the redelivery"
            await asyncio.sleep(0.1)
        return worker.stats.assessed, worker.stats.skipped
    finally:
        stop.set()
        await task
        await nc.close()
        app.close()


async def _workers_race(settings: Settings, video_id: UUID) -> None:
    """Two workers given the same upload at once (no NATS in between)."""
    assert settings.database_url is not None and settings.nats_url is not None
    app = await asyncio.to_thread(open_application, settings.database_url, 2)
    nc = await nats.connect(settings.nats_url)
    try:
        workers = [build_video_worker(nc, app, settings) for _ in range(2)]
        meta = EventMeta(actor="test")
        await asyncio.gather(*(w.process(video_id, meta) for w in workers))
        assert sum(w.stats.assessed for w in workers) == 1
    finally:
        await nc.close()
        app.close()


def test_video_worker_alone_records_each_assessment_once(
    settings: Settings, tmp_path: Path
) -> None:
    """VERITY_SERVE_VIDEO=false: uploads wait (L6 answers 202) until a worker process runs."""
    quiet = msgspec.structs.replace(settings, serve_video=False)
    with api_client(quiet) as client:
        first = upload_file(client, "/api/videos", video_of(tmp_path / "a.mp4", street()))
        second = upload_file(client, "/api/videos", video_of(tmp_path / "b.mp4", street()))
        vid, other = first.json()["id"], second.json()["id"]
        time.sleep(1.0)  # time enough for a worker, were one running
        pending = client.get(f"/api/video-library/quality-assessment/{vid}")
        assert pending.status_code == 202
        assert pending.json()["status"] == "pending" and pending.json()["quality_score"] is None
        assert client.get(f"/api/videos/{vid}").json()["status"] == "uploaded"

        asyncio.run(_workers_race(quiet, UUID(other)))
        assert topics(quiet, other).count("QualityAssessed") == 1
        assert topics(quiet, other).count("ProcessingStarted") == 1

        assessed, skipped = asyncio.run(_worker_process(quiet, vid))
        assert assessed == 1  # the upload that waited; the raced one was done already
        assert skipped >= 2  # the raced upload and the redelivery: nothing recorded again
        assert wait_for_video(client, vid, {"completed", "failed"})["status"] == "completed"
        assert topics(quiet, vid).count("QualityAssessed") == 1
        assert topics(quiet, vid).count("ProcessingStarted") == 1
        assert client.get(f"/api/video-library/quality-assessment/{vid}").status_code == 200


def test_verity_worker_video_runs_alone_and_stops_on_sigterm(
    settings: Settings, tmp_path: Path
) -> None:
    """`verity worker video` as its own process beside an API that does not run one."""
    quiet = msgspec.structs.replace(settings, serve_video=False)
    env = {
        **os.environ,
        "VERITY_DATABASE_URL": settings.database_url or "",
        "VERITY_NATS_URL": settings.nats_url or "",
        "VERITY_NATS_PREFIX": settings.nats_prefix,
        "VERITY_DATA_DIR": str(settings.data_dir),
    }
    log = tmp_path / "worker.log"
    with api_client(quiet) as client:
        vid = upload_file(client, "/api/videos", video_of(tmp_path / "a.mp4", street())).json()[
            "id"
        ]
        proc = subprocess.Popen(
            [sys.executable, "-m", "verity.cli", "worker", "video"],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        try:
            done = wait_for_video(client, vid, {"completed", "failed"}, timeout=90)
            assert done["status"] == "completed", log.read_text()[-2000:]
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-2000:]
    assert "video stopped: VideoStats(assessed=1" in log.read_text()
