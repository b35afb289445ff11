"""Pass/fail criteria of a project: the bar a detector must clear (contract M3).

Kept in their own small aggregate, one per project with an id derived from the project's, so
configuring criteria never contends with edits to the project itself.
"""

from __future__ import annotations

import math
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
from eventsourcing.domain import event

from domain.errors import InvalidValue
from domain.evaluation import Criteria
from domain.events import VerityAggregate


class CriteriaValues(msgspec.Struct, frozen=True, kw_only=True):
    """The thresholds as the client gave them; None means "not required"."""

    min_precision: float | None = None
    min_recall: float | None = None
    min_f1_score: float | None = None
    max_latency_ms: float | None = None
    """The bound on the 95th percentile of detection latency (ms)."""

    def as_criteria(self) -> Criteria:
        return Criteria(
            min_precision=self.min_precision,
            min_recall=self.min_recall,
            min_f1=self.min_f1_score,
            max_latency_p95_ms=self.max_latency_ms,
        )


def check_values(values: CriteriaValues) -> None:
    """Fractions in [0, 1]; latency strictly positive. InvalidValue names the field."""
    for field in ("min_precision", "min_recall", "min_f1_score"):
        value = getattr(values, field)
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InvalidValue(field, f"{field}: must be a fraction between 0 and 1, got {value}")
    latency = values.max_latency_ms
    if latency is not None and not (math.isfinite(latency) and latency > 0):
        raise InvalidValue(
            "max_latency_ms", f"max_latency_ms: must be a positive number of ms, got {latency}"
        )


def criteria_id(project_id: UUID) -> UUID:
    """The one criteria aggregate of a project."""
    return uuid5(NAMESPACE_URL, f"verity:criteria:{project_id}")


class ProjectCriteria(VerityAggregate):
    class Created(VerityAggregate.Created):
        project_id: UUID

    class Configured(VerityAggregate.Event):
        values: CriteriaValues

    @event(Created)
    def __init__(self, project_id: UUID) -> None:
        self.project_id = project_id
        self.values = CriteriaValues()

    def configure(self, values: CriteriaValues) -> bool:
        """Record new thresholds; returns whether anything changed."""
        check_values(values)
        if values == self.values:
            return False
        self._configured(values=values)
        return True

    @event(Configured)
    def _configured(self, values: CriteriaValues) -> None:
        self.values = values


def new_criteria(project_id: UUID) -> ProjectCriteria:
    criteria: ProjectCriteria = ProjectCriteria._create(
        ProjectCriteria.Created, id=criteria_id(project_id), project_id=project_id
    )
    return criteria
