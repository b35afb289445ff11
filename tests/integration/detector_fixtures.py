"""A project, a generated video and a ready (fake) model in the event store: what the detector
worker tests start from."""

from __future__ import annotations

from uuid import UUID

from commands.application import Verity
from commands.detector_models import (
    RecordInspection,
    RegisterModel,
    record_inspection,
    register_model,
)
from commands.projects import CreateProject, create_project
from commands.videos import RegisterUpload, register_upload
from domain.detector_models import Framework, Inspection
from domain.projects import CameraView, SignalType
from domain.videos import VideoMetadata
from tests.e2e.helpers import write_video
from verity.settings import Settings


def video_and_ready_model(
    app: Verity, settings: Settings, stem: str, frames: int, *, seed: str = "0"
) -> tuple[UUID, UUID]:
    """(video id, model id): the video's file is written for the worker to decode; the model
    is recorded as inspected (class `person`), so runs need no weights."""
    project = CreateProject(
        name=stem,
        camera_model="c",
        camera_view=CameraView.FRONT_FACING_VRU,
        signal_type=SignalType.GPIO,
    )
    create_project(project, app)
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    write_video(settings.uploads_dir / f"{stem}.mp4", frames=frames)
    upload = RegisterUpload(
        project_id=project.id,
        filename=f"{stem}.mp4",
        original_name=f"{stem}.mp4",
        size=1,
        sha256=seed * 64,
        metadata=VideoMetadata(
            fps=10, frame_count=frames, duration=frames / 10, width=64, height=48
        ),
    )
    register_upload(upload, app)
    model = RegisterModel(
        name=f"fake-{stem}",
        version="1",
        framework=Framework.ONNX,
        sha256=chr(ord(seed) + 1) * 64,
        filename=f"fake-{stem}.onnx",
        original_name=f"fake-{stem}.onnx",
        size=1,
    )
    register_model(model, app)
    info = Inspection(framework="onnx", class_names=("person",), input_size=64, task="detect")
    record_inspection(RecordInspection(id=model.id, inspection=info), app)
    return upload.id, model.id
