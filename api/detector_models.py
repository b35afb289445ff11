"""Detector models: upload and register weights, list them, retire them (contract M2)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath

from api.inputs import InputError, convert_input, decode_input
from api.model_uploads import receive_weights
from api.services import ReadModel, Services, caught_up, execute, services_of
from commands.detector_models import RegisterModel, RetireModel
from commands.detector_models import register_model as register_model_handler
from commands.detector_models import retire_model as retire_model_handler
from domain.detector_models import DEFAULT_CONFIDENCE, DEFAULT_NMS_IOU, framework_of
from domain.errors import Conflict, NotFound
from domain.limits import MAX_MODEL_CLASSES, Fraction, Identifier, Label, Name, Text
from domain.vru import VruType
from projections import detector_models as read

ModelOut = read.ModelRow
READ_MODEL: ReadModel = "detector_models_v1"
"""Its projection's name (tests/unit/test_read_models.py keeps the names equal)."""


class ModelForm(msgspec.Struct, kw_only=True):
    """The text fields beside `file` in the upload form (camelCase or snake_case)."""

    name: Name | None = None
    version: Identifier | None = None
    class_map: (
        Annotated[dict[Label, VruType], msgspec.Meta(max_length=MAX_MODEL_CLASSES)] | None
    ) = None
    confidence: Fraction = DEFAULT_CONFIDENCE
    nms_iou: Fraction = DEFAULT_NMS_IOU


class RetireIn(msgspec.Struct, kw_only=True):
    reason: Text = ""


class AvailableModels(msgspec.Struct, kw_only=True):
    """Contract M2: names of the models ready to run; `items` has each in full."""

    models: list[str]
    default: str | None
    recommended: str | None
    items: list[ModelOut]


def _form(fields: dict[str, str]) -> ModelForm:
    raw: dict[str, Any] = dict(fields)
    for key in ("classMap", "class_map"):
        if key in raw:
            try:
                raw[key] = msgspec.json.decode(raw[key])
            except msgspec.DecodeError:
                raise InputError(f"{key}: not a JSON object", key) from None
    for key in ("confidence", "nmsIou", "nms_iou"):
        if key in raw:
            try:
                raw[key] = float(raw[key])
            except ValueError:
                raise InputError(f"{key}: not a number", key) from None
    return convert_input(raw, ModelForm)


async def load_model_row(services: Services, model_id: UUID) -> ModelOut:
    async with services.read_pool.connection() as conn:
        row = await read.get_model(conn, model_id)
    if row is None:
        raise NotFound("Model", model_id, f"Model {model_id} not found")
    return row


async def resolve_model(services: Services, ref: str, field: str = "modelId") -> ModelOut:
    """A model named by its id, `name` or `name:version` (the ready one first); 404 naming it."""
    try:
        return await load_model_row(services, UUID(ref))
    except ValueError:
        pass
    async with services.read_pool.connection() as conn:
        rows = await read.find_models(conn, ref)
    if not rows:
        raise NotFound("Model", ref, f"{field}: no model is called {ref!r}")
    return rows[0]


class DetectorModelsController(Controller):
    path = "/api/detection/models"
    tags = ["detection"]

    @post(
        operation_id="uploadDetectorModel",
        summary="Register detector weights: multipart `file` (.onnx, ultralytics .yaml; .pt only"
        " with VERITY_ALLOW_PICKLE_WEIGHTS) and optional name, version, classMap (JSON),"
        " confidence, nmsIou. The model is inspected by a detector worker and becomes"
        " `ready` or `refused`.",
        status_code=200,
        request_max_body_size=None,
    )
    async def upload(self, state: State, request: Request[Any, Any, Any]) -> ModelOut:
        services = services_of(state)
        config = services.config
        got = await receive_weights(
            request, config.models_dir, config.max_model_bytes, config.allow_pickle_weights
        )
        form = _form(got.fields)
        name = form.name or _stem(got.original_name)
        version = form.version or got.sha256[:12]
        async with services.read_pool.connection() as conn:
            same = [
                r
                for r in await read.find_models(conn, f"{name}:{version}")
                if r.status != "retired"
            ]
        if same:
            raise Conflict(f"name: model {name} version {version} exists already ({same[0].id})")
        cmd = RegisterModel(
            name=name,
            version=version,
            framework=framework_of(got.extension),
            sha256=got.sha256,
            filename=got.path.name,
            original_name=got.original_name,
            size=got.size,
            class_map=form.class_map,
            confidence=form.confidence,
            nms_iou=form.nms_iou,
        )
        position = await execute(services, request, register_model_handler, cmd)
        if services.detector_queue is not None:
            await services.detector_queue.inspect(cmd.id)
        await caught_up(services, position, READ_MODEL)
        return await load_model_row(services, cmd.id)

    @get(operation_id="listDetectorModels", summary="Registered detector models")
    async def list_models(self, state: State) -> list[ModelOut]:
        async with services_of(state).read_pool.connection() as conn:
            return await read.list_models(conn)

    @get(
        "/available",
        operation_id="availableDetectorModels",
        summary="Models ready to run (M2): names, the default and the recommended one",
    )
    async def available(self, state: State) -> AvailableModels:
        async with services_of(state).read_pool.connection() as conn:
            rows = [r for r in await read.list_models(conn) if r.status == "ready"]
        names = list(dict.fromkeys(r.name for r in rows))
        default = names[0] if names else None
        return AvailableModels(models=names, default=default, recommended=default, items=rows)

    @get("/{model_id:uuid}", operation_id="getDetectorModel", summary="One detector model")
    async def get_model(self, state: State, model_id: FromPath[UUID]) -> ModelOut:
        return await load_model_row(services_of(state), model_id)

    @post(
        "/{model_id:uuid}/retire",
        operation_id="retireDetectorModel",
        summary="Retire a model: no new runs; past runs and sessions keep naming it",
        status_code=200,
    )
    async def retire(
        self,
        state: State,
        request: Request[Any, Any, Any],
        model_id: FromPath[UUID],
    ) -> ModelOut:
        services = services_of(state)
        raw = await request.body()
        body = decode_input(raw, RetireIn) if raw.strip() else RetireIn()
        cmd = RetireModel(id=model_id, reason=body.reason)
        position = await execute(services, request, retire_model_handler, cmd)
        await caught_up(services, position, READ_MODEL)
        return await load_model_row(services, model_id)


def _stem(original_name: str) -> str:
    stem = original_name.rsplit(".", 1)[0].strip()
    return stem[:200] or "model"
