"""Video quality: what a few sampled frames say about a recording, scored and flagged.

Pure numpy on greyscale frames, so the rule is testable without a decoder: the video worker
decodes and scales the samples (workers/video_sampling.py), `measure` reads each one and
`assess` turns the samples into one `QualityAssessment`. Every threshold lives in
`THRESHOLDS` and is recorded with the assessment, so a stored verdict says what it was judged
against even after the constants change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

METHOD_VERSION = 1
"""Bumped when `measure` or `assess` change meaning; stored with every assessment."""
ANALYSIS_WIDTH = 640
"""Frames wider than this are scaled down (area averaging) before they are measured, so the
thresholds mean the same for a 480p and a 4K video, and a 1080p sample costs a few ms."""
SAMPLE_COUNT = 48
"""Frames sampled per video, evenly spaced (fewer when the video has fewer)."""
MAX_SERIES = 120
"""Most samples a stored series holds (the event stays a few kB)."""
DARK_LEVEL = 16
"""Grey levels at or below this count as clipped to black."""
BRIGHT_LEVEL = 239
"""Grey levels at or above this count as clipped to white."""
MAX_FAILED_FRACTION = 0.5
"""More sampled frames than this fraction failing to decode fails the whole assessment."""


class QualityThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Where each flag starts (measured at `ANALYSIS_WIDTH`, 8-bit grey levels)."""

    blurry_below: float = 100.0
    """Median variance of the Laplacian under this: `blurry`."""
    dark_below: float = 50.0
    """Mean brightness under this: `dark`."""
    overexposed_above: float = 205.0
    """Mean brightness over this: `overexposed`."""
    overexposed_clipped_above: float = 0.25
    """Or more than this fraction of pixels clipped to white: `overexposed`."""
    low_contrast_below: float = 25.0
    """Mean standard deviation of grey levels under this: `low_contrast`."""
    noisy_above: float = 8.0
    """Median noise sigma (grey levels) over this: `noisy`."""
    resolution_good_height: int = 720
    resolution_fair_height: int = 480
    frame_rate_good: float = 25.0
    frame_rate_fair: float = 15.0


THRESHOLDS = QualityThresholds()
"""The thresholds in force."""

FLAGS = ("blurry", "dark", "overexposed", "low_contrast", "noisy")
WEIGHTS = {"sharpness": 0.3, "exposure": 0.25, "contrast": 0.2, "noise": 0.15, "clipping": 0.1}
"""How much each component counts in the overall score (they sum to 1)."""
_SHARPNESS_FLOOR, _SHARPNESS_GOOD = 10.0, 1000.0
"""Laplacian variance scoring 0 and 1 (log scale: the `blurry` threshold scores 0.5)."""
_EXPOSURE_BAND = (90.0, 170.0)
"""Mean brightness scoring 1; linear to 0 at black and white."""
_CONTRAST_GOOD = 50.0
_NOISE_CLEAN, _NOISE_BAD = 2.0, 14.0
_CLIPPED_BAD = 0.5
_EDGE_FRACTION = 0.1


class FrameMeasure(msgspec.Struct, frozen=True, kw_only=True):
    """One sampled frame."""

    frame: int
    sharpness: float
    """Variance of the (4-neighbour) Laplacian."""
    brightness: float
    """Mean grey level, 0-255."""
    contrast: float
    """Standard deviation of grey levels."""
    noise: float
    """Estimated sigma of Gaussian noise, in grey levels (Immerkaer's fast estimate)."""
    clipped_dark: float
    """Fraction of pixels at or below `DARK_LEVEL`."""
    clipped_bright: float
    """Fraction of pixels at or above `BRIGHT_LEVEL`."""


class QualitySeries(msgspec.Struct, frozen=True, kw_only=True):
    """Per-sample values in frame order, at most `MAX_SERIES` of each."""

    frames: tuple[int, ...] = ()
    sharpness: tuple[float, ...] = ()
    brightness: tuple[float, ...] = ()
    contrast: tuple[float, ...] = ()
    noise: tuple[float, ...] = ()
    clipped: tuple[float, ...] = ()


class QualityAssessment(msgspec.Struct, frozen=True, kw_only=True):
    """A video's recorded quality verdict. Every field has a default: a persisted schema."""

    score: float = 0.0
    """Overall quality in [0, 1] (weighted components, `WEIGHTS`)."""
    flags: tuple[str, ...] = ()
    """Named problems, a subset of `FLAGS`."""
    components: dict[str, float] = msgspec.field(default_factory=dict)
    """Each component's own score in [0, 1]."""
    sharpness: float = 0.0
    """Median variance of the Laplacian over the samples."""
    brightness: float = 0.0
    brightness_min: float = 0.0
    brightness_max: float = 0.0
    contrast: float = 0.0
    noise: float = 0.0
    clipped_dark: float = 0.0
    clipped_bright: float = 0.0
    samples: int = 0
    """Frames measured."""
    samples_failed: int = 0
    """Sampled positions that did not decode."""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    frame_count: int = 0
    resolution_quality: str = "unknown"
    frame_rate_quality: str = "unknown"
    series: QualitySeries = QualitySeries()
    thresholds: QualityThresholds = THRESHOLDS
    method_version: int = METHOD_VERSION
    seconds: float = 0.0
    """How long the assessment took (decoding included)."""


def sample_positions(frame_count: int, count: int = SAMPLE_COUNT) -> list[int]:
    """`count` frame numbers spread evenly over the video, each in the middle of its slice."""
    n = min(count, frame_count)
    return sorted({int((i + 0.5) * frame_count / n) for i in range(n)}) if n > 0 else []


def measure(gray: npt.NDArray[np.uint8], frame: int) -> FrameMeasure:
    """Sharpness, exposure, contrast, noise and clipping of one greyscale frame."""
    img = gray.astype(np.float32)
    pixels = float(img.size)
    mean, std = float(img.mean()), float(img.std())
    if img.shape[0] < 3 or img.shape[1] < 3:
        sharpness = noise = 0.0
    else:
        centre = img[1:-1, 1:-1]
        laplacian = img[:-2, 1:-1] + img[2:, 1:-1] + img[1:-1, :-2] + img[1:-1, 2:] - 4 * centre
        sharpness = float(laplacian.var())
        # Immerkaer (1996): a kernel blind to flat and sloped areas, sensitive to noise; the
        # steepest tenth of pixels (edges, texture) is left out so detail is not read as noise
        diagonal = img[:-2, :-2] + img[:-2, 2:] + img[2:, :-2] + img[2:, 2:]
        residual = np.abs(diagonal - 2 * laplacian - 4 * centre)  # [[1,-2,1],[-2,4,-2],[1,-2,1]]
        gradient = np.abs(img[1:-1, 2:] - img[1:-1, :-2]) + np.abs(img[2:, 1:-1] - img[:-2, 1:-1])
        flat = gradient <= np.quantile(gradient, 1 - _EDGE_FRACTION)
        noise = float(residual[flat].mean()) * math.sqrt(math.pi / 2) / 6.0
    return FrameMeasure(
        frame=frame,
        sharpness=sharpness,
        brightness=mean,
        contrast=std,
        noise=noise,
        clipped_dark=float(np.count_nonzero(gray <= DARK_LEVEL)) / pixels,
        clipped_bright=float(np.count_nonzero(gray >= BRIGHT_LEVEL)) / pixels,
    )


def _ramp(value: float, low: float, high: float) -> float:
    """0 at `low`, 1 at `high`, linear between (either direction)."""
    if high == low:
        return 1.0
    return min(1.0, max(0.0, (value - low) / (high - low)))


def _exposure_score(brightness: float) -> float:
    low, high = _EXPOSURE_BAND
    if brightness < low:
        return _ramp(brightness, 0.0, low)
    if brightness > high:
        return _ramp(brightness, 255.0, high)
    return 1.0


def _grade(value: float, good: float, fair: float) -> str:
    if value <= 0:
        return "unknown"
    return "good" if value >= good else "fair" if value >= fair else "poor"


def _picked(count: int) -> list[int]:
    """At most `MAX_SERIES` indices of `count`, evenly spread."""
    if count <= MAX_SERIES:
        return list(range(count))
    return [int(i * count / MAX_SERIES) for i in range(MAX_SERIES)]


def _series(picked: Sequence[FrameMeasure]) -> QualitySeries:
    def values(name: str) -> tuple[float, ...]:
        return tuple(round(getattr(m, name), 4) for m in picked)

    return QualitySeries(
        frames=tuple(m.frame for m in picked),
        sharpness=values("sharpness"),
        brightness=values("brightness"),
        contrast=values("contrast"),
        noise=values("noise"),
        clipped=tuple(round(m.clipped_dark + m.clipped_bright, 4) for m in picked),
    )


def assess(
    measures: Sequence[FrameMeasure],
    *,
    failed: int = 0,
    width: int = 0,
    height: int = 0,
    fps: float = 0.0,
    frame_count: int = 0,
    seconds: float = 0.0,
    thresholds: QualityThresholds = THRESHOLDS,
) -> QualityAssessment:
    """One verdict from the measured samples (at least one)."""
    if not measures:
        msg = "an assessment needs at least one measured frame"
        raise ValueError(msg)
    t = thresholds
    ordered = sorted(measures, key=lambda m: m.frame)
    sharp = float(np.median([m.sharpness for m in ordered]))
    bright = [m.brightness for m in ordered]
    brightness = float(np.mean(bright))
    contrast = float(np.mean([m.contrast for m in ordered]))
    noise = float(np.median([m.noise for m in ordered]))
    dark = float(np.mean([m.clipped_dark for m in ordered]))
    white = float(np.mean([m.clipped_bright for m in ordered]))
    components = {
        "sharpness": _ramp(
            math.log10(max(sharp, 1e-9)),
            math.log10(_SHARPNESS_FLOOR),
            math.log10(_SHARPNESS_GOOD),
        ),
        "exposure": _exposure_score(brightness),
        "contrast": _ramp(contrast, 0.0, _CONTRAST_GOOD),
        "noise": _ramp(noise, _NOISE_BAD, _NOISE_CLEAN),
        "clipping": _ramp(dark + white, _CLIPPED_BAD, 0.0),
    }
    score = sum(WEIGHTS[k] * v for k, v in components.items())
    raised = {
        "blurry": sharp < t.blurry_below,
        "dark": brightness < t.dark_below,
        "overexposed": brightness > t.overexposed_above or white > t.overexposed_clipped_above,
        "low_contrast": contrast < t.low_contrast_below,
        "noisy": noise > t.noisy_above,
    }
    return QualityAssessment(
        score=round(min(1.0, max(0.0, score)), 4),
        flags=tuple(f for f in FLAGS if raised[f]),
        components={k: round(v, 4) for k, v in components.items()},
        sharpness=round(sharp, 4),
        brightness=round(brightness, 4),
        brightness_min=round(min(bright), 4),
        brightness_max=round(max(bright), 4),
        contrast=round(contrast, 4),
        noise=round(noise, 4),
        clipped_dark=round(dark, 6),
        clipped_bright=round(white, 6),
        samples=len(ordered),
        samples_failed=failed,
        width=width,
        height=height,
        fps=fps,
        frame_count=frame_count,
        resolution_quality=_grade(height, t.resolution_good_height, t.resolution_fair_height),
        frame_rate_quality=_grade(fps, t.frame_rate_good, t.frame_rate_fair),
        series=_series([ordered[i] for i in _picked(len(ordered))]),
        thresholds=t,
        seconds=round(seconds, 3),
    )
