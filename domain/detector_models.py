"""Detector models: weights registered once, loaded once outside the API, then ready or refused.

A model is known by the sha256 of its weights (the file lives in a content-addressed store), a
name and a version. It is inspected once, at registration, by a process that may load it (a
`.pt` is a pickle: loading runs code), and becomes `ready` with what the loader read (class
names, input size, task) or `refused` with the loader's reason, so a broken model is never
found out at its first run. The class map says which of its classes are which VRU class.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import msgspec
from eventsourcing.domain import event

from domain.errors import Conflict, InvalidValue
from domain.events import VerityAggregate
from domain.vru import VruType, default_class_map

DEFAULT_CONFIDENCE = 0.25
DEFAULT_NMS_IOU = 0.45
WEIGHT_EXTENSIONS = (".pt", ".onnx", ".yaml", ".yml")
PICKLE_EXTENSIONS = (".pt",)
"""Weights whose loading unpickles, i.e. runs whatever code the file holds."""


class Framework(StrEnum):
    ULTRALYTICS_PT = "ultralytics-pt"
    ULTRALYTICS_YAML = "ultralytics-yaml"
    ONNX = "onnx"


def framework_of(extension: str) -> Framework:
    """The framework a weights file's extension says; InvalidValue naming `file` otherwise."""
    ext = extension.lower()
    if ext == ".pt":
        return Framework.ULTRALYTICS_PT
    if ext in (".yaml", ".yml"):
        return Framework.ULTRALYTICS_YAML
    if ext == ".onnx":
        return Framework.ONNX
    allowed = ", ".join(WEIGHT_EXTENSIONS)
    raise InvalidValue("file", f"file: {extension!r} is not a model format; allowed: {allowed}")


class ModelStatus(StrEnum):
    INSPECTING = "inspecting"
    READY = "ready"
    REFUSED = "refused"
    RETIRED = "retired"


class Inspection(msgspec.Struct, frozen=True, kw_only=True):
    """What loading the weights once told."""

    framework: str
    class_names: tuple[str, ...]
    input_size: int
    task: str


class DetectorModel(VerityAggregate):
    class Registered(VerityAggregate.Created):
        name: str
        version: str
        framework: Framework
        sha256: str
        filename: str
        """The weights' name in the model store (`<sha256><ext>`)."""
        original_name: str
        size: int
        class_map: dict[str, VruType] | None = None
        """Model class -> VRU class as registered; None: the default (COCO names)."""
        confidence: float = DEFAULT_CONFIDENCE
        nms_iou: float = DEFAULT_NMS_IOU

    class BecameReady(VerityAggregate.Event):
        inspection: Inspection
        class_map: dict[str, VruType]
        """The map in force: the registered (or default) one, on the classes the model has."""

    class Refused(VerityAggregate.Event):
        reason: str

    class Retired(VerityAggregate.Event):
        reason: str = ""

    @event(Registered)
    def __init__(
        self,
        name: str,
        version: str,
        framework: Framework,
        sha256: str,
        filename: str,
        original_name: str,
        size: int,
        class_map: dict[str, VruType] | None = None,
        confidence: float = DEFAULT_CONFIDENCE,
        nms_iou: float = DEFAULT_NMS_IOU,
    ) -> None:
        self.name = name
        self.model_version = version
        self.framework = framework
        self.sha256 = sha256
        self.filename = filename
        self.original_name = original_name
        self.size = size
        self.registered_map = class_map
        self.class_map: dict[str, VruType] = {}
        self.confidence = confidence
        self.nms_iou = nms_iou
        self.status = ModelStatus.INSPECTING
        self.inspection: Inspection | None = None
        self.reason = ""

    def record_inspection(self, inspection: Inspection | None, refusal: str | None) -> None:
        """Ready with what the loader read, or refused with its reason (or with no VRU class)."""
        if self.status != ModelStatus.INSPECTING:
            raise Conflict(f"Model {self.id} is {self.status.value}; it was inspected already")
        if inspection is None:
            self._refused(reason=refusal or "the weights could not be loaded")
            return
        in_force = effective_class_map(inspection.class_names, self.registered_map)
        if not in_force:
            shown = ", ".join(inspection.class_names[:10])
            self._refused(
                reason=f"none of the model's classes ({shown}) maps to a VRU class;"
                " register it with a class map"
            )
            return
        self._became_ready(inspection=inspection, class_map=in_force)

    @event(BecameReady)
    def _became_ready(self, inspection: Inspection, class_map: dict[str, VruType]) -> None:
        self.inspection = inspection
        self.class_map = dict(class_map)
        self.status = ModelStatus.READY

    @event(Refused)
    def _refused(self, reason: str) -> None:
        self.reason = reason
        self.status = ModelStatus.REFUSED

    def retire(self, reason: str = "") -> None:
        if self.status == ModelStatus.RETIRED:
            raise Conflict(f"Model {self.id} is retired already")
        self._retired(reason=reason)

    @event(Retired)
    def _retired(self, reason: str) -> None:
        self.status = ModelStatus.RETIRED

    def ensure_ready(self) -> None:
        if self.status != ModelStatus.READY:
            why = f": {self.reason}" if self.reason else ""
            raise Conflict(f"Model {self.name} ({self.id}) is {self.status.value}{why}")


def effective_class_map(
    class_names: tuple[str, ...], registered: Mapping[str, VruType] | None
) -> dict[str, VruType]:
    if registered is None:
        return default_class_map(class_names)
    return {n: registered[n] for n in class_names if n in registered}
