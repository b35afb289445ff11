"""Write side of candidate review: accept or reject a video's detector candidates in bulk."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

import msgspec

from commands.annotations import frames_of
from commands.application import Position, Verity
from domain.annotations import Annotation
from domain.candidate_review import (
    REJECTED,
    REVIEW_BATCH,
    CandidateFilter,
    ReviewAction,
    selects,
)
from domain.errors import ConcurrentModification

_TRIES = 3
"""Attempts at one batch when a reviewed annotation changes meanwhile."""


class ReviewCandidates(msgspec.Struct, frozen=True, kw_only=True):
    """`ids` are the candidates the read model matched; each is checked again as it changes."""

    video_id: UUID
    action: ReviewAction
    filter: CandidateFilter
    ids: tuple[UUID, ...]


class ReviewResult(msgspec.Struct, frozen=True, kw_only=True):
    accepted: int
    rejected: int
    skipped: int
    """Matched in the read model but no longer a candidate the filter selects."""
    position: Position | None


def review_candidates(
    cmd: ReviewCandidates, app: Verity, progress: Callable[[int], None] | None = None
) -> ReviewResult:
    """One event per reviewed annotation, `REVIEW_BATCH` annotations per transaction."""
    cmd.filter.check()
    frames_of(app, cmd.video_id)  # NotFound for a missing or deleted video
    changed = skipped = done = 0
    position: Position | None = None
    for start in range(0, len(cmd.ids), REVIEW_BATCH):
        batch = cmd.ids[start : start + REVIEW_BATCH]
        count, at = _review_batch(app, cmd, batch)
        changed += count
        skipped += len(batch) - count
        position = at or position
        done += len(batch)
        if progress is not None:
            progress(done)
    accepted = changed if cmd.action is ReviewAction.ACCEPT else 0
    return ReviewResult(
        accepted=accepted, rejected=changed - accepted, skipped=skipped, position=position
    )


def _review_batch(
    app: Verity, cmd: ReviewCandidates, ids: Sequence[UUID]
) -> tuple[int, Position | None]:
    for attempt in range(_TRIES):
        touched: list[Annotation] = []
        for ident in ids:
            annotation = app.load(Annotation, ident)
            if annotation.video_id != cmd.video_id or not selects(cmd.filter, annotation.state()):
                continue
            if cmd.action is ReviewAction.ACCEPT:
                annotation.validate(True)
            else:
                annotation.delete(REJECTED)
            touched.append(annotation)
        try:
            return len(touched), app.commit(*touched) if touched else None
        except ConcurrentModification:
            if attempt + 1 == _TRIES:
                raise
    raise AssertionError  # unreachable: the last attempt returns or raises
