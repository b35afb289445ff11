"""Latency of matched detections (capturedAt minus ground-truth time) and its distribution."""

from __future__ import annotations

import msgspec
import numpy as np

from domain.evaluation.inputs import FloatArray
from domain.evaluation.intervals import Interval, quantile_interval
from domain.evaluation.matching import Pairs


class Histogram(msgspec.Struct, frozen=True, kw_only=True):
    """Equal-width bins over [min, max]; ``len(edges_ms) == len(counts) + 1``."""

    edges_ms: tuple[float, ...]
    counts: tuple[int, ...]


class DistributionSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Millisecond distribution summary; percentiles use linear interpolation (numpy default).

    ``p95_interval`` is a distribution-free order-statistic interval for the 95th percentile.
    """

    count: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    p95_interval: Interval
    histogram: Histogram


def _histogram(x: FloatArray, bins: int) -> tuple[FloatArray, FloatArray]:
    """numpy's histogram, except that values equal within float rounding (which numpy cannot
    split into `bins` finite-sized bins) share one bin instead of raising."""
    lo, hi = float(x.min()), float(x.max())
    if lo != hi and hi - lo <= 4 * bins * float(np.spacing(max(abs(lo), abs(hi)))):
        return np.array([x.size]), np.array([lo, hi])
    counts, edges = np.histogram(x, bins=bins)
    return counts, edges


def summarize_ms(
    values_ms: FloatArray, *, bins: int = 20, confidence: float = 0.95
) -> DistributionSummary:
    """Summarise finite values (NaN = unknown, dropped)."""
    x = values_ms[np.isfinite(values_ms)]
    if x.size == 0:
        return DistributionSummary(
            count=0,
            mean_ms=None,
            p50_ms=None,
            p95_ms=None,
            p99_ms=None,
            max_ms=None,
            p95_interval=quantile_interval(x, 0.95, confidence),
            histogram=Histogram(edges_ms=(), counts=()),
        )
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    counts, edges = _histogram(x, bins)
    return DistributionSummary(
        count=int(x.size),
        mean_ms=float(x.mean()),
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        max_ms=float(x.max()),
        p95_interval=quantile_interval(x, 0.95, confidence),
        histogram=Histogram(edges_ms=tuple(edges.tolist()), counts=tuple(counts.tolist())),
    )


def matched_latency_ms(
    gt_time_s: FloatArray, det_captured_s: FloatArray, pairs: Pairs
) -> FloatArray:
    """``captured_at - gt time`` in ms per matched pair; NaN where either side lacks a time."""
    return (det_captured_s[pairs.det] - gt_time_s[pairs.gt]) * 1000.0


def matched_offset_ms(gt_time_s: FloatArray, det_time_s: FloatArray, pairs: Pairs) -> FloatArray:
    """Temporal offset ``det time - gt time`` in ms per matched pair."""
    return (det_time_s[pairs.det] - gt_time_s[pairs.gt]) * 1000.0
