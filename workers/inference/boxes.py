"""Letterboxing frames into a model's input and its raw output back into frame pixels.

The same geometry as ultralytics' predictor (scale the long side to `imgsz`, pad with grey to
a multiple of the stride, centred), so a model exported to ONNX sees what it saw in torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from workers.inference.api import Frame, RawDetection

STRIDE = 32
PAD_VALUE = 114
MAX_CANDIDATES = 30_000
"""Most boxes above the confidence threshold handed to NMS per frame (ultralytics' bound)."""
MAX_DETECTIONS = 300
"""Most boxes kept per frame after NMS (ultralytics' default `max_det`)."""

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Placement:
    """Where a frame went in the model's input: scale, then the left/top padding."""

    scale: float
    left: int
    top: int
    width: int
    height: int
    """Of the original frame, for clipping."""


def input_shape(frames: Sequence[Frame], imgsz: int) -> tuple[int, int]:
    """(height, width) of the batch: the frames' own aspect ratio when they share a shape, else
    square, as ultralytics does for a batch of mixed shapes."""
    shapes = {frame.shape[:2] for frame in frames}
    if len(shapes) != 1:
        return imgsz, imgsz
    height, width = next(iter(shapes))
    scale = imgsz / max(height, width)
    new_w, new_h = round(width * scale), round(height * scale)
    return _ceil_to(new_h, STRIDE), _ceil_to(new_w, STRIDE)


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def letterbox(frame: Frame, shape: tuple[int, int]) -> tuple[Frame, Placement]:
    height, width = frame.shape[:2]
    target_h, target_w = shape
    scale = min(target_h / height, target_w / width)
    new_w, new_h = round(width * scale), round(height * scale)
    resized: Any = frame  # cv2 types its results loosely
    if (new_w, new_h) != (width, height):
        resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_w, pad_h = (target_w - new_w) / 2, (target_h - new_h) / 2
    top, bottom = round(pad_h - 0.1), round(pad_h + 0.1)
    left, right = round(pad_w - 0.1), round(pad_w + 0.1)
    if top or bottom or left or right:
        resized = cv2.copyMakeBorder(
            resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
        )
    return resized, Placement(scale, left, top, width, height)


def to_blob(frames: Sequence[Frame], imgsz: int) -> tuple[Floats, list[Placement]]:
    """NCHW float32 RGB in [0, 1] and where each frame went."""
    shape = input_shape(frames, imgsz)
    boxed = [letterbox(frame, shape) for frame in frames]
    blob = cv2.dnn.blobFromImages([b for b, _ in boxed], 1 / 255.0, swapRB=True)
    return blob.astype(np.float32, copy=False), [p for _, p in boxed]


def decode(
    output: Floats,
    placement: Placement,
    class_names: Sequence[str],
    confidence: float,
    iou: float,
) -> list[RawDetection]:
    """One frame's raw head output (4 + classes, anchors: centre x, centre y, w, h in input
    pixels, then class scores) -> class-aware NMS -> boxes in frame pixels, best first."""
    scores_all = output[4:]
    best = scores_all.max(axis=0)
    keep = np.flatnonzero(best > confidence)
    if keep.size == 0:
        return []
    if keep.size > MAX_CANDIDATES:
        keep = keep[np.argsort(-best[keep])[:MAX_CANDIDATES]]
    scores = best[keep]
    classes = scores_all[:, keep].argmax(axis=0)
    cx, cy, w, h = output[:4, keep]
    x1 = (cx - w / 2 - placement.left) / placement.scale
    y1 = (cy - h / 2 - placement.top) / placement.scale
    x2 = (cx + w / 2 - placement.left) / placement.scale
    y2 = (cy + h / 2 - placement.top) / placement.scale
    rects: Any = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1).astype(np.float64)
    chosen = cv2.dnn.NMSBoxesBatched(
        rects,
        scores.astype(np.float64),
        classes.astype(np.int32),
        confidence,
        iou,
    )
    found = []
    for i in np.asarray(chosen, dtype=np.int64).reshape(-1)[:MAX_DETECTIONS]:
        left = float(np.clip(x1[i], 0, placement.width))
        top = float(np.clip(y1[i], 0, placement.height))
        right = float(np.clip(x2[i], 0, placement.width))
        bottom = float(np.clip(y2[i], 0, placement.height))
        found.append(
            RawDetection(
                class_name=class_names[int(classes[i])],
                confidence=float(scores[i]),
                x=left,
                y=top,
                width=right - left,
                height=bottom - top,
            )
        )
    return found
