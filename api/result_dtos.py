"""Typed responses of the results endpoints, so the OpenAPI document describes each of them.

Stored Structs (the evaluation report, a verdict, criteria) are shown through their camelCase
views (domain/casing.py), which keep the persisted schema as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from commands.evaluations import Change, GroundTruthChanges, Headline
from domain.casing import camel_view, with_snake_twins
from domain.evaluation import (
    ClassMetrics,
    ConfidenceCurve,
    ConfusionMatrix,
    DistributionSummary,
    EvaluationConfig,
    Interval,
    TrackingMetrics,
)
from domain.evaluation.verdict import Criteria, Verdict

if TYPE_CHECKING:  # the views are subclasses; to a type checker they are their originals
    ChangeOut = Change
    ClassMetricsOut = ClassMetrics
    ConfigOut = EvaluationConfig
    ConfusionOut = ConfusionMatrix
    CriteriaUsedOut = Criteria
    CurveOut = ConfidenceCurve
    DistributionOut = DistributionSummary
    GroundTruthChangesOut = GroundTruthChanges
    HeadlineOut = Headline
    IntervalOut = Interval
    TrackingOut = TrackingMetrics
    VerdictOut = Verdict
else:
    ChangeOut = camel_view(Change)
    ClassMetricsOut = camel_view(ClassMetrics)
    ConfigOut = camel_view(EvaluationConfig)
    ConfusionOut = camel_view(ConfusionMatrix)
    CriteriaUsedOut = camel_view(Criteria)
    CurveOut = camel_view(ConfidenceCurve)
    DistributionOut = camel_view(DistributionSummary)
    GroundTruthChangesOut = camel_view(GroundTruthChanges)
    HeadlineOut = camel_view(Headline)
    IntervalOut = camel_view(Interval)
    TrackingOut = camel_view(TrackingMetrics)
    VerdictOut = camel_view(Verdict)


@with_snake_twins
class PendingOut(msgspec.Struct, kw_only=True, rename="camel"):
    """202: the results will exist, but not yet."""

    detail: str
    status: str
    session_id: str


@with_snake_twins
class ResultsOut(msgspec.Struct, kw_only=True, rename="camel"):
    """T4: percentages 0-100, camelCase and snake_case keys (contract decision 3)."""

    test_session_id: str
    session_id: str
    accuracy: float
    precision: float
    recall: float
    f1_score: float
    total_detections: int
    true_positives: int
    false_positives: int
    false_negatives: int
    status: str
    verdict: str | None
    evaluation_id: str
    evaluated_at: str | None


class HeadlineFractions(msgspec.Struct, kw_only=True, rename="camel"):
    ap: float | None
    ap50: float | None
    ap75: float | None
    ar100: float | None
    precision: float | None
    recall: float | None
    f1_score: float | None
    accuracy: float | None
    true_positives: int
    false_positives: int
    false_negatives: int
    total_detections: int
    total_ground_truth: int


class IntervalsOut(msgspec.Struct, kw_only=True, rename="camel"):
    precision: IntervalOut
    recall: IntervalOut
    f1_score: IntervalOut
    ap: IntervalOut
    ap50: IntervalOut


class PinOut(msgspec.Struct, kw_only=True):
    position: int
    """The global event position the ground truth was read at."""
    annotations: int


class CountOut(msgspec.Struct, kw_only=True):
    count: int


class DetailedOut(msgspec.Struct, kw_only=True, rename="camel"):
    """Every figure of one evaluation; fractions 0-1."""

    session_id: str
    session_status: str
    evaluation_id: str
    evaluated_at: str | None
    trigger: str
    based_on: str | None
    scale: str
    metrics: HeadlineFractions
    intervals: IntervalsOut
    latency: DistributionOut
    temporal_offset: DistributionOut
    tracking: TrackingOut | None
    per_class: tuple[ClassMetricsOut, ...]
    confusion: ConfusionOut
    curve: CurveOut
    verdict: VerdictOut | None
    criteria: CriteriaUsedOut | None
    parameters: ConfigOut
    ground_truth: PinOut
    detections: CountOut


class Labelled(msgspec.Struct, kw_only=True):
    ref: str
    label: str | None


class DetectionRef(msgspec.Struct, kw_only=True):
    ref: str
    label: str | None
    confidence: float | None


class ComparisonOut(msgspec.Struct, kw_only=True, rename="camel"):
    status: str
    frame: int
    timestamp: float | None
    ground_truth: Labelled | None
    detection: DetectionRef | None
    iou: float | None
    offset_ms: float | None


class ExportOut(DetailedOut, kw_only=True, rename="camel"):
    comparisons: list[ComparisonOut]


class ComparisonsOut(msgspec.Struct, kw_only=True, rename="camel"):
    session_id: str
    evaluation_id: str
    total: int
    skip: int
    limit: int
    items: list[ComparisonOut]


class EvaluationSummaryOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    trigger: str
    based_on: str | None
    status: str
    created_at: str
    ground_truth_position: int
    ground_truth_annotations: int
    detections: int
    precision: float | None
    recall: float | None
    f1_score: float | None
    accuracy: float | None
    ap: float | None
    ap50: float | None
    ap75: float | None
    verdict: str | None


class EvaluatedOut(msgspec.Struct, kw_only=True, rename="camel"):
    """A fresh evaluation's headline figures (fractions 0-1)."""

    session_id: str
    evaluation_id: str
    ground_truth: PinOut
    metrics: HeadlineFractions
    verdict: VerdictOut | None


class RerunOut(msgspec.Struct, kw_only=True, rename="camel"):
    """A re-run on pinned or latest ground truth, with what changed (fractions 0-1)."""

    session_id: str
    evaluation_id: str
    based_on: str
    ground_truth: str
    pinned: PinOut
    previous: HeadlineOut
    current: HeadlineOut
    changes: dict[str, ChangeOut]
    ground_truth_changes: GroundTruthChangesOut
    verdict: VerdictOut | None
