"""Typed responses of the statistics endpoints (fractions 0-1).

M4 and M5 carry camelCase and snake_case keys at every level: the contract lists the original's
snake_case bodies and the frontend's types read camelCase (M4) and snake_case (M5). Batch
analysis is Verity's own and camelCase (contract decision 1), its `intervals` the M5 body.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from domain.casing import with_snake_twins

Pair = list[float | None]
"""[low, high]; a bound is null where the ratio is undefined."""


@with_snake_twins
class MethodsOut(msgspec.Struct, kw_only=True, rename="camel"):
    precision: str
    recall: str
    accuracy: str
    f1_score: str


@with_snake_twins
class PointOut(msgspec.Struct, kw_only=True, rename="camel"):
    precision: float | None
    recall: float | None
    f1_score: float | None
    accuracy: float | None


@with_snake_twins
class ConfidenceIntervalsOut(msgspec.Struct, kw_only=True, rename="camel"):
    """M5: Wilson intervals from the counts; F1 a percentile bootstrap over frames."""

    precision: Pair
    recall: Pair
    f1_score: Pair
    accuracy: Pair
    confidence_level: float
    sample_size: int
    """TP + FP + FN."""
    frames: int
    methods: MethodsOut
    point: PointOut


class ComparisonFields(msgspec.Struct, kw_only=True, rename="camel"):
    """A paired frame bootstrap of F1(current) - F1(baseline) on the same video."""

    baseline_session_id: str
    f1_baseline: float | None
    f1_current: float | None
    difference: float | None
    difference_interval: Pair
    p_value: float | None
    frames: int
    resamples: int
    performance: str
    """improving | declining | stable | unknown"""


@with_snake_twins
class TrendOut(msgspec.Struct, kw_only=True, rename="camel"):
    """The paired comparison with the baseline, or `detail` saying why there is none."""

    detail: str | UnsetType = UNSET
    baseline_session_id: str | UnsetType = UNSET
    f1_baseline: float | UnsetType | None = UNSET
    f1_current: float | UnsetType | None = UNSET
    difference: float | UnsetType | None = UNSET
    difference_interval: Pair | UnsetType = UNSET
    p_value: float | UnsetType | None = UNSET
    frames: int | UnsetType = UNSET
    resamples: int | UnsetType = UNSET
    performance: str | UnsetType = UNSET


@with_snake_twins
class StatisticalRunOut(msgspec.Struct, kw_only=True, rename="camel"):
    """M4; computed from stored results on each call, not itself stored."""

    id: str
    test_session_id: str
    evaluation_id: str
    confidence_level: float
    confidence_interval: ConfidenceIntervalsOut
    p_value: float | None
    statistical_significance: bool
    trend_analysis: TrendOut
    created_at: str


class BatchSessionOut(msgspec.Struct, kw_only=True, rename="camel"):
    """One session's figures, or `detail` saying why it has none (`evaluated` false)."""

    session_id: str
    name: str
    status: str
    evaluated: bool
    detail: str | UnsetType = UNSET
    video_id: str | UnsetType = UNSET
    evaluation_id: str | UnsetType = UNSET
    precision: float | UnsetType | None = UNSET
    recall: float | UnsetType | None = UNSET
    f1_score: float | UnsetType | None = UNSET
    accuracy: float | UnsetType | None = UNSET
    ap: float | UnsetType | None = UNSET
    ap50: float | UnsetType | None = UNSET
    ap75: float | UnsetType | None = UNSET
    latency_p95_ms: float | UnsetType | None = UNSET
    verdict: str | UnsetType | None = UNSET
    intervals: ConfidenceIntervalsOut | UnsetType = UNSET


class MetricSummaryOut(msgspec.Struct, kw_only=True, rename="camel"):
    mean: float
    min: float
    max: float
    best_session_id: str


class PairedOut(ComparisonFields, kw_only=True, rename="camel"):
    session_id: str


class BatchOut(msgspec.Struct, kw_only=True, rename="camel"):
    scale: str
    confidence_level: float
    sessions: list[BatchSessionOut]
    summary: dict[str, MetricSummaryOut]
    """By metric: precision, recall, f1Score, accuracy, ap (only those some session has)."""
    paired_comparisons: list[PairedOut]
