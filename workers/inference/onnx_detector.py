"""Batches through ONNX Runtime directly: our letterbox, one session call, our NMS.

On a CPU this is the fast path: ONNX Runtime's optimised graph on every core (ultralytics
gives torch one fewer), a whole batch in one call, no per-frame `Results` objects. On one
thread each it ran YOLOv8n 1.15x as fast as ultralytics' fused torch model here.
"""

from __future__ import annotations

import ast
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workers.inference.api import DetectorParams, Frame, ModelInfo, RawDetection, WeightsRefused
from workers.inference.boxes import decode, to_blob
from workers.inference.tracking import ByteTrack


def cpu_threads() -> int:
    """Kernel threads: every core. Decoding costs the reader thread ~1.5 ms a frame and the
    threads sleep when idle, so nothing starves; on this 2-core machine 2 threads ran YOLOv8n
    at 12.7 frames/s against 9.7 with 1 (ultralytics gives torch one core fewer than the
    machine has: 8.4 frames/s)."""
    return max(1, os.cpu_count() or 1)


def onnx_session(path: Path, device: str = "cpu") -> Any:
    import onnxruntime  # noqa: PLC0415

    providers: list[Any] = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise ValueError("the onnx runtime on CUDA needs onnxruntime-gpu; use runtime torch")
        index = int(device.partition(":")[2] or 0)
        providers = [("CUDAExecutionProvider", {"device_id": index}), *providers]
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = cpu_threads()
    options.inter_op_num_threads = 1
    # Idle kernel threads sleep instead of spinning: the spin takes the core the frame reader
    # and the storing of results need (measured here: 2 spinning threads on 2 busy cores fell
    # from 15 to 6 frames/s; sleeping ones stayed at 9-13).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=providers)


def onnx_model_info(session: Any) -> ModelInfo:
    """What ultralytics' exporter wrote into the file's metadata; refused without it."""
    meta = session.get_modelmeta().custom_metadata_map
    if "names" not in meta:
        raise WeightsRefused(
            "the ONNX file carries no class names (export it with ultralytics, which records "
            "them in the file's metadata)"
        )
    try:
        names = ast.literal_eval(meta["names"])
        imgsz = ast.literal_eval(meta.get("imgsz", "[640, 640]"))
    except (ValueError, SyntaxError) as error:
        raise WeightsRefused(f"unreadable ONNX metadata: {error}") from error
    if not isinstance(names, dict) or not names:
        raise WeightsRefused("the ONNX metadata's class names are not a mapping")
    size = max(imgsz) if isinstance(imgsz, list | tuple) else int(imgsz)
    return ModelInfo(
        framework="onnx",
        class_names=tuple(str(names[i]) for i in sorted(names)),
        input_size=int(size),
        task=str(meta.get("task", "detect")),
    )


class OnnxDetector:
    def __init__(
        self, path: Path, params: DetectorParams, device: str, *, framework: str | None = None
    ) -> None:
        self.session = onnx_session(path, device)
        info = onnx_model_info(self.session)
        if info.task != "detect":
            raise WeightsRefused(f"not a detection model (task: {info.task})")
        self.info = info if framework is None else ModelInfo(
            framework=framework, class_names=info.class_names, input_size=info.input_size,
            task=info.task,
        )  # fmt: skip
        self._input = self.session.get_inputs()[0].name
        self._confidence, self._iou, self._imgsz = params.confidence, params.iou, params.imgsz
        self._tracker = ByteTrack(info.class_names) if params.tracking else None
        self.timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        self.path = path

    def detect(
        self, frames: Sequence[Frame], *, frame_numbers: Sequence[int] | None = None
    ) -> list[list[RawDetection]]:
        if not frames:
            return []
        started = time.perf_counter()
        blob, placements = to_blob(frames, self._imgsz)
        inferred = time.perf_counter()
        (output,) = self.session.run(None, {self._input: blob})[:1]
        decoded = time.perf_counter()
        names = self.info.class_names
        found = [
            decode(output[i], placements[i], names, self._confidence, self._iou)
            for i in range(len(frames))
        ]
        if self._tracker is not None:
            found = [self._tracker.update(f, d) for f, d in zip(frames, found, strict=True)]
        done = time.perf_counter()
        self.timings["preprocess"] += inferred - started
        self.timings["inference"] += decoded - inferred
        self.timings["postprocess"] += done - decoded
        return found

    def close(self) -> None:
        self.session = None
