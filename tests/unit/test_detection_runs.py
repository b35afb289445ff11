"""Detector models and detection runs on the in-memory store: rules, maps, ids, handlers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from commands.application import Verity
from commands.detection_runs import (
    CancelRun,
    Finish,
    Found,
    FrameResult,
    RequestRun,
    StartRun,
    StoreBatch,
    cancel_run,
    finish_run,
    request_run,
    start_run,
    store_batch,
)
from commands.detections import FrameRecorder, frame_recorder
from commands.detector_models import (
    RecordInspection,
    RegisterModel,
    record_inspection,
    register_model,
)
from commands.projects import CreateProject, create_project
from commands.videos import RegisterUpload, register_upload
from domain.annotations import Annotation
from domain.detection_runs import DetectionRun, RunMode, RunParameters, RunStatus, candidate_id
from domain.detector_models import DetectorModel, Framework, Inspection, ModelStatus
from domain.errors import Conflict, InvalidValue, NotFound
from domain.projects import CameraView, SignalType
from domain.test_sessions import SessionStatus, TestSession
from domain.videos import VideoMetadata
from domain.vru import VruType, default_class_map
from storage.memory_frames import InMemoryFrameStore
from workers.detection_run import RunExecutor, map_detections
from workers.inference import FakeDetector
from workers.inference.api import FramePacket, RawDetection, VideoDecodeError


def _recorder(app: Verity) -> FrameRecorder:
    return frame_recorder(InMemoryFrameStore(app))


pytestmark = pytest.mark.unit

COCO = ("person", "bicycle", "car", "motorcycle")


def test_default_class_map_reads_coco_names_and_unnamed_coco_ids() -> None:
    assert default_class_map(COCO) == {
        "person": VruType.PEDESTRIAN,
        "bicycle": VruType.CYCLIST,
        "motorcycle": VruType.MOTORCYCLIST,
    }
    numbered = tuple(str(i) for i in range(80))
    assert default_class_map(numbered) == {
        "0": VruType.PEDESTRIAN,
        "1": VruType.CYCLIST,
        "3": VruType.MOTORCYCLIST,
    }
    assert default_class_map(("cat", "dog")) == {}


def _model(app: Verity, names: tuple[str, ...] = COCO, **extra: object) -> DetectorModel:
    cmd = RegisterModel(
        name="m",
        version="1",
        framework=Framework.ONNX,
        sha256="0" * 64,
        filename="m.onnx",
        original_name="m.onnx",
        size=1,
        **extra,  # type: ignore[arg-type]
    )
    register_model(cmd, app)
    info = Inspection(framework="onnx", class_names=names, input_size=64, task="detect")
    record_inspection(RecordInspection(id=cmd.id, inspection=info), app)
    return app.load(DetectorModel, cmd.id)


def test_a_model_is_inspected_once_and_refused_without_a_vru_class() -> None:
    app = Verity()
    ready = _model(app)
    assert ready.status == ModelStatus.READY
    assert ready.class_map == default_class_map(COCO)
    with pytest.raises(Conflict):
        record_inspection(RecordInspection(id=ready.id, inspection=None, refusal="x"), app)
    animals = _model(app, ("cat", "dog"))
    assert animals.status == ModelStatus.REFUSED
    assert "none of the model's classes" in animals.reason
    mapped = _model(app, ("cat", "dog"), class_map={"dog": VruType.ANIMAL})
    assert mapped.class_map == {"dog": VruType.ANIMAL}


def _video(app: Verity) -> RegisterUpload:
    project = CreateProject(
        name="p", camera_model="c", camera_view=CameraView.MULTI_ANGLE, signal_type=SignalType.GPIO
    )
    create_project(project, app)
    upload = RegisterUpload(
        project_id=project.id,
        filename="v.mp4",
        original_name="v.mp4",
        size=1,
        sha256="0" * 64,
        metadata=VideoMetadata(fps=10, frame_count=20, duration=2, width=64, height=48),
    )
    register_upload(upload, app)
    return upload


def _batch(run_id: object, frames: range) -> StoreBatch:
    found = (Found(vru_type=VruType.PEDESTRIAN, confidence=0.9, x=1, y=1, width=5, height=5),)
    return StoreBatch(
        run_id=run_id,  # type: ignore[arg-type]
        frames=tuple(FrameResult(frame_number=f, timestamp=f / 10, found=found) for f in frames),
        received_at=datetime.now(UTC),
    )


def test_ground_truth_candidates_are_stored_once_under_derived_ids() -> None:
    app = Verity()
    model, video = _model(app), _video(app)
    cmd = RequestRun(model_id=model.id, video_id=video.id, mode=RunMode.GROUND_TRUTH)
    request_run(cmd, app)
    assert start_run(StartRun(id=cmd.id, worker="w"), app).status == RunStatus.RUNNING
    store_batch(_batch(cmd.id, range(4)), app, _recorder(app))
    store_batch(
        _batch(cmd.id, range(6)), app, _recorder(app)
    )  # a resumed worker repeats frames 0-3
    for frame in range(6):
        annotation = app.load(Annotation, candidate_id(cmd.id, frame, 0))
        assert annotation.source == "detector" and not annotation.validated
    assert not app.exists(candidate_id(cmd.id, 6, 0))
    finish_run(Finish(run_id=cmd.id, status=RunStatus.COMPLETED, frames_done=6), app)
    with pytest.raises(Conflict):
        cancel_run(CancelRun(id=cmd.id), app)


def test_test_session_mode_feeds_its_session_and_cancel_closes_it() -> None:
    app = Verity()
    model, video = _model(app), _video(app)
    cmd = RequestRun(model_id=model.id, video_id=video.id, mode=RunMode.TEST_SESSION)
    request_run(cmd, app)
    state = start_run(StartRun(id=cmd.id, worker="w"), app)
    assert state.session_id is not None
    session = app.load(TestSession, state.session_id)
    assert session.status == SessionStatus.RUNNING
    assert session.device_id == f"model-{cmd.id}"
    store_batch(_batch(cmd.id, range(3)), app, _recorder(app))
    cancel_run(CancelRun(id=cmd.id), app)
    assert app.load(TestSession, state.session_id).status == SessionStatus.FAILED
    after = store_batch(_batch(cmd.id, range(3, 6)), app, _recorder(app))
    assert after.status == RunStatus.CANCELLED


def test_a_run_request_names_what_is_wrong() -> None:
    app = Verity()
    model, video = _model(app), _video(app)
    with pytest.raises(NotFound, match="Video"):
        request_run(
            RequestRun(model_id=model.id, video_id=model.id, mode=RunMode.GROUND_TRUTH), app
        )
    with pytest.raises(NotFound, match="Model"):
        request_run(
            RequestRun(model_id=video.id, video_id=video.id, mode=RunMode.GROUND_TRUTH), app
        )
    params = RunParameters(target_classes=("truck",))
    with pytest.raises(InvalidValue, match=r"targetClasses\[0\]"):
        request_run(
            RequestRun(
                model_id=model.id, video_id=video.id, mode=RunMode.GROUND_TRUTH, parameters=params
            ),
            app,
        )


def test_detections_are_mapped_targeted_and_clipped() -> None:
    raw = [
        RawDetection(class_name="person", confidence=0.9, x=-5, y=10, width=20, height=50),
        RawDetection(class_name="car", confidence=0.9, x=1, y=1, width=5, height=5),
        RawDetection(class_name="bicycle", confidence=0.4, x=60, y=40, width=30, height=30),
        RawDetection(class_name="person", confidence=0.5, x=70, y=0, width=5, height=5),
    ]
    found = map_detections(raw, default_class_map(COCO), frozenset(), (64, 48))
    assert [(f.vru_type, f.x, f.y, f.width, f.height) for f in found] == [
        (VruType.PEDESTRIAN, 0.0, 10.0, 15.0, 38.0),
        (VruType.CYCLIST, 60.0, 40.0, 4.0, 8.0),
    ]
    only = map_detections(raw, default_class_map(COCO), frozenset({"cyclist"}), (64, 48))
    assert [f.vru_type for f in only] == [VruType.CYCLIST]


def test_a_video_that_fails_mid_decode_fails_the_run_naming_the_frame(tmp_path: Path) -> None:
    app = Verity()
    model, video = _model(app), _video(app)
    cmd = RequestRun(model_id=model.id, video_id=video.id, mode=RunMode.GROUND_TRUTH)
    request_run(cmd, app)

    def frames(_path: Path, **_options: object) -> Iterator[list[FramePacket]]:
        yield [FramePacket(n, n / 10, np.zeros((48, 64, 3), np.uint8)) for n in range(4)]
        raise VideoDecodeError(4, "corrupt packet")

    executor = RunExecutor(
        app,
        record=_recorder(app),
        worker="w",
        models_dir=tmp_path,
        uploads_dir=tmp_path,
        open_detector=lambda _w, _p: FakeDetector(lambda _n: [], class_names=COCO),
        read_frames=frames,
    )
    outcome = executor.perform(cmd.id, threading.Event(), lambda _s, _r: None)
    assert outcome.status == RunStatus.FAILED
    run = app.load(DetectionRun, cmd.id)
    assert run.status == RunStatus.FAILED
    assert "corrupt packet" in run.reason
    last = app.mapper.to_domain_event(app.recorder.select_events(cmd.id)[-1])
    assert isinstance(last, DetectionRun.Failed)
    assert last.frame == 4
