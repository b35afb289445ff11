"""Renditions: which uploads need one, the bounds, the aggregate's record-once rule, and the
PyAV transcode of real small files."""

from __future__ import annotations

import threading
from pathlib import Path
from uuid import uuid4

import msgspec
import pytest

from domain.limits import RENDITION_MAX_FRAMES, RENDITION_MAX_SECONDS
from domain.projects import CENTRAL_STORE_ID
from domain.renditions import Rendition, Source, needs_rendition, refusal, rendition_filename
from domain.videos import Video
from projections.live_messages import video_progress_message
from tests.e2e.helpers import write_video
from workers.renditions import Halted, RenditionRefused, probe, transcode

pytestmark = pytest.mark.unit

HD = Source(codec="mpeg4", width=1280, height=720, frames=1800, fps=30.0, duration=60.0)


@pytest.mark.parametrize(
    ("extension", "codec", "needed"),
    [
        (".mp4", "mpeg4", True),  # OpenCV's mp4v
        (".avi", "mjpeg", True),
        (".mp4", "h264", False),
        (".MP4", "vp9", False),
        (".mp4", "av1", False),
        (".mov", "h264", True),  # containers not every browser opens
        (".mkv", "vp9", True),
        (".avi", "h264", True),
        (".mp4", "hevc", True),
    ],
)
def test_which_uploads_need_a_rendition(extension: str, codec: str, needed: bool) -> None:
    assert needs_rendition(extension, codec) is needed


@pytest.mark.parametrize(
    ("pixels", "needed"),
    [("yuv420p", False), ("yuvj420p", False), ("yuv444p", True), ("yuv420p10le", True)],
)
def test_only_8_bit_4_2_0_plays_as_it_is(pixels: str, needed: bool) -> None:
    assert needs_rendition(".mp4", "h264", pixels) is needed


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"width": 8000, "height": 6000}, "exceeds the rendition limit"),
        ({"width": 5000, "height": 100}, "exceeds the rendition limit"),
        ({"width": 1, "height": 720}, "too small"),
        ({"duration": RENDITION_MAX_SECONDS + 1.0}, "exceeds the rendition limit"),
        ({"frames": RENDITION_MAX_FRAMES + 1}, "frames exceed"),
    ],
)
def test_absurd_sources_are_refused_with_a_reason(changes: dict[str, int], words: str) -> None:
    reason = refusal(msgspec.structs.replace(HD, **changes))
    assert reason is not None and words in reason
    assert refusal(HD) is None


def test_the_aggregate_records_one_rendition_outcome() -> None:
    video = Video(CENTRAL_STORE_ID, "a.mp4", "a.mp4", 10, "0" * 64)
    made = Rendition(
        filename=rendition_filename(video.id),
        codec="h264",
        size=5,
        duration=1.0,
        frame_count=10,
        width=64,
        height=48,
        seconds=0.1,
    )
    assert video.record_rendition(made) is True
    assert video.record_rendition(made) is False
    assert video.fail_rendition("late") is False
    other = Video(CENTRAL_STORE_ID, "b.mp4", "b.mp4", 10, "0" * 64)
    assert other.fail_rendition("") is True and other.rendition == "failed"
    events = other.collect_events()
    assert isinstance(events[-1], Video.RenditionFailed) and events[-1].reason == "unknown error"


def test_progress_names_its_stage() -> None:
    message, room = video_progress_message(uuid4(), 5, 20, "rendition")
    data = msgspec.json.decode(message)["data"]
    assert data["stage"] == "rendition" and data["progress"] == 25.0 and room.startswith("video:")


def test_a_transcode_keeps_every_frame_and_reuses_a_finished_copy(tmp_path: Path) -> None:
    source = write_video(tmp_path / "odd.mp4", frames=25, size=(65, 49))  # odd sides
    vid = uuid4()
    seen: list[tuple[int, int]] = []
    made = transcode(source, tmp_path, vid, lambda done, total: seen.append((done, total)))
    assert (made.codec, made.frame_count, made.width, made.height) == ("h264", 25, 64, 48)
    assert made.size == (tmp_path / made.filename).stat().st_size
    assert seen[-1] == (25, 25)
    again = transcode(source, tmp_path, vid)
    assert again.size == made.size and again.seconds == 0.0  # the whole file found, not redone
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["odd.mp4", made.filename])


def test_a_stopping_worker_abandons_the_transcode(tmp_path: Path) -> None:
    source = write_video(tmp_path / "a.mp4", frames=10)
    halt = threading.Event()
    halt.set()
    with pytest.raises(Halted):
        transcode(source, tmp_path, uuid4(), None, halt)
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]  # no partial file left


def test_what_is_not_a_video_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(RenditionRefused, match="cannot be opened"):
        probe(junk)
    with pytest.raises(RenditionRefused, match="cannot be opened"):
        transcode(junk, tmp_path, uuid4())
    assert [p.name for p in tmp_path.iterdir()] == ["junk.mp4"]


def test_bounds_are_enforced_before_and_while_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_video(tmp_path / "a.mp4", frames=20)  # 64x48
    monkeypatch.setattr("domain.renditions.RENDITION_MAX_SIDE", 32)
    with pytest.raises(RenditionRefused, match="64x48 exceeds the rendition limit"):
        transcode(source, tmp_path, uuid4())
    monkeypatch.undo()
    monkeypatch.setattr("workers.renditions.RENDITION_MAX_FRAMES", 5)  # a container that lies
    with pytest.raises(RenditionRefused, match="more than 5 frames"):
        transcode(source, tmp_path, uuid4())
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]  # nothing half-written stays
