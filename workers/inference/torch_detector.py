"""Ultralytics' own predictor on torch: `predict` on a batch, or `track` with ByteTrack."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workers.inference.api import DetectorParams, Frame, ModelInfo, RawDetection, WeightsRefused
from workers.inference.offline import ultralytics
from workers.inference.tracking import TRACKER_CONFIG

COCO_CLASSES = 80
FRAMEWORKS = {".pt": "ultralytics-pt", ".yaml": "ultralytics-yaml", ".yml": "ultralytics-yaml",
              ".onnx": "onnx"}  # fmt: skip


def load_yolo(weights: Path) -> Any:
    """The ultralytics model, refused (with the loader's message) unless it detects boxes."""
    try:
        model = ultralytics().YOLO(str(weights))
    except Exception as error:  # a loader raises anything: the message is the user's answer
        raise WeightsRefused(f"{type(error).__name__}: {error}") from error
    if model.task != "detect":
        raise WeightsRefused(f"not a detection model (task: {model.task})")
    if weights.suffix.lower() in {".yaml", ".yml"}:
        model.model.names = yaml_class_names(model.model.yaml)
    return model


def yaml_class_names(architecture: dict[str, Any]) -> dict[int, str]:
    """An architecture's class names: its own `names` when it lists them, COCO's for the 80
    classes every ultralytics architecture is drawn for, else the class numbers.

    Ultralytics itself names a model built from a .yaml "0", "1", ...: COCO's names let a
    registered architecture get the default person/bicycle/motorcycle class map.
    """
    nc = int(architecture.get("nc", 0))
    names = architecture.get("names")
    if isinstance(names, list) and len(names) == nc:
        return {i: str(name) for i, name in enumerate(names)}
    if isinstance(names, dict) and sorted(names) == list(range(nc)):
        return {int(i): str(name) for i, name in names.items()}
    if nc == COCO_CLASSES:
        utils: Any = importlib.import_module("ultralytics.utils")
        checks: Any = importlib.import_module("ultralytics.utils.checks")
        coco = utils.YAML.load(checks.check_yaml("coco.yaml"))["names"]
        return {int(i): str(name) for i, name in coco.items()}
    return {i: str(i) for i in range(nc)}


def yolo_info(model: Any, weights: Path) -> ModelInfo:
    names = model.names
    args = getattr(model.model, "args", None)
    imgsz = args.get("imgsz", 640) if isinstance(args, dict) else 640
    size = max(imgsz) if isinstance(imgsz, list | tuple) else int(imgsz)
    return ModelInfo(
        framework=FRAMEWORKS.get(weights.suffix.lower(), "ultralytics-pt"),
        class_names=tuple(str(names[i]) for i in sorted(names)),
        input_size=int(size),
        task=str(model.task),
    )


class TorchDetector:
    def __init__(self, weights: Path, params: DetectorParams, device: str) -> None:
        self._model = load_yolo(weights)
        self.info = yolo_info(self._model, weights)
        self._options = {"conf": params.confidence, "iou": params.iou, "imgsz": params.imgsz,
                         "device": device, "verbose": False, "half": False}  # fmt: skip
        self._tracking = params.tracking
        self.timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}

    def detect(
        self, frames: Sequence[Frame], *, frame_numbers: Sequence[int] | None = None
    ) -> list[list[RawDetection]]:
        if not frames:
            return []
        if self._tracking:
            results = self._model.track(
                list(frames), persist=True, tracker=TRACKER_CONFIG, **self._options
            )
        else:
            results = self._model.predict(list(frames), **self._options)
        found = []
        for result in results:
            for stage, ms in result.speed.items():
                if stage in self.timings and ms is not None:
                    self.timings[stage] += ms / 1000
            found.append(self._boxes(result))
        return found

    def _boxes(self, result: Any) -> list[RawDetection]:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        if self._tracking and boxes.id is None:
            return []  # no confirmed track yet: ultralytics keeps the untracked boxes, we don't
        xyxy = boxes.xyxy.cpu().numpy()
        conf = boxes.conf.cpu().numpy()
        cls = boxes.cls.cpu().numpy()
        ids = boxes.id.cpu().numpy() if boxes.id is not None else None
        names = self.info.class_names
        return [
            RawDetection(
                class_name=names[int(cls[i])],
                confidence=float(conf[i]),
                x=float(x1),
                y=float(y1),
                width=float(x2 - x1),
                height=float(y2 - y1),
                track_id=int(ids[i]) if ids is not None else None,
            )
            for i, (x1, y1, x2, y2) in enumerate(xyxy)
        ]

    def close(self) -> None:
        self._model = None
