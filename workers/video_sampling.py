"""Reading a video's sample frames with OpenCV: seek to each position, never decode it all.

A 10-minute 1080p video is assessed from `SAMPLE_COUNT` frames: each is reached by a seek
(the decoder starts at the keyframe before it), or by grabbing forward when it is only a few
frames ahead, then scaled to `ANALYSIS_WIDTH` and measured (domain/video_quality.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from domain.video_quality import (
    ANALYSIS_WIDTH,
    MAX_FAILED_FRACTION,
    SAMPLE_COUNT,
    FrameMeasure,
    QualityAssessment,
    assess,
    measure,
    sample_positions,
)

GRAB_AHEAD = 24
"""A sample at most this many frames ahead is reached by grabbing, not seeking."""
UNKNOWN_LENGTH_STRIDE = 30
"""A video that does not say how long it is is read in order, one sample every this many."""
UNKNOWN_LENGTH_MAX = SAMPLE_COUNT * UNKNOWN_LENGTH_STRIDE
"""...up to this many frames."""


class Undecodable(Exception):
    """The video cannot be assessed; the message says why, for the `failed` status."""


Progress = Callable[[int, int], None]
"""(samples done, samples planned)."""


def _analysed(frame: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    h, w = gray.shape
    if w > ANALYSIS_WIDTH:
        size = (ANALYSIS_WIDTH, max(1, round(h * ANALYSIS_WIDTH / w)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return np.asarray(gray, dtype=np.uint8)


def assess_file(
    path: Path, samples: int = SAMPLE_COUNT, progress: Progress | None = None
) -> QualityAssessment:
    """Sample, measure and assess the video at `path`; Undecodable with the reason."""
    started = time.perf_counter()
    if not path.is_file():
        msg = f"the stored file {path.name} is missing"
        raise Undecodable(msg)
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            msg = "OpenCV cannot open the file as a video"
            raise Undecodable(msg)
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if count > 0:
            measures, failed = _seeking(capture, sample_positions(count, samples), progress)
        else:
            measures, failed = _in_order(capture, samples, progress)
    finally:
        capture.release()
    tried = len(measures) + len(failed)
    if not measures:
        where = f" (first at frame {failed[0]})" if failed else ""
        msg = f"no sampled frame could be decoded: {len(failed)} of {tried} failed{where}"
        raise Undecodable(msg)
    if len(failed) > MAX_FAILED_FRACTION * tried:
        msg = (
            f"{len(failed)} of {tried} sampled frames could not be decoded"
            f" (first at frame {failed[0]})"
        )
        raise Undecodable(msg)
    return assess(
        measures,
        failed=len(failed),
        width=width,
        height=height,
        fps=fps,
        frame_count=count,
        seconds=time.perf_counter() - started,
    )


def _seeking(
    capture: cv2.VideoCapture, positions: list[int], progress: Progress | None
) -> tuple[list[FrameMeasure], list[int]]:
    measures: list[FrameMeasure] = []
    failed: list[int] = []
    at: int | None = 0  # the frame the next read returns; None: unknown, seek
    for done, target in enumerate(positions, 1):
        ok = True
        if at is not None and 0 <= target - at <= GRAB_AHEAD:
            for _ in range(target - at):
                ok = capture.grab()
                if not ok:
                    break
        else:
            ok = capture.set(cv2.CAP_PROP_POS_FRAMES, target)
        frame = None
        if ok:
            ok, frame = capture.read()
        if ok and frame is not None:
            measures.append(measure(_analysed(frame), target))
            at = target + 1
        else:
            failed.append(target)
            at = None
        if progress is not None:
            progress(done, len(positions))
    return measures, failed


def _in_order(
    capture: cv2.VideoCapture, samples: int, progress: Progress | None
) -> tuple[list[FrameMeasure], list[int]]:
    measures: list[FrameMeasure] = []
    for index in range(UNKNOWN_LENGTH_MAX):
        if index % UNKNOWN_LENGTH_STRIDE:
            if not capture.grab():
                break
            continue
        ok, frame = capture.read()
        if not ok or frame is None:
            break
        measures.append(measure(_analysed(frame), index))
        if progress is not None:
            progress(len(measures), samples)
        if len(measures) >= samples:
            break
    return measures, []
