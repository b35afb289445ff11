"""The detector runtime: models loaded offline, frames decoded ahead, boxes in frame pixels.

Importing this package loads neither torch nor ultralytics; `open_detector` and
`inspect_weights` do, when first called.
"""

from __future__ import annotations

from workers.inference.api import (
    Detector,
    DetectorParams,
    FramePacket,
    ModelInfo,
    RawDetection,
    VideoDecodeError,
    WeightsRefused,
)
from workers.inference.fake import FakeDetector
from workers.inference.frames import read_frames, video_frame_count
from workers.inference.inspect import (
    inspect_weights,
    run_inspection_subprocess,
    sniff_file,
    sniff_weights,
)
from workers.inference.runtime import open_detector

__all__ = [
    "Detector",
    "DetectorParams",
    "FakeDetector",
    "FramePacket",
    "ModelInfo",
    "RawDetection",
    "VideoDecodeError",
    "WeightsRefused",
    "inspect_weights",
    "open_detector",
    "read_frames",
    "run_inspection_subprocess",
    "sniff_file",
    "sniff_weights",
    "video_frame_count",
]
