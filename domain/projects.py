"""Projects: a camera set-up under test, owning the videos recorded with it."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from uuid import UUID

import msgspec
from eventsourcing.domain import event

from domain.errors import Conflict, NotFound
from domain.events import ANONYMOUS, VerityAggregate

CENTRAL_STORE_ID = UUID("00000000-0000-0000-0000-000000000000")


class CameraView(StrEnum):
    FRONT_FACING_VRU = "Front-facing VRU"
    REAR_FACING_VRU = "Rear-facing VRU"
    IN_CAB_DRIVER_BEHAVIOR = "In-Cab Driver Behavior"
    MULTI_ANGLE = "Multi-angle"


class SignalType(StrEnum):
    GPIO = "GPIO"
    NETWORK_PACKET = "Network Packet"
    SERIAL = "Serial"
    CAN_BUS = "CAN Bus"


class ProjectStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    TESTING = "testing"
    ANALYSIS = "analysis"
    COMPLETED = "completed"
    ARCHIVED = "archived"


class ProjectChanges(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The fields one update changed; an unset field was not touched."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    camera_model: str | msgspec.UnsetType = msgspec.UNSET
    camera_view: CameraView | msgspec.UnsetType = msgspec.UNSET
    lens_type: str | msgspec.UnsetType | None = msgspec.UNSET
    resolution: str | msgspec.UnsetType | None = msgspec.UNSET
    frame_rate: int | msgspec.UnsetType | None = msgspec.UNSET
    signal_type: SignalType | msgspec.UnsetType = msgspec.UNSET
    status: ProjectStatus | msgspec.UnsetType = msgspec.UNSET

    def as_dict(self) -> dict[str, object]:
        return {
            f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not msgspec.UNSET
        }


class ModelRef(msgspec.Struct, frozen=True, kw_only=True):
    """A detector model a project uses, named as it was when assigned (names never change)."""

    id: UUID
    name: str
    version: str = ""


class Project(VerityAggregate):
    class Created(VerityAggregate.Created):
        name: str
        camera_model: str
        camera_view: CameraView
        signal_type: SignalType
        description: str | None = None
        lens_type: str | None = None
        resolution: str | None = None
        frame_rate: int | None = None
        status: ProjectStatus = ProjectStatus.ACTIVE
        owner_id: str = ANONYMOUS

    class Updated(VerityAggregate.Event):
        changes: ProjectChanges

    class Deleted(VerityAggregate.Event):
        pass

    class ModelsAssigned(VerityAggregate.Event):
        """The project's detector models from now on, in order (the first is its default)."""

        models: tuple[ModelRef, ...]

    @event(Created)
    def __init__(
        self,
        name: str,
        camera_model: str,
        camera_view: CameraView,
        signal_type: SignalType,
        description: str | None = None,
        lens_type: str | None = None,
        resolution: str | None = None,
        frame_rate: int | None = None,
        status: ProjectStatus = ProjectStatus.ACTIVE,
        owner_id: str = ANONYMOUS,
    ) -> None:
        self.name = name
        self.camera_model = camera_model
        self.camera_view = camera_view
        self.signal_type = signal_type
        self.description = description
        self.lens_type = lens_type
        self.resolution = resolution
        self.frame_rate = frame_rate
        self.status = status
        self.owner_id = owner_id
        self.deleted = False
        self.models: tuple[ModelRef, ...] = ()

    @property
    def is_central_store(self) -> bool:
        return self.id == CENTRAL_STORE_ID

    def ensure_exists(self) -> None:
        if self.deleted:
            raise NotFound("Project", self.id, f"Project {self.id} was deleted")

    def update(self, requested: ProjectChanges) -> bool:
        """Record only the fields whose value really changes; returns whether anything did."""
        self.ensure_exists()
        if self.is_central_store:
            raise Conflict("The Central Video Store cannot be edited")
        changed = {k: v for k, v in requested.as_dict().items() if getattr(self, k) != v}
        if not changed:
            return False
        self._updated(changes=ProjectChanges(**changed))  # type: ignore[arg-type]
        return True

    @event(Updated)
    def _updated(self, changes: ProjectChanges) -> None:
        for field, value in changes.as_dict().items():
            setattr(self, field, value)

    def assign_models(self, models: Sequence[ModelRef]) -> bool:
        """Record the project's models when they differ from what it has; returns whether."""
        self.ensure_exists()
        if self.is_central_store:
            raise Conflict("The Central Video Store cannot be edited")
        wanted = tuple(dict.fromkeys(models))
        if wanted == self.models:
            return False
        self._models_assigned(models=wanted)
        return True

    @event(ModelsAssigned)
    def _models_assigned(self, models: tuple[ModelRef, ...]) -> None:
        self.models = models

    def delete(self, test_sessions: Sequence[UUID] = ()) -> None:
        """Refused while test sessions belong to the project: their detections and evaluations
        are evidence, so removing them from view is a decision for nobody's delete button."""
        self.ensure_exists()
        if self.is_central_store:
            raise Conflict("The Central Video Store cannot be deleted")
        if test_sessions:
            shown = ", ".join(str(s) for s in test_sessions[:5])
            more = f" and {len(test_sessions) - 5} more" if len(test_sessions) > 5 else ""
            raise Conflict(
                f"Project {self.id} has {len(test_sessions)} test session(s) ({shown}{more}):"
                " their detections and evaluations are kept as evidence, so the project cannot"
                ' be deleted; set its status to "archived" instead'
            )
        self._deleted()

    @event(Deleted)
    def _deleted(self) -> None:
        self.deleted = True


def central_store() -> Project:
    """The pseudo-project that owns every video not assigned to a real project."""
    project: Project = Project._create(
        Project.Created,
        id=CENTRAL_STORE_ID,
        name="Central Video Store",
        camera_model="Various",
        camera_view=CameraView.MULTI_ANGLE,
        signal_type=SignalType.NETWORK_PACKET,
        description="Videos not assigned to any project",
    )
    return project
