"""Coverage simulations for the intervals and sanity checks of the bootstraps (all seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from domain.evaluation import (
    Detections,
    FrameCounts,
    GroundTruth,
    bootstrap_ap,
    bootstrap_f1,
    coco_state,
    make_detections,
    make_ground_truth,
    paired_f1_comparison,
    quantile_interval,
    summarize,
    wilson_interval,
)
from domain.evaluation.intervals import weighted_ap

pytestmark = pytest.mark.unit

EXPERIMENTS = 400


def covered(lo: float | None, hi: float | None, truth: float) -> bool:
    return lo is not None and hi is not None and lo <= truth <= hi


@pytest.mark.parametrize(("p", "n"), [(0.85, 120), (0.6, 80), (0.95, 300)])
def test_wilson_coverage(p: float, n: int) -> None:
    """400 binomial experiments at 95% nominal: coverage must land in [0.92, 0.98]."""
    rng = np.random.default_rng(1234)
    intervals = [wilson_interval(int(k), n) for k in rng.binomial(n, p, EXPERIMENTS)]
    hits = sum(covered(iv.low, iv.high, p) for iv in intervals)
    assert 0.92 <= hits / EXPERIMENTS <= 0.98


def test_wilson_known_values() -> None:
    iv = wilson_interval(8, 10)
    assert (iv.low, iv.high) == pytest.approx((0.4901625, 0.9433178), abs=1e-6)
    empty = wilson_interval(0, 0)
    assert (empty.low, empty.high) == (0.0, 1.0)


def simulate_frames(
    rng: np.random.Generator, n: int, lam: tuple[float, float, float]
) -> FrameCounts:
    tp, fp, fn = (rng.poisson(x, n) for x in lam)
    return FrameCounts(
        frames=tuple(range(n)), tp=tuple(tp.tolist()), fp=tuple(fp.tolist()), fn=tuple(fn.tolist())
    )


def test_bootstrap_f1_coverage() -> None:
    """400 videos of 150 frames with Poisson TP/FP/FN per frame; true F1 = 2*3/(2*3+1+1.5).

    Percentile bootstrap at 95% nominal (500 resamples): coverage must land in [0.92, 0.98].
    """
    rng = np.random.default_rng(99)
    lam = (3.0, 1.0, 1.5)
    truth = 2 * lam[0] / (2 * lam[0] + lam[1] + lam[2])
    hits = 0
    for i in range(EXPERIMENTS):
        iv = bootstrap_f1(simulate_frames(rng, 150, lam), n_resamples=500, seed=i)
        hits += covered(iv.low, iv.high, truth)
    assert 0.92 <= hits / EXPERIMENTS <= 0.98


def test_quantile_interval_coverage() -> None:
    """p95 of exponential latencies (n=200): order-statistic interval covers in [0.92, 0.99]
    (the interval is exact-or-conservative by construction, hence the wider upper bound)."""
    rng = np.random.default_rng(7)
    truth = -np.log(0.05) * 40.0
    hits = 0
    for _ in range(EXPERIMENTS):
        iv = quantile_interval(rng.exponential(40.0, 200), 0.95)
        hits += covered(iv.low, iv.high, truth)
    assert 0.92 <= hits / EXPERIMENTS <= 0.99


def test_quantile_interval_unbounded_with_little_data() -> None:
    iv = quantile_interval(np.array([10.0, 20.0, 30.0]), 0.95)
    assert iv.high is None


def test_bootstrap_is_deterministic_per_seed() -> None:
    fc = simulate_frames(np.random.default_rng(0), 50, (2.0, 1.0, 1.0))
    assert bootstrap_f1(fc, seed=3) == bootstrap_f1(fc, seed=3)
    assert bootstrap_f1(fc, seed=3) != bootstrap_f1(fc, seed=4)


def test_paired_comparison_identical_sessions() -> None:
    fc = simulate_frames(np.random.default_rng(1), 100, (3.0, 1.0, 1.0))
    cmp = paired_f1_comparison(fc, fc, n_resamples=500)
    assert cmp.difference == 0.0
    assert (cmp.low, cmp.high) == (0.0, 0.0)
    assert cmp.p_value == 1.0


def test_paired_comparison_detects_a_real_improvement() -> None:
    rng = np.random.default_rng(2)
    n = 300
    gt = rng.poisson(4.0, n)
    tp_a = rng.binomial(gt, 0.6)
    tp_b = np.maximum(tp_a, rng.binomial(gt, 0.8))
    fp = rng.poisson(1.0, n)

    def fc(tp: np.ndarray) -> FrameCounts:
        return FrameCounts(
            frames=tuple(range(n)),
            tp=tuple(tp.tolist()),
            fp=tuple(fp.tolist()),
            fn=tuple((gt - tp).tolist()),
        )

    cmp = paired_f1_comparison(fc(tp_a), fc(tp_b), n_resamples=1000)
    assert cmp.difference is not None and cmp.difference > 0
    assert cmp.low is not None and cmp.low > 0
    assert cmp.p_value is not None and cmp.p_value < 0.01


def test_paired_comparison_p_value_is_calibrated_under_the_null() -> None:
    """200 pairs of sessions with the same error rates: p < 0.05 in 1%..10% of them."""
    rng = np.random.default_rng(5)
    rejections = 0
    for i in range(200):
        a = simulate_frames(rng, 120, (3.0, 1.0, 1.0))
        b = simulate_frames(rng, 120, (3.0, 1.0, 1.0))
        p = paired_f1_comparison(a, b, n_resamples=400, seed=i).p_value
        assert p is not None
        rejections += p < 0.05
    assert 0.01 <= rejections / 200 <= 0.10


def test_paired_comparison_aligns_frames() -> None:
    a = FrameCounts(frames=(0, 1), tp=(1, 1), fp=(0, 0), fn=(0, 0))
    b = FrameCounts(frames=(1, 2), tp=(1, 0), fp=(0, 1), fn=(0, 0))
    cmp = paired_f1_comparison(a, b, n_resamples=50)
    assert cmp.n_frames == 3
    assert cmp.f1_a == pytest.approx(1.0)
    assert cmp.f1_b == pytest.approx(2 / 3)


def random_scene(seed: int, decimals: int = 2) -> tuple[GroundTruth, Detections]:
    rng = np.random.default_rng(seed)
    n = 400
    frame = rng.integers(0, 60, n)
    box = np.c_[rng.uniform(0, 300, (n, 2)), rng.uniform(10, 60, (n, 2))]
    label = rng.choice(["pedestrian", "cyclist"], n)
    keep = rng.random(n) < 0.8
    dbox = box[keep] + rng.normal(0, 4, (int(keep.sum()), 4))
    dbox[:, 2:] = np.abs(dbox[:, 2:])
    gt = make_ground_truth(frame=frame, label=label, box=box)
    det = make_detections(
        frame=np.r_[frame[keep], rng.integers(0, 60, 40)],
        label=np.r_[label[keep], rng.choice(["pedestrian", "cyclist"], 40)],
        score=rng.random(int(keep.sum()) + 40).round(decimals),
        box=np.r_[dbox, np.c_[rng.uniform(0, 300, (40, 2)), rng.uniform(10, 60, (40, 2))]],
    )
    return gt, det


def test_weighted_ap_with_unit_weights_equals_coco_ap() -> None:
    gt, det = random_scene(0)
    state = coco_state(gt, det)
    frames = np.union1d(state.gt_frame, state.det_frame)
    out = weighted_ap(state, np.ones((1, frames.shape[0])), frames)
    summary = summarize(state)
    assert out[0, 0] == pytest.approx(summary.ap, abs=1e-12)
    assert out[0, 1] == pytest.approx(summary.ap50, abs=1e-12)


def test_weighted_ap_with_integer_weights_equals_duplicated_frames() -> None:
    """Weight 2 on a frame = that frame copied, weight 0 = frame dropped.

    Scores are tie-free so each copy ranks right next to its original, as weights imply.
    """
    gt, det = random_scene(1, decimals=12)
    state = coco_state(gt, det)
    frames = np.union1d(state.gt_frame, state.det_frame)
    w = np.ones((1, frames.shape[0]))
    w[0, 1::5] = 0.0
    w[0, ::3] = 2.0
    doubled = frames[::3]
    dropped = np.setdiff1d(frames[1::5], doubled)
    sel_g = ~np.isin(gt.frame, dropped)
    sel_d = ~np.isin(det.frame, dropped)
    dup_g = np.isin(gt.frame, doubled)
    dup_d = np.isin(det.frame, doubled)
    offset = 10_000
    gt2 = make_ground_truth(
        frame=np.r_[gt.frame[sel_g], gt.frame[dup_g] + offset],
        label=np.r_[gt.label[sel_g], gt.label[dup_g]],
        box=np.r_[gt.box[sel_g], gt.box[dup_g]],
        classes=gt.classes,
    )
    det2 = make_detections(
        frame=np.r_[det.frame[sel_d], det.frame[dup_d] + offset],
        label=np.r_[det.label[sel_d], det.label[dup_d]],
        score=np.r_[det.score[sel_d], det.score[dup_d]],
        box=np.r_[det.box[sel_d], det.box[dup_d]],
        classes=det.classes,
    )
    out = weighted_ap(state, w, frames)
    expected = summarize(coco_state(gt2, det2))
    assert out[0, 0] == pytest.approx(expected.ap, abs=1e-9)
    assert out[0, 1] == pytest.approx(expected.ap50, abs=1e-9)


def test_bootstrap_ap_interval_brackets_the_estimate() -> None:
    gt, det = random_scene(2)
    state = coco_state(gt, det)
    iv = bootstrap_ap(state, n_resamples=200, seed=0)
    est = summarize(state)
    assert iv.ap.low is not None and iv.ap.high is not None and est.ap is not None
    assert iv.ap.low < est.ap < iv.ap.high
    assert iv.ap50.low is not None and est.ap50 is not None and iv.ap50.high is not None
    assert iv.ap50.low < est.ap50 < iv.ap50.high
    assert bootstrap_ap(state, n_resamples=200, seed=0) == iv
