"""Tracking metrics parity with py-motmetrics on random multi-object scenarios.

motmetrics 1.4 calls ``np.asfarray``, which numpy 2 removed; the alias is monkeypatched back
inside each test (only there) so motmetrics runs unmodified.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.evaluation import clear_mot, make_detections, make_ground_truth, tracking_metrics

pytestmark = pytest.mark.unit


def scenario(seed: int) -> dict[str, np.ndarray]:
    """Moving tracks, dropped and jittered hypotheses, identity swaps and clutter."""
    rng = np.random.default_rng(seed)
    n_frames = int(rng.integers(1, 25))
    n_tracks = int(rng.integers(0, 7))
    integer = bool(rng.random() < 0.5)  # integer boxes create exact distance ties
    start = rng.uniform(0, 80, (n_tracks, 2))
    vel = rng.normal(0, 3, (n_tracks, 2))
    size = rng.uniform(8, 30, (n_tracks, 2))
    alive = rng.random((n_frames, n_tracks)) < rng.uniform(0.4, 1.0)
    detect = rng.uniform(0.5, 1.0)
    jitter = rng.uniform(0, 4)
    swap_p = rng.uniform(0, 0.3)
    hyp_of_track = np.arange(n_tracks) + 100
    gf, gi, gb, df, di, db = [], [], [], [], [], []
    for f in range(n_frames):
        if n_tracks >= 2 and rng.random() < swap_p:
            a, b = rng.choice(n_tracks, 2, replace=False)
            hyp_of_track[[a, b]] = hyp_of_track[[b, a]]
        if rng.random() < 0.1 and n_tracks:
            hyp_of_track[rng.integers(n_tracks)] = 1000 + f  # fresh id: a new hypothesis
        for t in rng.permutation(n_tracks):
            if not alive[f, t]:
                continue
            box = np.r_[start[t] + f * vel[t], size[t]]
            box = box.round() if integer else box
            gf.append(f)
            gi.append(t + 1)
            gb.append(box)
            if rng.random() < detect:
                hb = box + np.r_[rng.normal(0, jitter, 2), rng.normal(0, jitter / 2, 2)]
                hb[2:] = np.abs(hb[2:])
                df.append(f)
                di.append(int(hyp_of_track[t]))
                db.append(hb.round() if integer else hb)
        for k in range(int(rng.poisson(0.5))):
            df.append(f)
            di.append(5000 + k)
            db.append(np.r_[rng.uniform(0, 80, 2), rng.uniform(8, 30, 2)])
    # shuffle rows across frames: per-frame order is what matters and it is kept by both sides
    g_ord = rng.permutation(len(gf))
    d_ord = rng.permutation(len(df))
    return {
        "gt_frame": np.array(gf, dtype=np.int64)[g_ord],
        "gt_id": np.array(gi, dtype=np.int64)[g_ord],
        "gt_box": np.array(gb, dtype=float).reshape(-1, 4)[g_ord],
        "det_frame": np.array(df, dtype=np.int64)[d_ord],
        "det_id": np.array(di, dtype=np.int64)[d_ord],
        "det_box": np.array(db, dtype=float).reshape(-1, 4)[d_ord],
    }


def reference(s: dict[str, np.ndarray]) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "asfarray", lambda a, dtype=float: np.asarray(a, dtype=dtype), raising=False)
        import motmetrics as mm

        acc = mm.MOTAccumulator(auto_id=False)
        for f in np.union1d(s["gt_frame"], s["det_frame"]):
            g = s["gt_frame"] == f
            d = s["det_frame"] == f
            dist = mm.distances.iou_matrix(s["gt_box"][g], s["det_box"][d], max_iou=0.5)
            acc.update(s["gt_id"][g], s["det_id"][d], dist, frameid=int(f))
        mh = mm.metrics.create()
        return mh.compute(
            acc,
            metrics=[
                "mota",
                "motp",
                "idf1",
                "idp",
                "idr",
                "idtp",
                "num_switches",
                "num_false_positives",
                "num_misses",
                "num_objects",
                "num_predictions",
                "num_detections",
            ],
            name="x",
        ).iloc[0]


def same(ours: float | None, theirs: float) -> bool:
    if ours is None:
        return not math.isfinite(theirs)
    return math.isfinite(theirs) and abs(ours - theirs) <= 1e-9


def check(s: dict[str, np.ndarray]) -> None:
    ours = clear_mot(**s)
    ref = reference(s)
    assert ours.id_switches == ref["num_switches"]
    assert ours.false_positives == ref["num_false_positives"]
    assert ours.misses == ref["num_misses"]
    assert ours.objects == ref["num_objects"]
    assert ours.predictions == ref["num_predictions"]
    assert ours.matches == ref["num_detections"]
    assert ours.idtp == ref["idtp"]
    for name in ("mota", "motp", "idf1", "idp", "idr"):
        assert same(getattr(ours, name), float(ref[name])), name


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_matches_motmetrics_on_random_scenarios(seed: int) -> None:
    check(scenario(seed))


def test_switch_and_keeping_previous_match() -> None:
    """Two objects swap hypothesis ids in frame 1: two switches; frame 2 keeps the new pairing."""
    box_a, box_b = [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 10.0, 10.0]
    s = {
        "gt_frame": np.array([0, 0, 1, 1, 2, 2]),
        "gt_id": np.array([1, 2, 1, 2, 1, 2]),
        "gt_box": np.array([box_a, box_b] * 3),
        "det_frame": np.array([0, 0, 1, 1, 2, 2]),
        "det_id": np.array([7, 8, 8, 7, 8, 7]),
        "det_box": np.array([box_a, box_b] * 3),
    }
    ours = clear_mot(**s)
    assert (ours.id_switches, ours.matches, ours.misses, ours.false_positives) == (2, 6, 0, 0)
    assert ours.mota == pytest.approx(1 - 2 / 6)
    assert ours.motp == pytest.approx(0.0)
    assert ours.mean_iou == pytest.approx(1.0)
    check(s)


def test_tracking_metrics_uses_boxed_tracked_rows_above_score() -> None:
    gt = make_ground_truth(
        frame=[0, 1, 1],
        label=["pedestrian"] * 3,
        box=[[0, 0, 10, 10], [0, 0, 10, 10], [float("nan")] * 4],
        track_id=[1, 1, -1],
    )
    det = make_detections(
        frame=[0, 1, 1],
        label=["pedestrian"] * 3,
        score=[0.9, 0.9, 0.1],
        box=[[0, 0, 10, 10], [1, 0, 10, 10], [0, 0, 10, 10]],
        track_id=[5, 5, 6],
    )
    m = tracking_metrics(gt, det, min_score=0.5)
    assert (m.objects, m.predictions, m.matches, m.id_switches) == (2, 2, 2, 0)
    assert m.idf1 == pytest.approx(1.0)


def test_empty_inputs() -> None:
    empty = np.zeros(0, dtype=np.int64)
    m = clear_mot(
        gt_frame=empty,
        gt_id=empty,
        gt_box=np.zeros((0, 4)),
        det_frame=empty,
        det_id=empty,
        det_box=np.zeros((0, 4)),
    )
    assert m.mota is None and m.idf1 is None and m.frames == 0
