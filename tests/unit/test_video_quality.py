"""Video quality: measures, flags and score of sampled frames; sampling of real files; the
Video aggregate's processing lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import msgspec
import numpy as np
import numpy.typing as npt
import pytest

from domain.errors import NotFound
from domain.projects import CENTRAL_STORE_ID
from domain.video_quality import (
    MAX_SERIES,
    THRESHOLDS,
    FrameMeasure,
    QualityAssessment,
    assess,
    measure,
    sample_positions,
)
from domain.videos import Processing, Video
from workers.video_sampling import Undecodable, assess_file

pytestmark = pytest.mark.unit

ASSETS = Path(cv2.__file__).parents[1] / "ultralytics" / "assets"


def photo(size: tuple[int, int] = (320, 240)) -> npt.NDArray[np.uint8]:
    """A real street photo (ultralytics ships it), scaled down smoothly."""
    image = cv2.imread(str(ASSETS / "bus.jpg"))
    assert image is not None
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def write(path: Path, frames: list[npt.NDArray[np.uint8]], fourcc: str = "mp4v") -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 10.0, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_a_clean_photo_raises_no_flag_and_scores_high() -> None:
    verdict = assess([measure(gray(photo()), 0)])
    assert verdict.flags == ()
    assert verdict.score > 0.8
    assert set(verdict.components) == {"sharpness", "exposure", "contrast", "noise", "clipping"}


Image = npt.NDArray[np.uint8]


def _blurred(im: Image) -> Image:
    return np.asarray(cv2.GaussianBlur(im, (0, 0), 5), dtype=np.uint8)


def _dark(im: Image) -> Image:
    return (im * 0.12).astype(np.uint8)


def _bright(im: Image) -> Image:
    return np.clip(im.astype(int) + 150, 0, 255).astype(np.uint8)


def _flat(im: Image) -> Image:
    return (im * 0.1 + 110).astype(np.uint8)


def _noisy(im: Image) -> Image:
    noise = np.random.default_rng(1).normal(0, 25, im.shape)
    return np.clip(im + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("change", "flag"),
    [
        (_blurred, "blurry"),
        (_dark, "dark"),
        (_bright, "overexposed"),
        (_flat, "low_contrast"),
        (_noisy, "noisy"),
    ],
)
def test_each_defect_raises_its_flag_and_lowers_the_score(
    change: Callable[[Image], Image], flag: str
) -> None:
    clean = assess([measure(gray(photo()), 0)])
    bad = assess([measure(gray(change(photo())), 0)])
    assert flag in bad.flags, bad
    assert 0.0 <= bad.score < clean.score


def test_the_laplacian_variance_is_opencvs() -> None:
    g = gray(photo())
    expected = cv2.Laplacian(g, cv2.CV_64F)[1:-1, 1:-1].var()
    assert measure(g, 0).sharpness == pytest.approx(expected, rel=1e-4)


def test_samples_are_spread_evenly_and_series_are_bounded() -> None:
    assert sample_positions(100, 4) == [12, 37, 62, 87]
    assert sample_positions(3, 48) == [0, 1, 2]
    assert sample_positions(0) == []
    many = [
        FrameMeasure(
            frame=i,
            sharpness=500.0,
            brightness=120.0,
            contrast=40.0,
            noise=2.0,
            clipped_dark=0.0,
            clipped_bright=0.0,
        )
        for i in range(1000)
    ]
    verdict = assess(many, width=1920, height=1080, fps=30.0)
    assert len(verdict.series.frames) == len(verdict.series.noise) == MAX_SERIES
    assert verdict.samples == 1000
    assert (verdict.resolution_quality, verdict.frame_rate_quality) == ("good", "good")
    assert verdict.thresholds == THRESHOLDS
    with pytest.raises(ValueError, match="at least one"):
        assess([])


def test_an_assessment_survives_its_event_encoding() -> None:
    verdict = assess([measure(gray(photo()), 3)], width=320, height=240, fps=10.0)
    again = msgspec.json.decode(msgspec.json.encode(verdict), type=QualityAssessment)
    assert again == verdict
    assert msgspec.json.decode(b"{}", type=QualityAssessment).score == 0.0  # defaults: evolvable


def test_a_file_is_sampled_by_seeking(tmp_path: Path) -> None:
    frames = [photo() for _ in range(200)]
    seen: list[tuple[int, int]] = []
    verdict = assess_file(
        write(tmp_path / "a.mp4", frames), 10, lambda done, total: seen.append((done, total))
    )
    assert verdict.samples == 10 and verdict.samples_failed == 0
    assert list(verdict.series.frames) == sample_positions(200, 10)
    assert seen[-1] == (10, 10)
    assert (verdict.width, verdict.height, verdict.frame_count) == (320, 240, 200)
    assert "blurry" not in verdict.flags and "dark" not in verdict.flags


def test_a_dark_blurry_file_is_flagged(tmp_path: Path) -> None:
    dark = (cv2.GaussianBlur(photo(), (0, 0), 6) * 0.12).astype(np.uint8)
    verdict = assess_file(write(tmp_path / "dark.mp4", [dark] * 30))
    assert {"dark", "blurry"} <= set(verdict.flags)


def test_what_cannot_be_decoded_says_why(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 1000)
    with pytest.raises(Undecodable, match="cannot open"):
        assess_file(junk)
    with pytest.raises(Undecodable, match="missing"):
        assess_file(tmp_path / "gone.mp4")
    # an MJPG AVI cut after a fifth: it opens and its first frame decodes (so an upload is
    # accepted), but most sampled positions lie beyond the data
    avi = write(tmp_path / "cut.avi", [photo()] * 60, "MJPG")
    avi.write_bytes(avi.read_bytes()[: avi.stat().st_size // 5])
    with pytest.raises(Undecodable, match=r"of 20 sampled frames could not be decoded \(first at"):
        assess_file(avi, 20)
    half = write(tmp_path / "half.avi", [photo()] * 60, "MJPG")
    half.write_bytes(half.read_bytes()[: half.stat().st_size // 2])
    partly = assess_file(half, 20)
    assert partly.samples_failed > 0 and partly.samples + partly.samples_failed == 20


def new_video() -> Video:
    return Video(
        project_id=CENTRAL_STORE_ID,
        filename="a.mp4",
        original_name="a.mp4",
        size_bytes=1,
        sha256="0",
    )


def test_processing_moves_through_the_lifecycle_once() -> None:
    video = new_video()
    assert video.processing is Processing.PENDING and Processing.PENDING.video_status == "uploaded"
    assert video.start_processing(10) is True
    assert video.start_processing(10) is False  # a redelivery: still one start
    verdict = assess([measure(gray(photo()), 0)])
    assert video.record_quality(verdict) is True
    assert video.record_quality(verdict) is False
    assert video.fail_processing("late") is False  # the first outcome stands
    assert video.processing is Processing.COMPLETED
    kinds = [type(e).__name__ for e in video.collect_events()]
    assert kinds == ["Uploaded", "ProcessingStarted", "QualityAssessed"]


def test_a_failure_keeps_its_reason_and_a_deleted_video_is_not_processed() -> None:
    video = new_video()
    video.start_processing()
    assert video.fail_processing("OpenCV cannot open the file as a video") is True
    assert video.processing is Processing.FAILED and video.processed
    gone = new_video()
    gone.delete()
    with pytest.raises(NotFound):
        gone.start_processing()
