"""PASS / FAIL / INCONCLUSIVE against acceptance criteria, judged on confidence intervals.

A criterion passes when its whole interval is on the right side of the threshold, fails when
the whole interval is on the wrong side, and is inconclusive when the interval straddles the
threshold (or is unbounded because there is too little data). The overall outcome is FAIL if any
criterion fails, else INCONCLUSIVE if any is inconclusive, else PASS (PASS when no criterion is
set: nothing was required). Precision and recall use Wilson intervals, F1 the frame bootstrap,
latency p95 the order-statistic interval.
"""

from __future__ import annotations

import enum

import msgspec

from domain.evaluation.intervals import Interval


class Outcome(enum.StrEnum):
    PASS = "PASS"  # noqa: S105 - an outcome, not a password
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


class Criteria(msgspec.Struct, frozen=True, kw_only=True):
    """Acceptance thresholds; None means "not required"."""

    min_precision: float | None = None
    min_recall: float | None = None
    min_f1: float | None = None
    max_latency_p95_ms: float | None = None


class CriterionResult(msgspec.Struct, frozen=True, kw_only=True):
    """How one criterion was judged: the point estimate, its interval and the reason."""

    name: str
    threshold: float
    observed: float | None
    low: float | None
    high: float | None
    confidence: float
    outcome: Outcome
    reason: str


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    outcome: Outcome
    criteria: tuple[CriterionResult, ...]


def _fmt(v: float | None) -> str:
    return "unbounded" if v is None else f"{v:.4g}"


def judge(
    name: str, threshold: float, observed: float | None, interval: Interval, *, at_least: bool
) -> CriterionResult:
    """Judge ``observed >= threshold`` (``at_least``) or ``observed <= threshold`` by interval."""
    lo, hi = interval.low, interval.high
    span = f"{interval.confidence:.0%} interval [{_fmt(lo)}, {_fmt(hi)}]"
    op = ">=" if at_least else "<="
    if at_least:
        passed = lo is not None and lo >= threshold
        failed = hi is not None and hi < threshold
    else:
        passed = hi is not None and hi <= threshold
        failed = lo is not None and lo > threshold
    if passed:
        outcome, reason = Outcome.PASS, f"{span} lies entirely {op} {threshold:g}"
    elif failed:
        outcome, reason = Outcome.FAIL, f"{span} lies entirely on the wrong side of {threshold:g}"
    elif lo is None or hi is None:
        outcome, reason = Outcome.INCONCLUSIVE, f"{span}: too little data to decide"
    else:
        outcome, reason = Outcome.INCONCLUSIVE, f"{span} straddles {threshold:g}"
    return CriterionResult(
        name=name,
        threshold=threshold,
        observed=observed,
        low=lo,
        high=hi,
        confidence=interval.confidence,
        outcome=outcome,
        reason=reason,
    )


def combine(results: tuple[CriterionResult, ...]) -> Verdict:
    """Overall outcome: any FAIL, else any INCONCLUSIVE, else PASS."""
    outcomes = {r.outcome for r in results}
    if Outcome.FAIL in outcomes:
        overall = Outcome.FAIL
    elif Outcome.INCONCLUSIVE in outcomes:
        overall = Outcome.INCONCLUSIVE
    else:
        overall = Outcome.PASS
    return Verdict(outcome=overall, criteria=results)
