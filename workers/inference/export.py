"""The registered model exported once to ONNX, cached beside the weights.

The cache file is named by the weights' sha256 and the export size, so new weights never meet
an old export, and written atomically (exported in a private folder, then renamed), so two
workers exporting at once both end with a whole file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from workers.inference.torch_detector import load_yolo

CACHE_FOLDER = "onnx-cache"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cached_onnx_path(weights: Path, imgsz: int, cache_dir: Path | None = None) -> Path:
    folder = cache_dir if cache_dir is not None else weights.parent / CACHE_FOLDER
    return folder / f"{file_sha256(weights)}-{imgsz}.onnx"


def export_onnx(weights: Path, imgsz: int, cache_dir: Path | None = None) -> Path:
    """The ONNX file for `weights` (.pt or .yaml), exporting it on first use.

    Dynamic batch and image size (the exported graph takes any batch of any stride-multiple
    shape); no onnxslim pass (ONNX Runtime optimises the graph itself when it loads it, and the
    pass would be one more package for ultralytics to try to install).
    """
    target = cached_onnx_path(weights, imgsz, cache_dir)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    model = load_yolo(weights)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work:
        # The exporter writes beside the weights it thinks it has (a .yaml's: the working
        # folder), so it is told they were in a private folder.
        model.model.pt_path = str(Path(work) / "model.pt")
        exported = model.export(
            format="onnx", imgsz=imgsz, dynamic=True, simplify=False, device="cpu", verbose=False
        )
        os.replace(exported, target)
    return target
