"""read_frames on real files through OpenCV: order, stride, start, and where decoding broke."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.inference import VideoDecodeError, read_frames, video_frame_count

pytestmark = pytest.mark.integration

FRAMES = 10
FPS = 10


@pytest.fixture(scope="module")
def mjpg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frame n is filled with grey 20*n in its top half and noise below (so JPEG frames are
    big enough to corrupt one without touching the next)."""
    path = tmp_path_factory.mktemp("video") / "grey.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    rng = np.random.default_rng(0)
    for n in range(FRAMES):
        frame = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        frame[:24] = 20 * n
        writer.write(frame)
    writer.release()
    return path


def _grey(image: np.ndarray) -> int:
    return round(float(image[:20].mean()) / 20)


def _frame_offsets(data: bytes) -> list[int]:
    """Byte offsets of the MJPG frame chunks in the AVI's movie list (after its header)."""
    movi = data.index(b"movi")
    offsets, at = [], movi
    while (at := data.find(b"00dc", at + 1)) != -1 and data[at + 8 : at + 10] == b"\xff\xd8":
        offsets.append(at)
    return offsets


def test_all_frames_in_order_in_batches(mjpg: Path) -> None:
    assert video_frame_count(mjpg) == FRAMES
    batches = list(read_frames(mjpg, batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 2]
    packets = [p for b in batches for p in b]
    assert [p.frame_number for p in packets] == list(range(FRAMES))
    assert [_grey(p.image) for p in packets] == list(range(FRAMES))
    assert [p.timestamp_s for p in packets] == pytest.approx([n / FPS for n in range(FRAMES)])
    assert packets[0].image.shape == (48, 64, 3)


def test_start_and_stride(mjpg: Path) -> None:
    packets = [p for b in read_frames(mjpg, start=2, stride=3, batch_size=2) for p in b]
    assert [p.frame_number for p in packets] == [2, 5, 8]
    assert [_grey(p.image) for p in packets] == [2, 5, 8]


def test_leaving_early_stops_the_reader(mjpg: Path) -> None:
    batches = read_frames(mjpg, batch_size=1, queue_batches=1)
    assert next(batches)[0].frame_number == 0
    batches.close()  # would hang here if the reader thread waited on the full queue forever


def test_truncated_file_fails_at_the_first_missing_frame(mjpg: Path, tmp_path: Path) -> None:
    data = mjpg.read_bytes()
    offsets = _frame_offsets(data)
    assert len(offsets) == FRAMES
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: offsets[6] + 100])  # frames 0-5 whole, 6 cut short
    read: list[int] = []

    def consume() -> None:
        for batch in read_frames(cut, batch_size=4):
            read.extend(p.frame_number for p in batch)

    with pytest.raises(VideoDecodeError) as failure:
        consume()
    assert failure.value.frame_number == 6
    assert read == [0, 1, 2, 3, 4, 5]  # every whole frame first, in a short batch


def test_corrupt_frame_fails_with_its_number(mjpg: Path, tmp_path: Path) -> None:
    data = bytearray(mjpg.read_bytes())
    at = _frame_offsets(bytes(data))[4]
    data[at + 8 : at + 400] = bytes(392)  # frame 4's JPEG header zeroed
    broken = tmp_path / "broken.avi"
    broken.write_bytes(bytes(data))
    with pytest.raises(VideoDecodeError) as failure:
        list(read_frames(broken, batch_size=2))
    assert failure.value.frame_number == 4


def test_not_a_video(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoDecodeError) as failure:
        video_frame_count(junk)
    assert failure.value.frame_number == 0
    with pytest.raises(VideoDecodeError):
        next(read_frames(junk))
