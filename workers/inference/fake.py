"""A deterministic detector for tests: known boxes for known frame numbers, no model."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from domain.vru import DETECTOR_NAMES
from workers.inference.api import Frame, ModelInfo, RawDetection

DEFAULT_CLASSES = tuple(DETECTOR_NAMES)
"""The COCO names a COCO-trained detector reports for VRUs (domain/vru.py)."""


class FakeDetector:
    """`detect` answers `boxes_per_frame(n)` for each frame number n: the `frame_numbers`
    given, else the count of frames seen so far (0, 1, 2, ... across calls)."""

    def __init__(
        self,
        boxes_per_frame: Callable[[int], list[RawDetection]],
        class_names: Sequence[str] = DEFAULT_CLASSES,
        *,
        delay_s: float = 0.0,
    ) -> None:
        self.info = ModelInfo(
            framework="fake", class_names=tuple(class_names), input_size=640, task="detect"
        )
        self._boxes_per_frame = boxes_per_frame
        self._delay_s = delay_s
        self.frames_seen = 0
        self.calls: list[list[int]] = []
        """The frame numbers of every call, in order."""
        self.closed = False

    def detect(
        self, frames: Sequence[Frame], *, frame_numbers: Sequence[int] | None = None
    ) -> list[list[RawDetection]]:
        if self.closed:
            raise RuntimeError("FakeDetector used after close()")
        if frame_numbers is None:
            numbers = list(range(self.frames_seen, self.frames_seen + len(frames)))
        elif len(frame_numbers) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(frame_numbers)} frame numbers")
        else:
            numbers = list(frame_numbers)
        self.frames_seen += len(frames)
        self.calls.append(numbers)
        if self._delay_s:
            time.sleep(self._delay_s * len(frames))
        return [list(self._boxes_per_frame(n)) for n in numbers]

    def close(self) -> None:
        self.closed = True
