"""Write side of detector models: register, record the one inspection, retire, assign."""

from __future__ import annotations

from uuid import UUID, uuid4

import msgspec

from commands.application import Position, Verity
from domain.detector_models import (
    DEFAULT_CONFIDENCE,
    DEFAULT_NMS_IOU,
    DetectorModel,
    Framework,
    Inspection,
)
from domain.errors import NotFound, check_text
from domain.projects import ModelRef, Project
from domain.vru import VruType


class RegisterModel(msgspec.Struct, frozen=True, kw_only=True):
    """Record weights already written to the model store as `filename`."""

    name: str
    version: str
    framework: Framework
    sha256: str
    filename: str
    original_name: str
    size: int
    class_map: dict[str, VruType] | None = None
    confidence: float = DEFAULT_CONFIDENCE
    nms_iou: float = DEFAULT_NMS_IOU
    id: UUID = msgspec.field(default_factory=uuid4)


class RecordInspection(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    inspection: Inspection | None
    refusal: str | None = None


class RetireModel(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    reason: str = ""


class AssignModels(msgspec.Struct, frozen=True, kw_only=True):
    project_id: UUID
    model_ids: tuple[UUID, ...]


def load_model(app: Verity, model_id: UUID) -> DetectorModel:
    """The model, or NotFound naming its id."""
    try:
        return app.load(DetectorModel, model_id, "Model")
    except NotFound:
        raise NotFound("Model", model_id, f"Model {model_id} not found") from None


def register_model(cmd: RegisterModel, app: Verity) -> Position | None:
    for field in ("name", "version", "original_name"):
        check_text(field, getattr(cmd, field))
    model = DetectorModel._create(
        DetectorModel.Registered,
        id=cmd.id,
        name=cmd.name,
        version=cmd.version,
        framework=cmd.framework,
        sha256=cmd.sha256,
        filename=cmd.filename,
        original_name=cmd.original_name,
        size=cmd.size,
        class_map=cmd.class_map,
        confidence=cmd.confidence,
        nms_iou=cmd.nms_iou,
    )
    return app.commit(model)


def record_inspection(cmd: RecordInspection, app: Verity) -> Position | None:
    model = load_model(app, cmd.id)
    model.record_inspection(cmd.inspection, (cmd.refusal or "")[:2000] or None)
    return app.commit(model)


def retire_model(cmd: RetireModel, app: Verity) -> Position | None:
    check_text("reason", cmd.reason)
    model = load_model(app, cmd.id)
    model.retire(cmd.reason)
    return app.commit(model)


def assign_models(cmd: AssignModels, app: Verity) -> Position | None:
    """A project's models, each loaded so an unknown id is a 404 naming it."""
    project = app.load(Project, cmd.project_id)
    refs = []
    for model_id in cmd.model_ids:
        model = load_model(app, model_id)
        refs.append(ModelRef(id=model.id, name=model.name, version=model.model_version))
    project.assign_models(refs)
    return app.commit(project)
