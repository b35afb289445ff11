"""Write side of annotations: create, edit, validate, delete, restore, revert, bulk create."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID, uuid4

import msgspec

from commands.application import Position, Verity
from domain.annotation_imports import AnnotationImport
from domain.annotations import (
    Annotation,
    AnnotationChanges,
    AnnotationDraft,
    AnnotationState,
    check_draft,
)
from domain.errors import ConcurrentModification, InvalidValue
from domain.videos import Video

BULK_BATCH = 2000
"""Annotations stored per transaction by bulk creation."""


class CreateAnnotation(msgspec.Struct, frozen=True, kw_only=True):
    video_id: UUID
    draft: AnnotationDraft
    id: UUID = msgspec.field(default_factory=uuid4)


class UpdateAnnotation(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    changes: AnnotationChanges
    validated: bool | None = None
    expected_version: int | None = None


class ValidateAnnotation(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    validated: bool
    expected_version: int | None = None


class DeleteAnnotation(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    expected_version: int | None = None


class RestoreAnnotation(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    expected_version: int | None = None


class RevertAnnotation(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    expected_version: int | None = None


class CreateAnnotations(msgspec.Struct, frozen=True, kw_only=True):
    """Many annotations of one video, stored in batches; optionally counted by an import job."""

    video_id: UUID
    drafts: tuple[AnnotationDraft, ...]
    job_id: UUID | None = None
    batch_size: int = BULK_BATCH


class StartImport(msgspec.Struct, frozen=True, kw_only=True):
    video_id: UUID
    format: str
    filename: str
    total: int
    rejected: int = 0
    id: UUID = msgspec.field(default_factory=uuid4)


class FailImport(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    reason: str


def frames_of(app: Verity, video_id: UUID) -> tuple[tuple[int, int] | None, int | None]:
    """The live video's resolution and frame count, each when known; NotFound for a missing or
    deleted video."""
    video = app.load(Video, video_id)
    video.ensure_exists()
    m = video.metadata
    if m is None:
        return None, None
    size = (m.width, m.height) if m.width > 0 and m.height > 0 else None
    return size, m.frame_count if m.frame_count > 0 else None


def _load_expecting(app: Verity, ident: UUID, expected: int | None) -> Annotation:
    annotation = app.load(Annotation, ident)
    if expected is not None and annotation.version != expected:
        raise ConcurrentModification("Annotation", ident, annotation.version)
    return annotation


def _commit(app: Verity, annotation: Annotation) -> Position | None:
    """Commit; a lost race names the version that won."""
    try:
        return app.commit(annotation)
    except ConcurrentModification:
        current = app.load(Annotation, annotation.id).version
        raise ConcurrentModification("Annotation", annotation.id, current) from None


def create_annotation(cmd: CreateAnnotation, app: Verity) -> Position | None:
    check_draft(cmd.draft, *frames_of(app, cmd.video_id))
    return app.commit(Annotation.create(cmd.video_id, cmd.draft, cmd.id))


def update_annotation(cmd: UpdateAnnotation, app: Verity) -> Position | None:
    annotation = _load_expecting(app, cmd.id, cmd.expected_version)
    annotation.ensure_exists()
    touches_frame = not isinstance(cmd.changes.box, msgspec.UnsetType) or not isinstance(
        cmd.changes.frame_number, msgspec.UnsetType
    )
    frame_size, frame_count = frames_of(app, annotation.video_id) if touches_frame else (None, None)
    annotation.update(cmd.changes, frame_size, frame_count)
    if cmd.validated is not None:
        annotation.validate(cmd.validated)
    return _commit(app, annotation)


def validate_annotation(cmd: ValidateAnnotation, app: Verity) -> Position | None:
    annotation = _load_expecting(app, cmd.id, cmd.expected_version)
    annotation.validate(cmd.validated)
    return _commit(app, annotation)


def delete_annotation(cmd: DeleteAnnotation, app: Verity) -> Position | None:
    annotation = _load_expecting(app, cmd.id, cmd.expected_version)
    annotation.delete()
    return _commit(app, annotation)


def restore_annotation(cmd: RestoreAnnotation, app: Verity) -> Position | None:
    annotation = _load_expecting(app, cmd.id, cmd.expected_version)
    annotation.restore()
    return _commit(app, annotation)


def state_at(app: Verity, ident: UUID, version: int) -> AnnotationState:
    """The annotation as it was at `version` (1 = as created)."""
    current = app.load(Annotation, ident)
    if not 1 <= version <= current.version:
        raise InvalidValue(
            "version", f"version: must be between 1 and {current.version}, got {version}"
        )
    past: Annotation = app.repository.get(ident, version=version)
    return past.state()


def revert_annotation(cmd: RevertAnnotation, app: Verity) -> Position | None:
    annotation = _load_expecting(app, cmd.id, cmd.expected_version)
    annotation.revert_to(state_at(app, cmd.id, cmd.version))
    return _commit(app, annotation)


def start_import(cmd: StartImport, app: Verity) -> Position | None:
    frames_of(app, cmd.video_id)
    job: AnnotationImport = AnnotationImport._create(
        AnnotationImport.Started,
        id=cmd.id,
        video_id=cmd.video_id,
        format=cmd.format,
        filename=cmd.filename,
        total=cmd.total,
        rejected=cmd.rejected,
    )
    return app.commit(job)


def fail_import(cmd: FailImport, app: Verity) -> Position | None:
    job = app.load(AnnotationImport, cmd.id, "Import")
    job.fail(cmd.reason[:2000])
    return app.commit(job)


def create_annotations(
    cmd: CreateAnnotations,
    app: Verity,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[UUID], Position | None]:
    """Store checked drafts in batches (one transaction each); the ids and the last position.

    With a job, each batch's transaction also records the job's progress, and the last one
    completes it.
    """
    frame_size, frame_count = frames_of(app, cmd.video_id)
    for draft in cmd.drafts:
        check_draft(draft, frame_size, frame_count)
    job = app.load(AnnotationImport, cmd.job_id, "Import") if cmd.job_id else None
    ids: list[UUID] = []
    position: Position | None = None
    batches = _batches(cmd.drafts, max(cmd.batch_size, 1)) or [()]
    for i, batch in enumerate(batches):
        created = [Annotation.create(cmd.video_id, d) for d in batch]
        ids.extend(a.id for a in created)
        if job is not None:
            job.progress(len(ids))
            if i + 1 == len(batches):
                job.complete()
        position = app.commit(*created, *([job] if job is not None else [])) or position
        if progress is not None:
            progress(len(ids))
    return ids, position


def _batches(drafts: Sequence[AnnotationDraft], size: int) -> list[Sequence[AnnotationDraft]]:
    return [drafts[i : i + size] for i in range(0, len(drafts), size)]
