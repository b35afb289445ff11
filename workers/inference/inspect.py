"""Loading weights once, at registration, to learn what they are or why they are refused.

`sniff_weights` judges a file by its name and first bytes (no loading, safe anywhere, so a
file that is no model format at all is refused at once). `inspect_weights` loads the model
and runs it on one blank frame. A .pt file is a pickle, and unpickling runs whatever code it
holds, so callers outside a worker use `run_inspection_subprocess`: the load happens in
`python -m workers.inference.inspect PATH`, which prints one ModelInfo line, and a crash,
hang or refusal there becomes WeightsRefused here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec
import numpy as np

from workers.inference.api import DetectorParams, ModelInfo, WeightsRefused
from workers.inference.offline import ENVIRONMENT

SUFFIXES = {".pt": "ultralytics-pt", ".onnx": "onnx", ".yaml": "ultralytics-yaml",
            ".yml": "ultralytics-yaml"}  # fmt: skip
MAX_YAML_BYTES = 1 << 20
HEAD_BYTES = 4096
_ZIP = b"PK\x03\x04"
_PICKLE_PROTOCOL = b"\x80"
_ONNX_FIRST_FIELD = b"\x08"
"""ModelProto's field 1 (ir_version, a varint) comes first in every serialised model."""
_MARKER = "VERITY-MODEL-INFO "
_REFUSED = "VERITY-REFUSED "


def sniff_weights(filename: str, head: bytes, size: int | None = None) -> str:
    """The framework a file claims by its extension, if its first bytes agree; else refused."""
    suffix = Path(filename).suffix.lower()
    framework = SUFFIXES.get(suffix)
    if framework is None:
        raise WeightsRefused(
            f"not a model file: {suffix or 'no extension'} (use .pt, .onnx or .yaml)"
        )
    if not head:
        raise WeightsRefused("the file is empty")
    if suffix == ".pt" and not head.startswith((_ZIP, _PICKLE_PROTOCOL)):
        raise WeightsRefused("not a PyTorch file (neither a torch zip archive nor a pickle)")
    if suffix == ".onnx" and not head.startswith(_ONNX_FIRST_FIELD):
        raise WeightsRefused("not an ONNX file (no ModelProto at its start)")
    if framework == "ultralytics-yaml":
        if size is not None and size > MAX_YAML_BYTES:
            raise WeightsRefused(f"a model .yaml over {MAX_YAML_BYTES} bytes is no architecture")
        if b"\x00" in head:
            raise WeightsRefused("not a YAML text file (it holds NUL bytes)")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as error:
            if error.start < len(head) - 3:  # not just a character cut at the end of the head
                raise WeightsRefused("not a YAML text file (not UTF-8)") from error
    return framework


def sniff_file(weights: Path) -> str:
    with weights.open("rb") as file:
        head = file.read(HEAD_BYTES)
    return sniff_weights(weights.name, head, weights.stat().st_size)


def inspect_weights(weights: Path) -> ModelInfo:
    """Loads the model in THIS process (a .pt runs its pickle here) and tries one frame."""
    framework = sniff_file(weights)
    blank = np.zeros((64, 64, 3), dtype=np.uint8)
    if framework == "onnx":
        from workers.inference.onnx_detector import OnnxDetector  # noqa: PLC0415

        try:
            detector = OnnxDetector(weights, DetectorParams(imgsz=64), "cpu")
            detector.detect([blank])
        except WeightsRefused:
            raise
        except Exception as error:  # onnxruntime's own errors: the reason the user sees
            raise WeightsRefused(f"{type(error).__name__}: {error}") from error
        return detector.info
    from workers.inference.torch_detector import load_yolo, yolo_info  # noqa: PLC0415

    model = load_yolo(weights)
    try:
        model.predict(blank, imgsz=64, device="cpu", verbose=False)
    except Exception as error:  # a model that loads but cannot run is refused here, not at use
        raise WeightsRefused(f"the model does not run: {type(error).__name__}: {error}") from error
    return yolo_info(model, weights)


def run_inspection_subprocess(weights: Path, timeout_s: float) -> ModelInfo:
    """inspect_weights in a child process, so this one never unpickles the weights."""
    sniff_file(weights)
    env = {**os.environ, **ENVIRONMENT}
    with tempfile.TemporaryDirectory(prefix="verity-inspect-") as work:
        try:
            done = subprocess.run(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", "workers.inference.inspect", str(weights.resolve())],
                capture_output=True, text=True, timeout=timeout_s, env=env, cwd=work,
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as error:
            raise WeightsRefused(f"loading took longer than {timeout_s:g} s") from error
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_MARKER):
            return msgspec.json.decode(line[len(_MARKER) :], type=ModelInfo)
        if line.startswith(_REFUSED):
            raise WeightsRefused(msgspec.json.decode(line[len(_REFUSED) :], type=str))
    tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
    raise WeightsRefused(f"the loader exited with status {done.returncode}: {tail[-500:]}")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m workers.inference.inspect WEIGHTS", file=sys.stderr)
        return 2
    try:
        info = inspect_weights(Path(argv[0]))
    except WeightsRefused as refused:
        print(_REFUSED + msgspec.json.encode(refused.reason[:2000]).decode(), flush=True)
        return 0
    print(_MARKER + msgspec.json.encode(info).decode(), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.update(ENVIRONMENT)
    sys.exit(main(sys.argv[1:]))
