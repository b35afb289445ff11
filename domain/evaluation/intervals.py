"""Uncertainty: Wilson and order-statistic intervals, frame-level bootstrap, paired comparison.

Bootstraps resample *frames* with replacement (detections in one frame are correlated, so
frames, not detections, are the independent units) and use the percentile method with a fixed
seed, fully vectorised (resample weights times per-frame sums). Wilson intervals treat each
detection (precision) or object (recall) as an independent trial, which is optimistic when errors
cluster in frames; the F1 bootstrap does not make that assumption.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import numpy as np

from domain.evaluation.coco import IOU_THRESHOLDS, CocoState, interpolated_precision
from domain.evaluation.inputs import FloatArray, IntArray
from domain.evaluation.metrics import FrameCounts

_CHUNK = 64


class Interval(msgspec.Struct, frozen=True, kw_only=True):
    """Two-sided interval; a None bound is unbounded (too little data to bound that side)."""

    low: float | None
    high: float | None
    confidence: float
    method: str


class PairedComparison(msgspec.Struct, frozen=True, kw_only=True):
    """F1 of session B minus session A on the same frames, with a paired-bootstrap interval.

    ``p_value`` is two-sided for "no difference": the share of bootstrap differences, re-centred
    on zero, at least as far from zero as the observed one, as ``(1 + count) / (1 + resamples)``.
    """

    f1_a: float | None
    f1_b: float | None
    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    confidence: float
    n_frames: int
    n_resamples: int


def _check(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    return 1.0 - confidence


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion; ``[0, 1]`` when there are no trials."""
    alpha = _check(confidence)
    if trials == 0:
        return Interval(low=0.0, high=1.0, confidence=confidence, method="wilson")
    from scipy.stats import norm  # noqa: PLC0415 - seconds to import; only intervals need it

    z = float(norm.ppf(1.0 - alpha / 2))
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * np.sqrt(p * (1 - p) / trials + z2n / (4 * trials)) / (1 + z2n)
    return Interval(
        low=max(0.0, float(centre - half)),
        high=min(1.0, float(centre + half)),
        confidence=confidence,
        method="wilson",
    )


def quantile_interval(values: FloatArray, q: float, confidence: float = 0.95) -> Interval:
    """Distribution-free interval for the ``q`` quantile from order statistics (binomial ranks)."""
    alpha = _check(confidence)
    x = np.sort(values[np.isfinite(values)])
    n = x.shape[0]
    if n == 0:
        return Interval(low=None, high=None, confidence=confidence, method="order-statistic")
    from scipy.stats import binom  # noqa: PLC0415 - seconds to import; only intervals need it

    lo_rank = int(binom.ppf(alpha / 2, n, q))
    hi_rank = int(binom.ppf(1 - alpha / 2, n, q)) + 1
    return Interval(
        low=float(x[lo_rank - 1]) if lo_rank >= 1 else None,
        high=float(x[hi_rank - 1]) if hi_rank <= n else None,
        confidence=confidence,
        method="order-statistic",
    )


def _weights(seed: int, n: int, n_resamples: int) -> Iterator[FloatArray]:
    """Chunks of resample weights: how often each of ``n`` frames is drawn in each resample."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_resamples:
        b = min(_CHUNK, n_resamples - done)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def _f1(tp: FloatArray, fp: FloatArray, fn: FloatArray) -> FloatArray:
    den = 2 * tp + fp + fn
    out = np.full(tp.shape, np.nan)
    np.divide(2 * tp, den, out=out, where=den > 0)
    return out


def _arrays(c: FrameCounts) -> tuple[FloatArray, FloatArray, FloatArray]:
    return (
        np.asarray(c.tp, dtype=np.float64),
        np.asarray(c.fp, dtype=np.float64),
        np.asarray(c.fn, dtype=np.float64),
    )


def _percentiles(stats: FloatArray, alpha: float) -> tuple[float | None, float | None]:
    finite = stats[np.isfinite(stats)]
    if finite.size == 0:
        return None, None
    lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_f1(
    counts: FrameCounts, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of F1 over frames (resamples with undefined F1 dropped)."""
    alpha = _check(confidence)
    tp, fp, fn = _arrays(counts)
    n = tp.shape[0]
    if n == 0 or n_resamples <= 0:
        return Interval(low=None, high=None, confidence=confidence, method="bootstrap-percentile")
    stats = np.concatenate([_f1(w @ tp, w @ fp, w @ fn) for w in _weights(seed, n, n_resamples)])
    lo, hi = _percentiles(stats, alpha)
    return Interval(low=lo, high=hi, confidence=confidence, method="bootstrap-percentile")


def _align(a: FrameCounts, b: FrameCounts) -> tuple[IntArray, list[FloatArray]]:
    frames = np.union1d(np.asarray(a.frames, np.int64), np.asarray(b.frames, np.int64))
    cols: list[FloatArray] = []
    for c in (a, b):
        pos = np.searchsorted(frames, np.asarray(c.frames, np.int64))
        for values in _arrays(c):
            col = np.zeros(frames.shape[0])
            col[pos] = values
            cols.append(col)
    return frames, cols


def paired_f1_comparison(
    a: FrameCounts,
    b: FrameCounts,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Paired frame bootstrap of F1(b) - F1(a); both sessions must be scored on the same video."""
    alpha = _check(confidence)
    frames, (tpa, fpa, fna, tpb, fpb, fnb) = _align(a, b)
    n = frames.shape[0]
    ones = np.ones((1, n))
    f1a = float(_f1(ones @ tpa, ones @ fpa, ones @ fna)[0])
    f1b = float(_f1(ones @ tpb, ones @ fpb, ones @ fnb)[0])
    if n == 0 or not (np.isfinite(f1a) and np.isfinite(f1b)) or n_resamples <= 0:
        return PairedComparison(
            f1_a=f1a if np.isfinite(f1a) else None,
            f1_b=f1b if np.isfinite(f1b) else None,
            difference=None,
            low=None,
            high=None,
            p_value=None,
            confidence=confidence,
            n_frames=n,
            n_resamples=0,
        )
    diffs = np.concatenate(
        [
            _f1(w @ tpb, w @ fpb, w @ fnb) - _f1(w @ tpa, w @ fpa, w @ fna)
            for w in _weights(seed, n, n_resamples)
        ]
    )
    diffs = diffs[np.isfinite(diffs)]
    observed = f1b - f1a
    lo, hi = _percentiles(diffs, alpha)
    extreme = int(np.count_nonzero(np.abs(diffs - observed) >= abs(observed)))
    return PairedComparison(
        f1_a=f1a,
        f1_b=f1b,
        difference=observed,
        low=lo,
        high=hi,
        p_value=min(1.0, (1 + extreme) / (1 + diffs.shape[0])),
        confidence=confidence,
        n_frames=n,
        n_resamples=int(diffs.shape[0]),
    )


class ApIntervals(msgspec.Struct, frozen=True, kw_only=True):
    """Bootstrap intervals for COCO AP@[.50:.95] and AP@.50."""

    ap: Interval
    ap50: Interval


def weighted_ap(state: CocoState, weights: FloatArray, frames: IntArray) -> FloatArray:
    """AP@[.50:.95] and AP@.50 per weight row (``(b, 2)``); frame weight w = w copies of it.

    Classes whose resampled ground-truth count is zero are excluded, as COCO excludes them.
    Weights must be whole numbers (counts) so the cumulative sums stay exact.
    """
    b = weights.shape[0]
    det_pos = np.searchsorted(frames, state.det_frame)
    gt_per_frame = np.zeros((frames.shape[0], len(state.classes)))
    np.add.at(gt_per_frame, (np.searchsorted(frames, state.gt_frame), state.gt_class), 1.0)
    npig = weights @ gt_per_frame
    t50 = int(np.where(IOU_THRESHOLDS == 0.5)[0][0])
    total = np.zeros((b, 2))
    n_valid = np.zeros(b)
    for k in range(len(state.classes)):
        if state.n_gt[k] == 0:
            continue
        valid = npig[:, k] > 0
        denom = np.where(valid, npig[:, k], 1.0)[:, None]
        lo, hi = int(state.bounds[k]), int(state.bounds[k + 1])
        wd = weights[:, det_pos[lo:hi]]
        kept_so_far = np.cumsum(wd, axis=1)
        class_ap = np.zeros(b)
        for t in range(state.tp.shape[0]):
            # Interpolated precision at a recall threshold is a max over true-positive ranks
            # only (precision peaks there), so the curve is evaluated at those columns alone.
            cols = np.flatnonzero(state.tp[t, lo:hi])
            tp_sum = np.cumsum(wd[:, cols], axis=1)
            fp_sum = kept_so_far[:, cols] - tp_sum
            q, _ = interpolated_precision(tp_sum, fp_sum, denom)
            class_ap += q.mean(axis=1)
            if t == t50:
                total[:, 1] += np.where(valid, q.mean(axis=1), 0.0)
        total[:, 0] += np.where(valid, class_ap / state.tp.shape[0], 0.0)
        n_valid += valid
    out = np.full((b, 2), np.nan)
    np.divide(total, n_valid[:, None], out=out, where=n_valid[:, None] > 0)
    return out


def bootstrap_ap(
    state: CocoState, *, n_resamples: int = 200, confidence: float = 0.95, seed: int = 0
) -> ApIntervals:
    """Percentile bootstrap over frames of AP@[.50:.95] and AP@.50 (matching is per frame, so
    resampling frames re-weights fixed TP/FP flags; only the ranking and GT totals change)."""
    alpha = _check(confidence)
    frames = np.union1d(state.gt_frame, state.det_frame)
    method = "bootstrap-percentile"
    if frames.shape[0] == 0 or n_resamples <= 0:
        none = Interval(low=None, high=None, confidence=confidence, method=method)
        return ApIntervals(ap=none, ap50=none)
    stats = np.concatenate(
        [weighted_ap(state, w, frames) for w in _weights(seed, frames.shape[0], n_resamples)]
    )
    lo, hi = _percentiles(stats[:, 0], alpha)
    lo50, hi50 = _percentiles(stats[:, 1], alpha)
    return ApIntervals(
        ap=Interval(low=lo, high=hi, confidence=confidence, method=method),
        ap50=Interval(low=lo50, high=hi50, confidence=confidence, method=method),
    )
