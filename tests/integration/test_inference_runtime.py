"""open_detector and weights inspection on real ultralytics, torch and ONNX Runtime, offline.

Models are tiny: YOLOv8n's architecture from the .yaml ultralytics ships (random weights) at
imgsz 64-160, and a copy whose classification head is made noisy so that it outputs boxes,
which lets the torch and ONNX runtimes be compared box for box.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from workers.inference import (
    DetectorParams,
    ModelInfo,
    WeightsRefused,
    inspect_weights,
    open_detector,
    run_inspection_subprocess,
    sniff_weights,
)
from workers.inference.export import CACHE_FOLDER
from workers.inference.offline import ultralytics
from workers.inference.onnx_detector import OnnxDetector
from workers.inference.torch_detector import yaml_class_names

pytestmark = pytest.mark.integration

INSPECT_TIMEOUT_S = 120


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Any connection attempt fails the test (ultralytics must stay offline)."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield attempts
    assert attempts == []


@pytest.fixture(scope="module")
def package() -> Path:
    return Path(ultralytics().__file__).parent


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, package: Path) -> dict[str, Path]:
    """yolov8n.yaml (the name carries the scale), a .pt saved from it, and a noisy-head .pt."""
    import torch

    folder = tmp_path_factory.mktemp("models")
    yaml = folder / "yolov8n.yaml"
    shutil.copyfile(package / "cfg" / "models" / "v8" / "yolov8.yaml", yaml)
    model = ultralytics().YOLO(str(yaml))
    model.model.names = yaml_class_names(model.model.yaml)  # as a COCO-trained .pt has them
    model.save(str(folder / "plain.pt"))
    torch.manual_seed(0)
    for name, weight in model.model.model[-1].named_parameters():
        if name.startswith("cv3") and weight.dim() == 4:  # class-score convolutions
            weight.data.normal_(0, 4.0 if weight.shape[0] == 80 else 0.1)
        elif name.startswith("cv3") and weight.shape == (80,):  # their biases: scores near 5 %
            weight.data.fill_(-3.0)
    model.save(str(folder / "noisy.pt"))
    return {"yaml": yaml, "pt": folder / "plain.pt", "noisy": folder / "noisy.pt"}


@pytest.fixture(scope="module")
def frames(package: Path) -> list[np.ndarray]:
    bus = cv2.imread(str(package / "assets" / "bus.jpg"))
    zidane = cv2.imread(str(package / "assets" / "zidane.jpg"))
    return [cv2.resize(bus, (320, 240)), cv2.resize(zidane, (320, 240)), bus[:200, :300].copy()]


def test_environment_is_offline() -> None:
    ultralytics()
    assert os.environ["YOLO_OFFLINE"] == "1"
    from ultralytics.utils import checks

    assert checks.AUTOINSTALL is False


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_yaml_model_returns_one_empty_list_per_frame(
    runtime: str, models: dict[str, Path], frames: list[np.ndarray]
) -> None:
    detector = open_detector(models["yaml"], DetectorParams(imgsz=96, runtime=runtime))
    try:
        assert detector.detect(frames) == [[], [], []]  # random weights: no box passes 0.25
        assert detector.detect([]) == []
        assert detector.info.framework == "ultralytics-yaml"
        assert detector.info.class_names[:4] == ("person", "bicycle", "car", "motorcycle")
    finally:
        detector.close()


def test_onnx_export_is_cached_beside_the_weights(models: dict[str, Path]) -> None:
    open_detector(models["pt"], DetectorParams(imgsz=64, runtime="onnx")).close()
    cached = sorted((models["pt"].parent / CACHE_FOLDER).glob("*-64.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    open_detector(models["pt"], DetectorParams(imgsz=64, runtime="onnx")).close()
    assert cached[0].stat().st_mtime_ns == stamp  # reused, not exported again
    assert not list((models["pt"].parent / CACHE_FOLDER).glob(".export-*"))


def test_exported_onnx_computes_what_torch_computes(
    models: dict[str, Path], frames: list[np.ndarray]
) -> None:
    import torch

    from workers.inference.boxes import to_blob

    detector = open_detector(models["noisy"], DetectorParams(imgsz=160, runtime="onnx"))
    assert isinstance(detector, OnnxDetector)
    blob, _ = to_blob(frames[:2], 160)
    (exported,) = detector.session.run(None, {"images": blob})
    with torch.no_grad():
        reference = (
            ultralytics().YOLO(str(models["noisy"])).model.float().eval()(torch.from_numpy(blob))[0]
        )
    # 120x160 input: 15x20 + 8x10 + 4x5 anchors, 4 box values + 80 class scores each
    assert exported.shape == tuple(reference.shape) == (2, 84, 420)
    np.testing.assert_allclose(exported, reference.numpy(), rtol=1e-3, atol=2e-2)


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_boxes_are_in_frame_pixels_with_the_models_class_names(
    runtime: str, models: dict[str, Path], frames: list[np.ndarray]
) -> None:
    detector = open_detector(
        models["noisy"], DetectorParams(imgsz=160, confidence=0.08, runtime=runtime)
    )
    found = detector.detect(frames)
    assert len(found) == len(frames)
    for frame, boxes in zip(frames, found, strict=True):
        height, width = frame.shape[:2]
        assert 0 < len(boxes) <= 300
        for box in boxes:
            assert box.class_name in detector.info.class_names
            assert 0.08 < box.confidence <= 1 and box.track_id is None
            assert 0 <= box.x <= box.x + box.width <= width + 1e-3
            assert 0 <= box.y <= box.y + box.height <= height + 1e-3


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_tracking_gives_track_ids_that_persist(
    runtime: str, models: dict[str, Path], frames: list[np.ndarray]
) -> None:
    params = DetectorParams(imgsz=160, confidence=0.08, tracking=True, runtime=runtime)
    detector = open_detector(models["noisy"], params)
    still = [frames[0]] * 3
    first = detector.detect(still)
    second = detector.detect(still)
    ids = {d.track_id for batch in (*first, *second) for d in batch}
    assert ids and None not in ids
    assert {d.track_id for d in second[-1]} <= {d.track_id for d in first[-1]}


def test_sniff_refuses_what_is_no_model_format() -> None:
    assert sniff_weights("m.pt", b"PK\x03\x04rest") == "ultralytics-pt"
    assert sniff_weights("m.onnx", b"\x08\x07rest") == "onnx"
    assert sniff_weights("m.yaml", b"nc: 80\n") == "ultralytics-yaml"
    for name, head, reason in [
        ("m.exe", b"MZ", "not a model file"),
        ("m.pt", b"GIF89a", "not a PyTorch file"),
        ("m.onnx", b"{json}", "not an ONNX file"),
        ("m.yaml", b"\x00\x01", "not a YAML text file"),
        ("m.pt", b"", "empty"),
    ]:
        with pytest.raises(WeightsRefused, match=reason):
            sniff_weights(name, head)


def test_inspect_accepts_yaml_and_pt(models: dict[str, Path]) -> None:
    info = inspect_weights(models["yaml"])
    assert info.framework == "ultralytics-yaml"
    assert info.task == "detect"
    assert len(info.class_names) == 80
    assert info.input_size == 640
    pt = run_inspection_subprocess(models["pt"], INSPECT_TIMEOUT_S)
    assert pt == ModelInfo(
        framework="ultralytics-pt", class_names=info.class_names, input_size=640, task="detect"
    )


def test_inspect_accepts_an_exported_onnx(models: dict[str, Path]) -> None:
    open_detector(models["pt"], DetectorParams(imgsz=64, runtime="onnx")).close()
    (exported,) = (models["pt"].parent / CACHE_FOLDER).glob("*-64.onnx")
    info = run_inspection_subprocess(exported, INSPECT_TIMEOUT_S)
    assert info.framework == "onnx"
    assert info.class_names[0] == "person"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("garbage.pt", b"PK\x03\x04" + b"\x00" * 200, "BadZipFile|zip|archive|central directory"),
        ("garbage.pt", b"\x80\x04K\x01.", "Error|error"),
        ("garbage.onnx", b"\x08\x07" + os.urandom(200), "onnx|ONNX|protobuf|Protobuf|INVALID"),
        ("broken.yaml", b"nc: 80\nbackbone: [[-1, 1, NoSuchModule, [64]]]\nhead: []\n", "."),
    ],
)
def test_inspect_refuses_broken_weights_with_the_loaders_reason(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(WeightsRefused, match=reason) as refused:
        run_inspection_subprocess(path, INSPECT_TIMEOUT_S)
    assert refused.value.reason


def test_inspect_refuses_a_non_model_before_any_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(WeightsRefused, match="not a model file"):
        run_inspection_subprocess(path, 0.001)  # a subprocess could not even start in time


def test_inspect_times_out(models: dict[str, Path]) -> None:
    with pytest.raises(WeightsRefused, match="longer than"):
        run_inspection_subprocess(models["pt"], 0.05)
