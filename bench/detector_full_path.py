"""The detector worker's whole path for bench_detector.py: run, store, project.

A fresh PostgreSQL database (verity_bench_det_<random>, dropped at the end) holds a project,
the bench's video and the model, registered as they would be through the API (the model's
inspection recorded with the bench's input size and the detector's class names). Each `run()`
requests one test-session run and performs it with the worker's `RunExecutor`: the reader
thread, the detector opened as the worker opens it (per run, the ONNX export cached beside the
weights), class mapping, and every frame stored through `record_frames` on the
`PostgresFrameStore` (the devices' exactly-once path). Meanwhile a `ProjectionService` follows
the event store with every read model, as `verity serve` does; a run counts as done when the
run's session row in rm_test_sessions (test_sessions_v1) holds all its frames. Phases per run:
opening the detector, `detect` calls, the rest of the run (waiting for decoded frames, class
mapping, storing each batch and the run's progress) and the read model's lag after the run.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from psycopg_pool import ConnectionPool

from commands.application import Verity
from commands.detection_runs import RequestRun, load_run, request_run
from commands.detections import frame_recorder
from commands.detector_models import (
    RecordInspection,
    RegisterModel,
    record_inspection,
    register_model,
)
from commands.projects import CreateProject, create_project
from commands.videos import RegisterUpload, register_upload
from domain.detection_runs import RunMode, RunParameters, RunStatus
from domain.detector_models import Framework, Inspection
from domain.events import EventMeta, recorded_as
from domain.projects import CameraView, SignalType
from domain.videos import VideoMetadata
from projections.service import ProjectionService
from storage.frames import PostgresFrameStore
from verity.bootstrap import open_application, projection_runners
from workers.detection_run import RunExecutor
from workers.inference import DetectorParams, open_detector, read_frames
from workers.inference.api import Detector, Frame

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_spine import fresh_database


class Timed:
    """The detector, with the time spent in `detect` added up."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.info = detector.info
        self.seconds = 0.0

    def detect(self, frames: Sequence[Frame], *, frame_numbers: Sequence[int] | None = None) -> Any:
        started = time.perf_counter()
        try:
            return self.detector.detect(frames, frame_numbers=frame_numbers)
        finally:
            self.seconds += time.perf_counter() - started

    def close(self) -> None:
        self.detector.close()


class FullPath:
    def __init__(
        self,
        url: str,
        video: Path,
        weights: Path,
        *,
        frames: int,
        imgsz: int,
        batch: int,
        device: str,
        runtime: str,
        class_names: tuple[str, ...],
    ) -> None:
        self.url = url
        self.frames = frames
        self.batch = batch
        self.device = device
        self.runtime = runtime
        self.app: Verity = open_application(url)
        self.pool: ConnectionPool[Any] = ConnectionPool(url, min_size=1, max_size=8, open=True)
        self.service = ProjectionService(projection_runners(self.app, self.pool, 1000), url)
        self.service.catch_up_once()
        self.service.start()
        self.opened_s: list[float] = []
        self.executor = RunExecutor(
            self.app,
            record=frame_recorder(PostgresFrameStore(self.app)),
            worker="bench",
            models_dir=weights.parent,
            uploads_dir=video.parent,
            open_detector=self._open,
            read_frames=read_frames,
            progress_every=0.5,
        )
        self.video_id, self.model_id = self._register(video, weights, imgsz, class_names)

    def _open(self, weights: Path, params: DetectorParams) -> Detector:
        started = time.perf_counter()
        detector = open_detector(weights, msgspec.structs.replace(params, runtime=self.runtime))
        self.opened_s.append(time.perf_counter() - started)
        self.timed = Timed(detector)
        return self.timed

    def _register(
        self, video: Path, weights: Path, imgsz: int, class_names: tuple[str, ...]
    ) -> tuple[UUID, UUID]:
        project = CreateProject(
            name="bench detector",
            camera_model="bench",
            camera_view=CameraView.FRONT_FACING_VRU,
            signal_type=SignalType.GPIO,
        )
        create_project(project, self.app)
        upload = RegisterUpload(
            project_id=project.id,
            filename=video.name,
            original_name=video.name,
            size=video.stat().st_size,
            sha256="0" * 64,
            metadata=VideoMetadata(
                fps=30, frame_count=self.frames, duration=self.frames / 30, width=640, height=480
            ),
        )
        register_upload(upload, self.app)
        model = RegisterModel(
            name="yolov8n-bench",
            version="1",
            framework=Framework.ULTRALYTICS_YAML,
            sha256="1" * 64,
            filename=weights.name,
            original_name=weights.name,
            size=weights.stat().st_size,
        )
        register_model(model, self.app)
        info = Inspection(
            framework="ultralytics-yaml",
            class_names=class_names[:1000],
            input_size=imgsz,
            task="detect",
        )
        record_inspection(RecordInspection(id=model.id, inspection=info), self.app)
        return upload.id, model.id

    def run(self) -> dict[str, float]:
        """One run, timed from its start until the read model holds every frame; phases."""
        cmd = RequestRun(
            model_id=self.model_id,
            video_id=self.video_id,
            mode=RunMode.TEST_SESSION,
            parameters=RunParameters(batch_size=self.batch, device=self.device),
        )
        request_run(cmd, self.app)
        meta = EventMeta(actor="bench", correlation_id=cmd.id, causation_id=cmd.id)
        started = time.perf_counter()
        with recorded_as(meta):
            outcome = self.executor.perform(cmd.id, threading.Event(), lambda _s, _r: None)
        performed = time.perf_counter()
        run = load_run(self.app, cmd.id)
        if outcome.status != RunStatus.COMPLETED or run.session_id is None:
            msg = f"bench run ended {outcome.status}: {run.reason}"
            raise RuntimeError(msg)
        self._wait_projected(run.session_id)
        projected = time.perf_counter()
        inference = self.timed.seconds
        return {
            "fps": self.frames / (projected - started),
            "open detector s": self.opened_s[-1],
            "detect s": inference,
            "rest of run s": performed - started - self.opened_s[-1] - inference,
            "projection lag s": projected - performed,
        }

    def _wait_projected(self, session_id: UUID, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.url, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT frame_count FROM rm_test_sessions WHERE id = %s", (session_id,)
                ).fetchone()
                if row is not None and row[0] >= self.frames:
                    return
                if time.monotonic() > deadline:
                    msg = f"read model holds {row[0] if row else 0} of {self.frames} frames"
                    raise TimeoutError(msg)
                time.sleep(0.005)

    def close(self) -> None:
        self.service.stop()
        self.pool.close()
        self.app.close()


@contextlib.contextmanager
def full_path(admin_url: str, video: Path, weights: Path, **kwargs: Any) -> Iterator[FullPath]:
    name = f"verity_bench_det_{secrets.token_hex(4)}"
    with fresh_database(admin_url, name, keep=False) as url:
        path = FullPath(url, video, weights, **kwargs)
        try:
            yield path
        finally:
            path.close()
