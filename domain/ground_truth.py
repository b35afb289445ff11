"""The ground-truth rule: which annotations an evaluation scores a model against.

An annotation counts when it is not deleted and is either human-made (source `manual` or
`imported`) or a detector-sourced candidate that a person validated. A detector's unreviewed
candidate never counts: scoring a model against boxes a model proposed would grade it on itself.
"""

from __future__ import annotations

from typing import Protocol

from domain.annotations import Source

HUMAN_SOURCES = frozenset({Source.MANUAL, Source.IMPORTED})


class Reviewable(Protocol):
    """What the rule reads of an annotation (a domain state, a read-model row, a test fake)."""

    @property
    def source(self) -> str: ...
    @property
    def validated(self) -> bool: ...
    @property
    def deleted(self) -> bool: ...


def counts_as_ground_truth(annotation: Reviewable) -> bool:
    source = annotation.source
    if annotation.deleted:
        return False
    return source in HUMAN_SOURCES or (source == Source.DETECTOR and annotation.validated)
