"""STAND-IN (helper "runs"): the agreed inference types, until helper "runtime"'s version of
this module is merged; the lead takes theirs. Pure types: no torch at import."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import msgspec
import numpy as np


class DetectorParams(msgspec.Struct, frozen=True, kw_only=True):
    confidence: float = 0.25
    iou: float = 0.45
    imgsz: int = 640
    batch_size: int = 8
    device: str = "auto"
    tracking: bool = False
    runtime: str = "auto"


class RawDetection(msgspec.Struct, frozen=True, kw_only=True):
    class_name: str
    confidence: float
    x: float
    y: float
    width: float
    height: float
    track_id: int | None = None


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    framework: str
    class_names: tuple[str, ...]
    input_size: int
    task: str


class WeightsRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VideoDecodeError(Exception):
    def __init__(self, frame_number: int, detail: str = "") -> None:
        super().__init__(f"frame {frame_number}: {detail or 'cannot be decoded'}")
        self.frame_number = frame_number


class FramePacket(NamedTuple):
    frame_number: int
    timestamp_s: float
    image: np.ndarray


class Detector(Protocol):
    info: ModelInfo

    def detect(
        self, frames: Sequence[np.ndarray], *, frame_numbers: Sequence[int] | None = None
    ) -> list[list[RawDetection]]: ...

    def close(self) -> None: ...
