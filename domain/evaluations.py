"""An evaluation of one test session: what it was scored against, and what came out.

An evaluation pins its inputs so it can be reproduced: the exact annotation versions used as
ground truth (with the global position at the time) and how many of the session's detections
it saw. Its results are recorded in the same transaction as the request. The per-object
outcomes (which detection matched which ground truth) can be large, so they travel in chunks.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
from eventsourcing.domain import event

from domain.evaluation import Criteria, EvaluationConfig, EvaluationReport, Verdict
from domain.events import VerityAggregate

OUTCOMES_PER_EVENT = 1000
"""Comparison rows per event: keeps each stored (and relayed) event well under 1 MB."""


def completion_evaluation_id(session_id: UUID) -> UUID:
    """The one evaluation a session gets when it completes (so two workers cannot both add it)."""
    return uuid5(NAMESPACE_URL, f"verity:evaluation:completed:{session_id}")


class Trigger(StrEnum):
    COMPLETED = "completed"
    """The session finished; evaluated against the latest ground truth."""
    PINNED = "rerun_pinned"
    """Re-run of an earlier evaluation against exactly the ground truth it used."""
    LATEST = "rerun_latest"
    """Re-run of an earlier evaluation against the ground truth as it is now."""
    REQUESTED = "requested"


class PinnedAnnotation(msgspec.Struct, frozen=True, array_like=True):
    """One annotation version that was part of the ground truth."""

    id: UUID
    version: int


class GroundTruthPin(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    """Global event-store position the ground truth was read at."""
    annotations: tuple[PinnedAnnotation, ...]


class DetectionsPin(msgspec.Struct, frozen=True, kw_only=True):
    """The first `count` detections of the session in arrival order (detections never change)."""

    count: int
    last_received_at: datetime | None = None


class Status(StrEnum):
    TP = "TP"
    FP = "FP"
    FN = "FN"
    BELOW_THRESHOLD = "BELOW_THRESHOLD"
    """A detection under the confidence threshold: not scored at the operating point."""


class Comparison(msgspec.Struct, frozen=True, array_like=True):
    """One row of the comparison: a matched pair (TP), or a lone detection (FP) or object (FN).

    `frame` is the ground truth's frame for TP and FN, the detection's for FP. `gt_ref` names the
    annotation (``<id>`` for a keyframe, ``<id>@<frame>`` for a box interpolated from it).
    """

    status: Status
    frame: int
    time_s: float | None
    gt_ref: str | None
    gt_label: str | None
    det_ref: str | None
    det_label: str | None
    confidence: float | None
    iou: float | None
    offset_ms: float | None


class Evaluation(VerityAggregate):
    class Requested(VerityAggregate.Created):
        session_id: UUID
        project_id: UUID | None
        video_id: UUID | None
        config: EvaluationConfig
        ground_truth: GroundTruthPin
        detections: DetectionsPin
        trigger: Trigger = Trigger.REQUESTED
        based_on: UUID | None = None

    class Recorded(VerityAggregate.Event):
        """The figures. `report.frame_counts` is left empty: the outcomes carry that detail."""

        report: EvaluationReport
        verdict: Verdict | None
        criteria: Criteria | None = None
        outcome_events: int = 0

    class OutcomesRecorded(VerityAggregate.Event):
        chunk: int
        rows: tuple[Comparison, ...]

    class Failed(VerityAggregate.Event):
        """The evaluation could not run (e.g. no ground truth); `reason` says what is missing."""

        reason: str

    @event(Requested)
    def __init__(
        self,
        session_id: UUID,
        project_id: UUID | None,
        video_id: UUID | None,
        config: EvaluationConfig,
        ground_truth: GroundTruthPin,
        detections: DetectionsPin,
        trigger: Trigger = Trigger.REQUESTED,
        based_on: UUID | None = None,
    ) -> None:
        self.session_id = session_id
        self.project_id = project_id
        self.video_id = video_id
        self.config = config
        self.ground_truth = ground_truth
        self.detections = detections
        self.trigger = trigger
        self.based_on = based_on
        self.report: EvaluationReport | None = None
        self.verdict: Verdict | None = None
        self.failure: str | None = None

    def record(
        self,
        report: EvaluationReport,
        verdict: Verdict | None,
        rows: list[Comparison],
        criteria: Criteria | None = None,
    ) -> None:
        chunks = [
            tuple(rows[i : i + OUTCOMES_PER_EVENT]) for i in range(0, len(rows), OUTCOMES_PER_EVENT)
        ]
        for i, chunk in enumerate(chunks):
            self._outcomes(chunk=i, rows=chunk)
        self._recorded(
            report=report,
            verdict=verdict,
            criteria=criteria,
            outcome_events=len(chunks),
        )

    @event(OutcomesRecorded)
    def _outcomes(self, chunk: int, rows: tuple[Comparison, ...]) -> None:
        pass

    @event(Recorded)
    def _recorded(
        self,
        report: EvaluationReport,
        verdict: Verdict | None,
        criteria: Criteria | None,
        outcome_events: int,
    ) -> None:
        self.report = report
        self.verdict = verdict

    def fail(self, reason: str) -> None:
        self._failed(reason=reason)

    @event(Failed)
    def _failed(self, reason: str) -> None:
        self.failure = reason
