"""Annotation imports: a long bulk import as a job whose progress is itself recorded as events.

Progress events are stored in the same transaction as the batch of annotations they count, so
the job's `imported` never disagrees with what is really stored.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.errors import Conflict
from domain.events import VerityAggregate


class ImportStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class AnnotationImport(VerityAggregate):
    class Started(VerityAggregate.Created):
        video_id: UUID
        format: str
        filename: str
        total: int
        rejected: int = 0

    class Progressed(VerityAggregate.Event):
        video_id: UUID
        imported: int
        total: int

    class Completed(VerityAggregate.Event):
        video_id: UUID
        imported: int
        total: int

    class Failed(VerityAggregate.Event):
        video_id: UUID
        reason: str
        imported: int

    @event(Started)
    def __init__(
        self,
        video_id: UUID,
        format: str,  # noqa: A002 - the contract's word for it
        filename: str,
        total: int,
        rejected: int = 0,
    ) -> None:
        self.video_id = video_id
        self.format = format
        self.filename = filename
        self.total = total
        self.rejected = rejected
        self.imported = 0
        self.status = ImportStatus.RUNNING

    def _ensure_running(self) -> None:
        if self.status is not ImportStatus.RUNNING:
            raise Conflict(f"Import {self.id} is already {self.status.value}")

    def progress(self, imported: int) -> None:
        self._ensure_running()
        self._progressed(video_id=self.video_id, imported=imported, total=self.total)

    @event(Progressed)
    def _progressed(self, video_id: UUID, imported: int, total: int) -> None:
        self.imported = imported

    def complete(self) -> None:
        self._ensure_running()
        self._completed(video_id=self.video_id, imported=self.imported, total=self.total)

    @event(Completed)
    def _completed(self, video_id: UUID, imported: int, total: int) -> None:
        self.status = ImportStatus.COMPLETED

    def fail(self, reason: str) -> None:
        self._ensure_running()
        self._failed(video_id=self.video_id, reason=reason, imported=self.imported)

    @event(Failed)
    def _failed(self, video_id: UUID, reason: str, imported: int) -> None:
        self.status = ImportStatus.FAILED
