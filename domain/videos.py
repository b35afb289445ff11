"""Videos: an uploaded recording, its file facts and which project owns it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.domain import event

from domain.errors import Conflict, NotFound
from domain.events import VerityAggregate
from domain.projects import CENTRAL_STORE_ID
from domain.renditions import Rendition
from domain.video_quality import QualityAssessment

ALLOWED_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
MAX_REASON = 2000
"""Longest processing failure reason kept in an event."""


class Processing(StrEnum):
    """Where a video is in the frontend's lifecycle (its `processingStatus`)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def video_status(self) -> str:
        """The video's `status`: `uploaded` until processing starts, then the same."""
        return "uploaded" if self is Processing.PENDING else self.value


class VideoMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """What OpenCV read from the file when it was uploaded."""

    fps: float
    frame_count: int
    duration: float
    width: int
    height: int
    codec: str = ""

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"


class Video(VerityAggregate):
    class Uploaded(VerityAggregate.Created):
        """Version 2 names the file size's unit: `size` became `size_bytes`."""

        class_version = 2
        project_id: UUID
        filename: str
        original_name: str
        size_bytes: int
        sha256: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["size_bytes"] = state.pop("size")

    class MetadataExtracted(VerityAggregate.Event):
        metadata: VideoMetadata

    class Linked(VerityAggregate.Event):
        project_id: UUID
        previous_project_id: UUID

    class Unlinked(VerityAggregate.Event):
        project_id: UUID

    class Deleted(VerityAggregate.Event):
        reason: str = ""

    class ProcessingStarted(VerityAggregate.Event):
        """A video worker took the video on (quality assessment)."""

        samples: int = 0
        """Frames it means to sample."""

    class QualityAssessed(VerityAggregate.Event):
        assessment: QualityAssessment = QualityAssessment()

    class ProcessingFailed(VerityAggregate.Event):
        reason: str = ""
        stage: str = "quality"

    class RenditionRecorded(VerityAggregate.Event):
        """A browser-playable copy was written beside the original (domain/renditions.py)."""

        filename: str = ""
        codec: str = ""
        size: int = 0
        duration: float = 0.0
        frame_count: int = 0
        width: int = 0
        height: int = 0
        seconds: float = 0.0

    class RenditionFailed(VerityAggregate.Event):
        """No rendition could (or may) be made; the original is still served."""

        reason: str = ""

    @event(Uploaded)
    def __init__(
        self, project_id: UUID, filename: str, original_name: str, size_bytes: int, sha256: str
    ) -> None:
        self.project_id = project_id
        self.filename = filename
        self.original_name = original_name
        self.size_bytes = size_bytes
        self.sha256 = sha256
        self.metadata: VideoMetadata | None = None
        self.deleted = False
        self.processing = Processing.PENDING
        self.rendition: str | None = None
        """`ready` or `failed` once settled; None while none was made (or none is needed)."""

    def ensure_exists(self) -> None:
        if self.deleted:
            raise NotFound("Video", self.id, f"Video {self.id} was deleted")

    def record_metadata(self, metadata: VideoMetadata) -> None:
        self.ensure_exists()
        self._metadata_extracted(metadata=metadata)

    @event(MetadataExtracted)
    def _metadata_extracted(self, metadata: VideoMetadata) -> None:
        self.metadata = metadata

    @property
    def in_central_store(self) -> bool:
        return self.project_id == CENTRAL_STORE_ID

    def link_to(self, project_id: UUID) -> bool:
        """Move from the central store into a project; returns False if already there."""
        self.ensure_exists()
        if self.project_id == project_id:
            return False
        if not self.in_central_store:
            raise Conflict(f"Video {self.id} belongs to project {self.project_id}; unlink it first")
        self._linked(project_id=project_id, previous_project_id=self.project_id)
        return True

    @event(Linked)
    def _linked(self, project_id: UUID, previous_project_id: UUID) -> None:
        self.project_id = project_id

    def unlink_from(self, project_id: UUID) -> None:
        """Return the video to the central store."""
        self.ensure_exists()
        if self.project_id != project_id or self.in_central_store:
            raise NotFound(
                "Video", self.id, f"Video {self.id} is not linked to project {project_id}"
            )
        self._unlinked(project_id=project_id)

    @event(Unlinked)
    def _unlinked(self, project_id: UUID) -> None:
        self.project_id = CENTRAL_STORE_ID

    def delete(self, reason: str = "") -> None:
        self.ensure_exists()
        self._deleted(reason=reason)

    @event(Deleted)
    def _deleted(self, reason: str) -> None:
        self.deleted = True

    @property
    def processed(self) -> bool:
        """Processing is over, one way or the other: a redelivered upload changes nothing."""
        return self.processing in (Processing.COMPLETED, Processing.FAILED)

    def start_processing(self, samples: int = 0) -> bool:
        """Mark the video as being processed; False when it already is, or is done."""
        self.ensure_exists()
        if self.processing is not Processing.PENDING:
            return False
        self._processing_started(samples=samples)
        return True

    @event(ProcessingStarted)
    def _processing_started(self, samples: int) -> None:
        self.processing = Processing.PROCESSING

    def record_quality(self, assessment: QualityAssessment) -> bool:
        """Record the assessment once; False when processing already ended."""
        self.ensure_exists()
        if self.processed:
            return False
        self._quality_assessed(assessment=assessment)
        return True

    @event(QualityAssessed)
    def _quality_assessed(self, assessment: QualityAssessment) -> None:
        self.processing = Processing.COMPLETED

    def fail_processing(self, reason: str, stage: str = "quality") -> bool:
        """Record why processing failed, once; False when it already ended."""
        self.ensure_exists()
        if self.processed:
            return False
        self._processing_failed(reason=reason[:MAX_REASON] or "unknown error", stage=stage)
        return True

    @event(ProcessingFailed)
    def _processing_failed(self, reason: str, stage: str) -> None:
        self.processing = Processing.FAILED

    def record_rendition(self, rendition: Rendition) -> bool:
        """Record the rendition once; False when one was already recorded (or refused)."""
        self.ensure_exists()
        if self.rendition is not None:
            return False
        self._rendition_recorded(**msgspec.structs.asdict(rendition))
        return True

    @event(RenditionRecorded)
    def _rendition_recorded(
        self,
        filename: str,
        codec: str,
        size: int,
        duration: float,
        frame_count: int,
        width: int,
        height: int,
        seconds: float,
    ) -> None:
        self.rendition = "ready"

    def fail_rendition(self, reason: str) -> bool:
        """Record why there is no rendition, once; False when the outcome is already known."""
        self.ensure_exists()
        if self.rendition is not None:
            return False
        self._rendition_failed(reason=reason[:MAX_REASON] or "unknown error")
        return True

    @event(RenditionFailed)
    def _rendition_failed(self, reason: str) -> None:
        self.rendition = "failed"
