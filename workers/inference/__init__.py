"""STAND-IN (helper "runs"): a minimal version of the agreed inference interface, until helper
"runtime"'s package is merged; the lead takes theirs. Only what the detection runs use."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from domain.vru import DETECTOR_NAMES
from workers.inference.api import (
    Detector,
    DetectorParams,
    FramePacket,
    ModelInfo,
    RawDetection,
    VideoDecodeError,
    WeightsRefused,
)

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
    "video_frame_count",
]


def _yolo(weights: Path) -> Any:
    from ultralytics import YOLO  # type: ignore[attr-defined]  # noqa: PLC0415

    return YOLO(str(weights))


def inspect_weights(weights: Path) -> ModelInfo:
    suffix = weights.suffix.lower()
    framework = {".pt": "ultralytics-pt", ".onnx": "onnx"}.get(suffix, "ultralytics-yaml")
    try:
        model = _yolo(weights)
        names = model.names
        imgsz = int((getattr(model, "overrides", {}) or {}).get("imgsz") or 640)
        task = str(model.task)
    except Exception as err:  # the loader's own words are the reason
        raise WeightsRefused(f"{type(err).__name__}: {err}") from err
    return ModelInfo(
        framework=framework,
        class_names=tuple(str(names[i]) for i in sorted(names)),
        input_size=imgsz,
        task=task,
    )


def run_inspection_subprocess(weights: Path, timeout_s: float) -> ModelInfo:
    code = (
        "import json,sys,msgspec;from pathlib import Path;"
        "from workers.inference import inspect_weights, WeightsRefused\n"
        "try:\n print(msgspec.json.encode(inspect_weights(Path(sys.argv[1]))).decode())\n"
        "except WeightsRefused as e:\n print(json.dumps({'refused': e.reason}))"
    )
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code, str(weights)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise WeightsRefused(f"loading took longer than {timeout_s:g} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise WeightsRefused(f"the loader exited with {done.returncode}: {done.stderr[-500:]}")
    data = json.loads(lines[-1])
    if "refused" in data:
        raise WeightsRefused(data["refused"])
    return ModelInfo(**{**data, "class_names": tuple(data["class_names"])})


class _Yolo:
    def __init__(self, weights: Path, params: DetectorParams) -> None:
        self.model = _yolo(weights)
        self.params = params
        names = self.model.names
        self.info = ModelInfo(
            framework="ultralytics",
            class_names=tuple(str(names[i]) for i in sorted(names)),
            input_size=params.imgsz,
            task=str(self.model.task),
        )

    def detect(
        self, frames: Sequence[np.ndarray], *, frame_numbers: Sequence[int] | None = None
    ) -> list[list[RawDetection]]:
        p = self.params
        device = None if p.device == "auto" else p.device
        kwargs = {"conf": p.confidence, "iou": p.iou, "imgsz": p.imgsz, "verbose": False}
        if p.tracking:
            results = [
                self.model.track(f, persist=True, device=device, **kwargs)[0] for f in frames
            ]
        else:
            results = self.model.predict(list(frames), device=device, **kwargs)
        out = []
        for r in results:
            boxes = r.boxes
            ids = boxes.id.tolist() if boxes.id is not None else [None] * len(boxes)
            dets = []
            for xyxy, conf, cls, tid in zip(
                boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), ids, strict=True
            ):
                x1, y1, x2, y2 = xyxy
                dets.append(
                    RawDetection(
                        class_name=str(r.names[int(cls)]),
                        confidence=float(conf),
                        x=x1,
                        y=y1,
                        width=x2 - x1,
                        height=y2 - y1,
                        track_id=None if tid is None else int(tid),
                    )
                )
            out.append(dets)
        return out

    def close(self) -> None:
        self.model = None


def open_detector(weights: Path, params: DetectorParams) -> Detector:
    return _Yolo(weights, params)


class FakeDetector:
    """A deterministic Detector for tests: the boxes `boxes_per_frame(frame_number)` says."""

    def __init__(
        self,
        boxes_per_frame: Callable[[int], list[RawDetection]],
        class_names: tuple[str, ...] = tuple(DETECTOR_NAMES),
    ) -> None:
        self.boxes_per_frame = boxes_per_frame
        self.info = ModelInfo(
            framework="fake", class_names=class_names, input_size=640, task="detect"
        )
        self._calls = 0

    def detect(
        self, frames: Sequence[np.ndarray], *, frame_numbers: Sequence[int] | None = None
    ) -> list[list[RawDetection]]:
        numbers = list(frame_numbers) if frame_numbers is not None else list(range(len(frames)))
        self._calls += 1
        return [self.boxes_per_frame(n) for n in numbers]

    def close(self) -> None:
        pass


def video_frame_count(video: Path) -> int:
    capture = cv2.VideoCapture(str(video))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()


def read_frames(  # noqa: PLR0915 - a stand-in, replaced by helper "runtime"'s
    video: Path, *, start: int = 0, stride: int = 1, batch_size: int = 8, queue_batches: int = 4
) -> Iterator[list[FramePacket]]:
    """Batches of every `stride`-th frame from `start`, decoded in a reader thread."""
    out: queue.Queue[list[FramePacket] | BaseException | None] = queue.Queue(queue_batches)
    stop = threading.Event()

    def reader() -> None:
        capture = cv2.VideoCapture(str(video))
        try:
            if not capture.isOpened():
                out.put(VideoDecodeError(start, "cannot open the video"))
                return
            fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0) or 30.0
            total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if start:
                capture.set(cv2.CAP_PROP_POS_FRAMES, start)
            number, batch = start, []
            while not stop.is_set():
                ok = capture.grab()
                if not ok:
                    if total and number < total:
                        out.put(VideoDecodeError(number, "decoding stopped early"))
                        return
                    break
                if (number - start) % stride == 0:
                    ok, image = capture.retrieve()
                    if not ok:
                        out.put(VideoDecodeError(number))
                        return
                    batch.append(FramePacket(number, number / fps, image))
                    if len(batch) >= batch_size:
                        out.put(batch)
                        batch = []
                number += 1
            if batch:
                out.put(batch)
            out.put(None)
        except BaseException as err:
            out.put(err)
        finally:
            capture.release()

    thread = threading.Thread(target=reader, name="read-frames", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                out.get_nowait()
            except queue.Empty:
                thread.join(0.05)
