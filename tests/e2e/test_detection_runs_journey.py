"""Detector models and runs over HTTP on real servers, with a deterministic fake detector.

One test loads a real ultralytics architecture (`yolov8n.yaml`, random weights, offline) in
the worker's inspection subprocess; the others inject a fake inspection and FakeDetector, so
the boxes are known and no torch time is spent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import TestClient

from api.app import create_app
from tests.e2e.helpers import write_video
from verity.bootstrap import Endpoints, running
from verity.settings import Settings
from workers.inference import FakeDetector, RawDetection
from workers.inference.api import ModelInfo, WeightsRefused

pytestmark = pytest.mark.e2e
os.environ.setdefault("YOLO_OFFLINE", "1")

PROJECT = {
    "name": "Detection",
    "cameraModel": "AX-200",
    "cameraView": "Front-facing VRU",
    "signalType": "GPIO",
}
COCO = ("person", "bicycle", "car", "motorcycle")
ONNX_HEADER = b"\x08\x07" + b"\x00" * 64
"""Enough of an ONNX file to pass the upload's sniffing; the fake inspection reads it."""


def boxes(frame: int) -> list[RawDetection]:
    """Frame n: a person moving right, a car (no VRU: dropped), a cyclist on even frames."""
    found = [
        RawDetection(
            class_name="person", confidence=0.9, x=2 + frame % 30, y=4, width=8, height=16
        ),
        RawDetection(class_name="car", confidence=0.8, x=30, y=20, width=10, height=10),
    ]
    if frame % 2 == 0:
        found.append(
            RawDetection(class_name="bicycle", confidence=0.55, x=40, y=10, width=60, height=30)
        )
    return found


def expected(frames: int) -> int:
    return sum(1 + (f % 2 == 0) for f in range(frames))


def fake_inspect(path: Path, _timeout: float) -> ModelInfo:
    if b"BROKEN" in path.read_bytes():
        raise WeightsRefused("RuntimeError: the protobuf is truncated")
    return ModelInfo(framework="onnx", class_names=COCO, input_size=64, task="detect")


def fake_options(delay: float = 0.0) -> dict[str, Any]:
    def open_detector(_weights: Path, _params: Any) -> FakeDetector:
        def slow(frame: int) -> list[RawDetection]:
            if delay:
                time.sleep(delay)
            return boxes(frame)

        return FakeDetector(slow, class_names=COCO)

    return {"open_detector": open_detector, "inspect": fake_inspect, "progress_every": 0.1}


@contextmanager
def client_with(settings: Settings, options: dict[str, Any] | None) -> Iterator[TestClient[Any]]:
    assert settings.database_url is not None and settings.nats_url is not None
    endpoints = Endpoints(settings.database_url, settings.nats_url)
    app = create_app(
        lambda: running(settings, endpoints, detector_options=options), settings.uploads_dir
    )
    with TestClient(app, timeout=60) as client:
        yield client


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient[Any]]:
    with client_with(settings, fake_options()) as c:
        yield c


def wait_for(get: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def upload_model(client: TestClient[Any], content: bytes, filename: str, **fields: str) -> Any:
    return client.post(
        "/api/detection/models",
        files={"file": (filename, content, "application/octet-stream")},
        data=fields,
    )


def ready_model(client: TestClient[Any], name: str, content: bytes = ONNX_HEADER) -> Any:
    response = upload_model(client, content + name.encode(), f"{name}.onnx")
    assert response.status_code == 200, response.text
    model_id = response.json()["id"]
    model = wait_for(
        lambda: client.get(f"/api/detection/models/{model_id}").json(),
        lambda m: m["status"] != "inspecting",
    )
    assert model["status"] == "ready", model
    return model


def project_with_video(
    client: TestClient[Any], tmp_path: Path, frames: int = 12
) -> tuple[str, str]:
    project = client.post("/api/projects", json=PROJECT).json()
    path = write_video(tmp_path / f"clip-{uuid4().hex[:6]}.mp4", frames=frames, size=(128, 96))
    with path.open("rb") as f:
        response = client.post(
            f"/api/projects/{project['id']}/videos", files={"file": ("clip.mp4", f, "video/mp4")}
        )
    assert response.status_code == 200, response.text
    return project["id"], response.json()["id"]


def finished_run(client: TestClient[Any], run_id: str, timeout: float = 30.0) -> Any:
    return wait_for(
        lambda: client.get(f"/api/detection/runs/{run_id}").json(),
        lambda r: r["status"] in ("completed", "failed", "cancelled"),
        timeout,
    )


def test_an_architecture_yaml_loads_once_and_becomes_ready(settings: Settings) -> None:
    import ultralytics

    architecture = Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8.yaml"
    with client_with(settings, None) as client:
        response = upload_model(client, architecture.read_bytes(), "yolov8n.yaml", name="tiny")
        assert response.status_code == 200, response.text
        model = response.json()
        assert model["status"] == "inspecting"
        assert model["framework"] == "ultralytics-yaml"
        model = wait_for(
            lambda: client.get(f"/api/detection/models/{model['id']}").json(),
            lambda m: m["status"] != "inspecting",
            timeout=180,
        )
        assert model["status"] == "ready", model
        assert len(model["classNames"]) == 80
        assert set(model["classMap"].values()) == {"pedestrian", "cyclist", "motorcyclist"}
        available = client.get("/api/detection/models/available").json()
        assert available["models"] == ["tiny"]
        assert available["default"] == "tiny"


def test_weights_that_are_no_model_or_do_not_load(client: TestClient[Any]) -> None:
    not_onnx = upload_model(client, b"hello, I am text", "model.onnx")
    assert not_onnx.status_code == 422
    assert not_onnx.json()["detail"].startswith("file: not an ONNX model")
    not_yaml = upload_model(client, b"just: a mapping\n", "model.yaml")
    assert not_yaml.status_code == 422
    assert "backbone" in not_yaml.json()["detail"]
    pickle = upload_model(client, b"PK\x03\x04rest", "model.pt")
    assert pickle.status_code == 403
    assert "VERITY_ALLOW_PICKLE_WEIGHTS" in pickle.json()["detail"]
    text = upload_model(client, b"x", "model.txt")
    assert text.status_code == 422
    broken = upload_model(client, ONNX_HEADER + b"BROKEN", "broken.onnx")
    assert broken.status_code == 200, broken.text
    model = wait_for(
        lambda: client.get(f"/api/detection/models/{broken.json()['id']}").json(),
        lambda m: m["status"] != "inspecting",
    )
    assert model["status"] == "refused"
    assert model["reason"] == "RuntimeError: the protobuf is truncated"
    available = client.get("/api/detection/models/available").json()  # others' models may be
    assert model["name"] not in available["models"]
    assert broken.json()["id"] not in [m["id"] for m in available["items"]]


def test_ground_truth_run_makes_candidates_once(client: TestClient[Any], tmp_path: Path) -> None:
    project_id, video_id = project_with_video(client, tmp_path)
    no_model = client.post(f"/api/videos/{video_id}/process-ground-truth")
    assert no_model.status_code == 409
    assert no_model.json()["detail"].startswith("modelId: no model given")
    model = ready_model(client, "gt-model")
    updated = client.put(f"/api/projects/{project_id}", json={"models": ["gt-model"]})
    assert updated.status_code == 200, updated.text
    assert updated.json()["models"][0]["id"] == model["id"]

    started = client.post(f"/api/videos/{video_id}/process-ground-truth")
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["status"] == "started"
    assert body["video_id"] == video_id
    run = finished_run(client, body["run_id"])
    assert run["status"] == "completed", run
    assert run["framesDone"] == 12
    assert run["detections"] == expected(12)

    annotations = wait_for(
        lambda: client.get(f"/api/videos/{video_id}/annotations").json(),
        lambda a: len(a) >= expected(12),
    )
    assert len(annotations) == expected(12)
    assert {a["source"] for a in annotations} == {"detector"}
    assert not any(a["validated"] for a in annotations)
    assert {a["vruType"] for a in annotations} == {"pedestrian", "cyclist"}

    again = client.post(f"/api/videos/{video_id}/process-ground-truth").json()
    assert again["status"] == "already_completed"
    runs = client.get(f"/api/videos/{video_id}/detection-runs").json()
    assert [r["id"] for r in runs] == [body["run_id"]]


def test_pipeline_run_feeds_a_test_session(client: TestClient[Any], tmp_path: Path) -> None:
    _, video_id = project_with_video(client, tmp_path)
    truth = {
        "frame_number": 0,
        "timestamp": 0.0,
        "vru_type": "pedestrian",
        "bounding_box": {"x": 2, "y": 4, "width": 8, "height": 16},
    }
    assert client.post(f"/api/videos/{video_id}/annotations", json=truth).status_code == 200
    ready_model(client, "yolov8n")
    response = client.post(
        "/api/detection/pipeline/run",
        json={"video_id": video_id, "model_name": "yolov8n", "confidence_threshold": 0.5},
    )
    assert response.status_code == 200, response.text
    m1 = response.json()
    assert m1["video_id"] == video_id
    assert m1["model_used"] == "yolov8n"
    assert m1["total_detections"] == expected(12) == len(m1["detections"])
    first = m1["detections"][0]
    assert set(first) >= {"id", "frame_number", "timestamp", "class_label", "confidence"}
    assert first["bounding_box"]["width"] > 0
    session = wait_for(
        lambda: client.get(f"/api/test-sessions/{m1['session_id']}").json(),
        lambda s: s["status"] == "completed",
    )
    assert session["status"] == "completed"
    results = wait_for(
        lambda: client.get(f"/api/test-sessions/{m1['session_id']}/results"),
        lambda r: r.status_code == 200,
    )
    assert results.status_code == 200, results.text
    assert results.json()["truePositives"] >= 1


def test_cancel_stops_within_a_second(settings: Settings, tmp_path: Path) -> None:
    with client_with(settings, fake_options(delay=0.02)) as client:
        _, video_id = project_with_video(client, tmp_path, frames=300)
        model = ready_model(client, "slow")
        run = client.post(
            "/api/detection/runs",
            json={
                "videoId": video_id,
                "modelId": model["id"],
                "mode": "ground_truth",
                "batchSize": 4,
            },
        ).json()
        wait_for(
            lambda: client.get(f"/api/detection/runs/{run['id']}").json(),
            lambda r: r["framesDone"] >= 8,
        )
        cancelled = client.post(f"/api/detection/runs/{run['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        time.sleep(1.0)
        counted = len(client.get(f"/api/videos/{video_id}/annotations").json())
        time.sleep(1.5)
        assert len(client.get(f"/api/videos/{video_id}/annotations").json()) == counted
        assert counted < expected(300)
        again = client.post(f"/api/detection/runs/{run['id']}/cancel")
        assert again.status_code == 409


def test_bad_run_requests_name_what_is_wrong(client: TestClient[Any], tmp_path: Path) -> None:
    _, video_id = project_with_video(client, tmp_path)
    model = ready_model(client, "checks")
    missing_video = str(uuid4())
    response = client.post(
        "/api/detection/runs", json={"videoId": missing_video, "modelId": model["id"]}
    )
    assert response.status_code == 404
    assert missing_video in response.json()["detail"]
    response = client.post("/api/detection/runs", json={"videoId": video_id, "modelId": "nope"})
    assert response.status_code == 404
    assert "'nope'" in response.json()["detail"]
    for field, value in (
        ("frameStride", 0),
        ("device", "gpu"),
        ("confidence", 1.5),
        ("batchSize", 100_000),
    ):
        response = client.post(
            "/api/detection/runs",
            json={"videoId": video_id, "modelId": model["id"], field: value},
        )
        assert response.status_code == 422, (field, response.text)
        assert response.json()["detail"].startswith(f"{field}:"), response.json()
    response = client.post(
        "/api/detection/runs",
        json={"videoId": video_id, "modelId": model["id"], "targetClasses": ["truck"]},
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("targetClasses[0]:")
    assert client.get(f"/api/detection/runs/{uuid4()}").status_code == 404
    assert client.get(f"/api/videos/{video_id}/detection-runs").json() == []
