"""Review of a detector's candidates: a person accepts or rejects many at once.

A candidate is a live, unvalidated annotation whose source is `detector`; it is not ground truth
(domain/ground_truth.py) until accepted. Accepting validates it (`Annotation.Validated`),
rejecting deletes it with `REJECTED` as the reason (`Annotation.Deleted`): one event per
annotation, each carrying the reviewer as its actor. A filter picks the candidates by
confidence, class and frame range; the same filter is checked again on each annotation as it is
changed, so one edited since the read model was read is left alone.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

import msgspec

from domain.annotations import Source
from domain.errors import InvalidValue

REJECTED = "rejected in review"
"""The reason recorded on a candidate's `Annotation.Deleted` when a reviewer rejects it."""
REVIEW_BATCH = 500
"""Annotations changed per transaction."""


class ReviewAction(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


class CandidateFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which of a video's candidates a review touches; an unset bound does not filter."""

    min_confidence: float | None = None
    max_confidence: float | None = None
    classes: tuple[str, ...] = ()
    """VRU classes; empty: every class."""
    frame_from: int | None = None
    frame_to: int | None = None
    """Inclusive."""

    def check(self) -> None:
        """Bounds in order; each value's own range is the edge's (domain/limits.py)."""
        low, high = self.min_confidence, self.max_confidence
        if low is not None and high is not None and low > high:
            raise InvalidValue(
                "maxConfidence", f"maxConfidence: {high} is below minConfidence {low}"
            )
        first, last = self.frame_from, self.frame_to
        if first is not None and last is not None and first > last:
            raise InvalidValue("frameTo", f"frameTo: {last} is before frameFrom {first}")


class Candidate(Protocol):
    """What the filter reads of an annotation (its state, or a read-model row)."""

    @property
    def source(self) -> str: ...
    @property
    def validated(self) -> bool: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def confidence(self) -> float | None: ...
    @property
    def vru_type(self) -> str: ...
    @property
    def frame_number(self) -> int: ...


def is_candidate(annotation: Candidate) -> bool:
    return (
        annotation.source == Source.DETECTOR and not annotation.validated and not annotation.deleted
    )


def selects(chosen: CandidateFilter, annotation: Candidate) -> bool:
    """Whether a review with this filter touches the annotation (a candidate it matches).

    A candidate without a confidence matches no confidence bound."""
    if not is_candidate(annotation):
        return False
    confidence = annotation.confidence
    if chosen.min_confidence is not None and (
        confidence is None or confidence < chosen.min_confidence
    ):
        return False
    if chosen.max_confidence is not None and (
        confidence is None or confidence > chosen.max_confidence
    ):
        return False
    if chosen.classes and annotation.vru_type not in chosen.classes:
        return False
    frame = annotation.frame_number
    if chosen.frame_from is not None and frame < chosen.frame_from:
        return False
    return chosen.frame_to is None or frame <= chosen.frame_to
