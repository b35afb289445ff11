"""One small history for every aggregate type, for the audit tests.

`SAMPLES` maps each VerityAggregate subclass to a builder (an aggregate with its pending
events, two versions where the type can change) and the state path its second version changes
(None for the types that are never changed after they are recorded). A new aggregate type
without an entry here fails tests/unit/test_audit_decoding.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from domain.access import Role
from domain.annotation_imports import AnnotationImport
from domain.annotation_sessions import AnnotationSession, SessionChanges
from domain.annotations import Annotation, BoundingBox
from domain.criteria import CriteriaValues, ProjectCriteria
from domain.detection_runs import DetectionRun, RunMode, RunParameters
from domain.detections import Detection, DeviceFrame, FrameBatch, RecordedFrame
from domain.detector_models import DetectorModel, Framework
from domain.devices import Device, register_device
from domain.evaluation import EvaluationConfig
from domain.evaluations import DetectionsPin, Evaluation, GroundTruthPin
from domain.events import VerityAggregate
from domain.principals import Account, AccountKind
from domain.projects import CameraView, Project, ProjectChanges, SignalType
from domain.test_sessions import TestSession
from domain.tokens import ApiToken
from domain.videos import Video, VideoMetadata
from domain.vru import VruType

Builder = Callable[[], VerityAggregate]
_BCRYPT_SHAPED = "$2b$12$" + "a" * 53


def _account() -> VerityAggregate:
    account = Account.register("audit-analyst", AccountKind.USER, Role.VIEWER)
    account.change_role(Role.ANALYST)
    return account


def _api_token() -> VerityAggregate:
    token = ApiToken.issue(uuid4(), "audit-token", "d" * 64, Role.AUDITOR, None, None)
    token.revoke()
    return token


def _device() -> VerityAggregate:
    device = register_device("audit-cam", _BCRYPT_SHAPED)
    device.disable("retired")
    return device


def _project() -> VerityAggregate:
    project = Project(
        name="audit p",
        camera_model="cam",
        camera_view=CameraView.FRONT_FACING_VRU,
        signal_type=SignalType.GPIO,
    )
    project.update(ProjectChanges(name="audit p renamed"))
    return project


def _video() -> VerityAggregate:
    video = Video(
        project_id=uuid4(), filename="a.mp4", original_name="a.mp4", size_bytes=10, sha256="0"
    )
    video.record_metadata(VideoMetadata(fps=10, frame_count=30, duration=3, width=64, height=48))
    return video


def _annotation() -> VerityAggregate:
    annotation = Annotation(
        video_id=uuid4(),
        frame_number=3,
        seconds=0.3,
        vru_type=VruType.PEDESTRIAN,
        box=BoundingBox(1, 2, 3, 4),
    )
    annotation.validate(True)
    return annotation


def _annotation_session() -> VerityAggregate:
    session = AnnotationSession.start(uuid4(), uuid4(), "ann", 30)
    session.update(SessionChanges(current_frame=5))
    return session


def _annotation_import() -> VerityAggregate:
    started = AnnotationImport(video_id=uuid4(), format="coco", filename="a.json", total=4)
    started.progress(2)
    return started


def _test_session() -> VerityAggregate:
    session = TestSession(name="audit s", project_id=uuid4(), video_id=uuid4())
    session.start()
    return session


def _criteria() -> VerityAggregate:
    criteria = ProjectCriteria(project_id=uuid4())
    criteria.configure(CriteriaValues(min_recall=0.5))
    return criteria


def _evaluation() -> VerityAggregate:
    evaluation = Evaluation(
        session_id=uuid4(),
        project_id=None,
        video_id=None,
        config=EvaluationConfig(),
        ground_truth=GroundTruthPin(position=0, annotations=()),
        detections=DetectionsPin(count=0),
    )
    evaluation.fail("no ground truth")
    return evaluation


def _detector_model() -> VerityAggregate:
    model = DetectorModel(
        name="yolo",
        version="1",
        framework=Framework.ONNX,
        sha256="0" * 64,
        filename="m.onnx",
        original_name="m.onnx",
        size=100,
    )
    model.retire("replaced")
    return model


def _detection_run() -> VerityAggregate:
    run = DetectionRun(
        model_id=uuid4(),
        model_name="yolo",
        video_id=uuid4(),
        mode=RunMode.GROUND_TRUTH,
        parameters=RunParameters(),
        total_frames=30,
    )
    run.start("worker-1")
    return run


def _device_frame() -> VerityAggregate:
    return DeviceFrame(
        session_id=uuid4(),
        device_id="cam-1",
        seq=1,
        video_time=0.1,
        received_at=datetime.now(UTC),
        detections=(Detection(class_label="pedestrian", confidence=0.9),),
    )


def _frame_batch() -> VerityAggregate:
    frames = tuple(
        RecordedFrame(
            id=uuid4(),
            device_id="cam-1",
            seq=i,
            video_time=i / 10,
            detections=(Detection(class_label="cyclist", confidence=0.5),),
        )
        for i in range(3)
    )
    return FrameBatch(session_id=uuid4(), received_at=datetime.now(UTC), frames=frames)


SAMPLES: dict[type[Any], tuple[Builder, str | None]] = {
    Project: (_project, "name"),
    Video: (_video, "metadata.frameCount"),
    Annotation: (_annotation, "validated"),
    AnnotationSession: (_annotation_session, "currentFrame"),
    AnnotationImport: (_annotation_import, "imported"),
    TestSession: (_test_session, "status"),
    ProjectCriteria: (_criteria, "values.minRecall"),
    Evaluation: (_evaluation, "failure"),
    DetectorModel: (_detector_model, "status"),
    DetectionRun: (_detection_run, "status"),
    Device: (_device, "status"),
    Account: (_account, "role"),
    ApiToken: (_api_token, "revoked"),
    DeviceFrame: (_device_frame, None),
    FrameBatch: (_frame_batch, None),
}
