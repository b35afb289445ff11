"""open_detector: the registered weights on the runtime and device the parameters ask for."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from workers.inference.api import Detector, DetectorParams
from workers.inference.export import export_onnx
from workers.inference.offline import ultralytics
from workers.inference.onnx_detector import OnnxDetector
from workers.inference.torch_detector import FRAMEWORKS, TorchDetector

RUNTIMES = ("auto", "torch", "onnx")


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda:0" when torch sees a GPU, else "cpu"; others as given."""
    if device != "auto":
        return device
    ultralytics()
    import torch  # noqa: PLC0415

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def resolve_runtime(runtime: str, device: str) -> str:
    """ "auto" -> ONNX Runtime on the CPU (when installed), torch on a GPU."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if runtime != "auto":
        return runtime
    if device == "cpu" and importlib.util.find_spec("onnxruntime") is not None:
        return "onnx"
    return "torch"


def open_detector(
    weights: Path, params: DetectorParams, *, cache_dir: Path | None = None
) -> Detector:
    """Loads the model (exporting it to ONNX once, cached, when that runtime is chosen).

    `cache_dir` holds exported files; by default a folder beside the weights.
    """
    device = resolve_device(params.device)
    runtime = resolve_runtime(params.runtime, device)
    if runtime == "torch":
        return TorchDetector(weights, params, device)
    is_onnx = weights.suffix.lower() == ".onnx"
    path = weights if is_onnx else export_onnx(weights, params.imgsz, cache_dir)
    framework = None if is_onnx else FRAMEWORKS.get(weights.suffix.lower())
    return OnnxDetector(path, params, device, framework=framework)
