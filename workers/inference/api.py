"""Types shared by the detector runtime and its users; importing this loads no torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import msgspec
import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]
"""A BGR image (height, width, 3) as OpenCV decodes it."""


class DetectorParams(msgspec.Struct, frozen=True, kw_only=True):
    confidence: float = 0.25
    iou: float = 0.45
    imgsz: int = 640
    batch_size: int = 8
    device: str = "auto"
    """"auto" (the first CUDA GPU if torch sees one, else the CPU), "cpu" or "cuda:N"."""
    tracking: bool = False
    runtime: str = "auto"
    """"auto" (ONNX Runtime on the CPU, torch on CUDA), "torch" or "onnx"."""


class RawDetection(msgspec.Struct, frozen=True, kw_only=True):
    """One box as the model saw it: the model's own class name, pixels of the original frame."""

    class_name: str
    confidence: float
    x: float
    y: float
    width: float
    height: float
    track_id: int | None = None


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    framework: str
    """"ultralytics-pt", "ultralytics-yaml" or "onnx"."""
    class_names: tuple[str, ...]
    input_size: int
    task: str


class WeightsRefused(Exception):
    """The file is not a detection model we can load; `reason` says why, for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VideoDecodeError(Exception):
    """Decoding stopped before the video's end; `frame_number` is the first frame not read."""

    def __init__(self, frame_number: int, message: str = "") -> None:
        super().__init__(message or f"video decoding failed at frame {frame_number}")
        self.frame_number = frame_number


class FramePacket(NamedTuple):
    frame_number: int
    timestamp_s: float
    image: Frame


class Detector(Protocol):
    info: ModelInfo

    def detect(
        self, frames: Sequence[Frame], *, frame_numbers: Sequence[int] | None = None
    ) -> list[list[RawDetection]]:
        """One list per frame, in order. With tracking on, frames come in video order and
        track ids persist across calls. `frame_numbers` is for fakes; real detectors ignore it."""
        ...

    def close(self) -> None: ...
