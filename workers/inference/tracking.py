"""ByteTrack, as ultralytics ships it, over boxes that came from our own ONNX path."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from workers.inference.api import Frame, RawDetection
from workers.inference.offline import ultralytics

TRACKER_CONFIG = "bytetrack.yaml"


class ByteTrack:
    """One video's tracker: feed every frame's boxes in video order; boxes that belong to no
    confirmed track yet are dropped, as ultralytics' own `track` does."""

    def __init__(self, class_names: Sequence[str]) -> None:
        ultralytics()
        utils: Any = importlib.import_module("ultralytics.utils")
        checks: Any = importlib.import_module("ultralytics.utils.checks")
        byte_tracker: Any = importlib.import_module("ultralytics.trackers.byte_tracker")
        results: Any = importlib.import_module("ultralytics.engine.results")
        config = utils.IterableSimpleNamespace(**utils.YAML.load(checks.check_yaml(TRACKER_CONFIG)))
        self._tracker: Any = byte_tracker.BYTETracker(args=config)
        self._boxes: Any = results.Boxes
        self._names = list(class_names)
        self._index = {name: i for i, name in enumerate(self._names)}

    def update(self, frame: Frame, detections: list[RawDetection]) -> list[RawDetection]:
        rows = np.array(
            [
                [d.x, d.y, d.x + d.width, d.y + d.height, d.confidence, self._index[d.class_name]]
                for d in detections
            ],
            dtype=np.float32,
        ).reshape(-1, 6)
        tracks = self._tracker.update(self._boxes(rows, frame.shape[:2]), frame)
        height, width = frame.shape[:2]
        found = []
        for x1, y1, x2, y2, track_id, score, cls, _ in np.asarray(tracks).reshape(-1, 8):
            left, top = float(np.clip(x1, 0, width)), float(np.clip(y1, 0, height))
            right, bottom = float(np.clip(x2, 0, width)), float(np.clip(y2, 0, height))
            found.append(
                RawDetection(
                    class_name=self._names[int(cls)],
                    confidence=float(score),
                    x=left,
                    y=top,
                    width=right - left,
                    height=bottom - top,
                    track_id=int(track_id),
                )
            )
        return found
