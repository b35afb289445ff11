"""Uploads served for a player (ranges, validators, HEAD) and the browser-playable rendition
the video worker makes of an `mp4v` upload, on real PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from uuid import UUID

import av
import cv2
import msgspec
import nats
import numpy as np
import pytest
from litestar.testing import TestClient

from domain.events import EventMeta
from domain.renditions import rendition_filename
from projections.live_messages import live_subject
from tests.e2e.helpers import api_client, upload_file, wait_for_video, write_video
from tests.e2e.test_video_quality_journey import street, topics, video_of
from verity.bootstrap import open_application
from verity.settings import Settings
from workers.video import build_video_worker

pytestmark = pytest.mark.e2e


def path_of(url: str) -> str:
    return urlparse(url).path


def h264_video(path: Path, frames: int = 20) -> Path:
    """An upload browsers play as it is (H.264 in MP4), written with PyAV."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.zeros((48, 64, 3), np.uint8)
            image[10:20, i : i + 10] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def decoded(path: Path) -> tuple[str, str, int]:
    """(codec, pixel format, frames decoded) of a file's video stream, read with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.name, str(stream.codec_context.format.name), frames


def opencv_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def check_ranges(client: TestClient[Any], url: str, data: bytes) -> None:
    """What a player asks of one stored file, answered byte for byte."""
    size = len(data)
    full = client.get(url)
    assert full.status_code == 200 and full.content == data
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "video/mp4"
    etag, modified = full.headers["etag"], full.headers["last-modified"]
    assert etag.startswith('"') and not etag.startswith("W/")

    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206, part.text
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert part.headers["content-length"] == "100"
    assert part.headers["accept-ranges"] == "bytes" and part.headers["etag"] == etag

    suffix = client.get(url, headers={"Range": "bytes=-500"})
    assert suffix.status_code == 206 and suffix.content == data[-500:]
    assert suffix.headers["content-range"] == f"bytes {size - 500}-{size - 1}/{size}"
    tail = client.get(url, headers={"Range": "bytes=100-"})
    assert tail.status_code == 206 and tail.content == data[100:]

    for impossible in (f"bytes={size}-", "bytes=999999999999999999999-", "bytes=5-1", "bytes=x"):
        refused = client.get(url, headers={"Range": impossible})
        assert refused.status_code == 416, impossible
        assert refused.headers["content-range"] == f"bytes */{size}"
        assert refused.json()["detail"].startswith("Range:")
    many = client.get(url, headers={"Range": "bytes=0-0,2-2,4-4"})
    assert many.status_code == 200 and many.content == data  # several ranges: ignored

    cached = client.get(url, headers={"If-None-Match": etag, "Range": "bytes=0-9"})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag
    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"an-older-copy"'})
    assert stale.status_code == 200 and stale.content == data
    same = client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert same.status_code == 206 and same.content == data[:10]

    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size) and head.headers["etag"] == etag


def test_an_mp4v_upload_gets_an_h264_rendition_and_both_are_served(
    settings: Settings, tmp_path: Path
) -> None:
    source = write_video(tmp_path / "clip.mp4", frames=40)
    with api_client(settings) as client:
        uploaded = upload_file(client, "/api/videos", source)
        assert uploaded.status_code == 200, uploaded.text
        video = wait_for_video(client, uploaded.json()["id"], {"completed", "failed"})
        assert video["status"] == "completed", video
        assert video["renditionStatus"] == "ready" and video["renditionError"] is None
        assert path_of(video["originalUrl"]) == f"/uploads/{video['storedName']}"
        assert path_of(video["url"]) == f"/uploads/{rendition_filename(UUID(video['id']))}"
        listed = {v["id"]: v for v in client.get("/api/videos").json()["videos"]}
        assert listed[video["id"]]["url"] == video["url"]
        assert topics(settings, video["id"]) == [
            "Uploaded",
            "MetadataExtracted",
            "ProcessingStarted",
            "RenditionRecorded",  # before the outcome: `completed` means playable
            "QualityAssessed",
        ]

        check_ranges(client, path_of(video["originalUrl"]), source.read_bytes())
        rendition = client.get(path_of(video["url"]))
        assert rendition.status_code == 200 and rendition.headers["content-type"] == "video/mp4"
        copy = tmp_path / "rendition.mp4"
        copy.write_bytes(rendition.content)
        check_ranges(client, path_of(video["url"]), rendition.content)
        assert decoded(copy) == ("h264", "yuv420p", 40)
        assert opencv_frames(copy) == opencv_frames(source) == 40
        head = rendition.content[:4096]
        assert b"moov" in head and head.find(b"moov") < rendition.content.find(b"mdat")

        for name in ("..%2F..%2Fetc%2Fpasswd", f".incoming-{video['id']}", "x" * 300):
            assert client.get(f"/uploads/{name}").status_code == 404
        gone = client.get(f"/uploads/{rendition_filename(UUID(int=1))}")
        assert gone.status_code == 404 and gone.json()["detail"].startswith("name:")

        assert client.delete(f"/api/videos/{video['id']}").status_code in (200, 204)
        assert client.get(path_of(video["url"])).status_code == 404
        assert client.get(path_of(video["originalUrl"])).status_code == 404


def test_playable_and_corrupt_uploads_keep_their_original(
    settings: Settings, tmp_path: Path
) -> None:
    cut = video_of(tmp_path / "cut.avi", street(), 60, "MJPG")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 5])  # frame 0 decodes, not most
    with api_client(settings) as client:
        playable = upload_file(client, "/api/videos", h264_video(tmp_path / "h264.mp4"))
        broken = upload_file(client, "/api/videos", cut)
        assert playable.status_code == broken.status_code == 200, broken.text

        plays = wait_for_video(client, playable.json()["id"], {"completed", "failed"})
        assert plays["status"] == "completed"
        assert plays["renditionStatus"] is None and plays["url"] == plays["originalUrl"]
        assert "RenditionRecorded" not in topics(settings, plays["id"])

        failed = wait_for_video(client, broken.json()["id"], {"completed", "failed"})
        assert failed["status"] == "failed"
        assert failed["renditionStatus"] == "failed"
        assert "frames" in failed["renditionError"], failed["renditionError"]
        assert failed["url"] == failed["originalUrl"]
        original = client.get(path_of(failed["originalUrl"]))
        assert original.status_code == 200 and original.content == cut.read_bytes()
        assert original.headers["content-type"] == "video/x-msvideo"
        assert not (settings.uploads_dir / rendition_filename(UUID(failed["id"]))).exists()
        assert not [p for p in settings.uploads_dir.iterdir() if p.name.startswith(".")]


async def _race(settings: Settings, video_id: UUID) -> tuple[list[Any], list[Any]]:
    """Two workers given the same upload at once (no NATS in between); their stats and the
    live progress messages of the video's room."""
    assert settings.database_url is not None and settings.nats_url is not None
    app = await asyncio.to_thread(open_application, settings.database_url, 2)
    nc = await nats.connect(settings.nats_url)
    heard: list[Any] = []

    async def hear(msg: Any) -> None:
        heard.append(msgspec.json.decode(msg.data))

    await nc.subscribe(live_subject(settings.live_subject, f"video:{video_id}"), cb=hear)
    try:
        workers = [build_video_worker(nc, app, settings) for _ in range(2)]
        await asyncio.gather(*(w.process(video_id, EventMeta(actor="test")) for w in workers))
        await nc.flush()
        return [w.stats for w in workers], heard
    finally:
        await nc.close()
        app.close()


def test_two_workers_make_one_rendition(settings: Settings, tmp_path: Path) -> None:
    quiet = msgspec.structs.replace(settings, serve_video=False)
    with api_client(quiet) as client:
        long_enough = write_video(tmp_path / "a.mp4", 300, 30.0, (640, 360))  # ~1 s to encode
        uploaded = upload_file(client, "/api/videos", long_enough)
        vid = uploaded.json()["id"]
        stats, heard = asyncio.run(_race(quiet, UUID(vid)))
        assert sum(s.renditions for s in stats) == 1, stats
        progress = [m["data"] for m in heard if m["event"] == "video_processing_progress"]
        rendering = [p for p in progress if p["stage"] == "rendition"]
        assert rendering, progress  # a transcode shows how far it has got
        assert all(p["videoId"] == vid and 0 < p["progress"] <= 100 for p in rendering)
        assert rendering[-1]["total"] == 300
        assert topics(quiet, vid).count("RenditionRecorded") == 1
        video = wait_for_video(client, vid, {"completed", "failed"})
        assert video["renditionStatus"] == "ready"
        names = sorted(p.name for p in quiet.uploads_dir.iterdir())
        assert names == sorted([video["storedName"], rendition_filename(UUID(vid))])
