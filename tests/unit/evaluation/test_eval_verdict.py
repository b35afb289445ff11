"""Verdict logic: PASS / FAIL / INCONCLUSIVE per criterion and overall."""

from __future__ import annotations

import numpy as np
import pytest

from domain.evaluation import (
    Criteria,
    Detections,
    EvaluationConfig,
    GroundTruth,
    Interval,
    Outcome,
    evaluate,
    judge,
    make_detections,
    make_ground_truth,
    verdict,
)
from domain.evaluation.verdict import combine

pytestmark = pytest.mark.unit


def iv(lo: float | None, hi: float | None) -> Interval:
    return Interval(low=lo, high=hi, confidence=0.95, method="test")


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.80, Outcome.PASS),
        (0.85, Outcome.PASS),
        (0.87, Outcome.INCONCLUSIVE),
        (0.95, Outcome.FAIL),
    ],
)
def test_minimum_criterion(threshold: float, expected: Outcome) -> None:
    assert judge("precision", threshold, 0.875, iv(0.85, 0.90), at_least=True).outcome == expected


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (150.0, Outcome.PASS),
        (140.0, Outcome.PASS),
        (120.0, Outcome.INCONCLUSIVE),
        (90.0, Outcome.FAIL),
    ],
)
def test_maximum_criterion(threshold: float, expected: Outcome) -> None:
    r = judge("latency_p95_ms", threshold, 120.0, iv(100.0, 140.0), at_least=False)
    assert r.outcome == expected


def test_unbounded_interval_is_inconclusive_unless_the_bounded_side_decides() -> None:
    assert judge("latency", 150.0, 120.0, iv(100.0, None), at_least=False).outcome == (
        Outcome.INCONCLUSIVE
    )
    assert judge("latency", 90.0, 120.0, iv(100.0, None), at_least=False).outcome == Outcome.FAIL
    r = judge("f1", 0.5, None, iv(None, None), at_least=True)
    assert r.outcome == Outcome.INCONCLUSIVE and "too little data" in r.reason


def test_point_estimate_above_threshold_is_not_enough() -> None:
    r = judge("recall", 0.80, 0.82, iv(0.78, 0.86), at_least=True)
    assert r.outcome == Outcome.INCONCLUSIVE and "straddles" in r.reason


def test_combination() -> None:
    p = judge("a", 0.5, 0.9, iv(0.8, 0.95), at_least=True)
    i = judge("b", 0.9, 0.9, iv(0.8, 0.95), at_least=True)
    f = judge("c", 0.99, 0.9, iv(0.8, 0.95), at_least=True)
    assert combine((p, i)).outcome == Outcome.INCONCLUSIVE
    assert combine((p, i, f)).outcome == Outcome.FAIL
    assert combine((p,)).outcome == Outcome.PASS
    assert combine(()).outcome == Outcome.PASS


def synthetic(n_frames: int, recall: float, seed: int) -> tuple[GroundTruth, Detections]:
    rng = np.random.default_rng(seed)
    frame = np.repeat(np.arange(n_frames), 4)
    n = frame.shape[0]
    box = np.c_[
        np.tile([[0, 0], [100, 0], [0, 100], [100, 100]], (n_frames, 1)), np.full((n, 2), 50.0)
    ]
    hit = rng.random(n) < recall
    t = frame / 30.0
    gt = make_ground_truth(frame=frame, label=["pedestrian"] * n, box=box, time_s=t)
    det = make_detections(
        frame=frame[hit],
        label=["pedestrian"] * int(hit.sum()),
        score=rng.uniform(0.5, 1.0, int(hit.sum())),
        box=box[hit] + 1.0,
        time_s=t[hit],
        captured_at_s=t[hit] + rng.uniform(0.05, 0.10, int(hit.sum())),
    )
    return gt, det


CFG = EvaluationConfig(bootstrap_resamples=500, ap_bootstrap_resamples=20)


def test_end_to_end_pass_fail_inconclusive() -> None:
    gt, det = synthetic(500, 0.9, seed=0)
    report = evaluate(gt, det, CFG)
    assert report.counts.precision == 1.0
    passing = verdict(report, Criteria(min_precision=0.95, min_recall=0.85, max_latency_p95_ms=150))
    assert passing.outcome == Outcome.PASS
    assert [c.name for c in passing.criteria] == ["precision", "recall", "latency_p95_ms"]
    failing = verdict(report, Criteria(min_recall=0.95, min_precision=0.95))
    assert failing.outcome == Outcome.FAIL
    assert [c.outcome for c in failing.criteria] == [Outcome.PASS, Outcome.FAIL]
    p95 = report.latency.p95_ms
    unsure = verdict(report, Criteria(min_f1=report.counts.f1, max_latency_p95_ms=p95))
    assert unsure.outcome == Outcome.INCONCLUSIVE
    assert all(c.outcome == Outcome.INCONCLUSIVE for c in unsure.criteria)
    assert verdict(report, Criteria()).outcome == Outcome.PASS


def test_small_sample_is_inconclusive_where_a_large_one_passes() -> None:
    criteria = Criteria(min_recall=0.85)
    small = evaluate(*synthetic(10, 0.9, seed=1), CFG)
    large = evaluate(*synthetic(2000, 0.9, seed=1), CFG)
    assert verdict(small, criteria).outcome == Outcome.INCONCLUSIVE
    assert verdict(large, criteria).outcome == Outcome.PASS
