"""Properties of the optimal (Hungarian) and temporal matchers, and IoU parity with pycocotools."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from domain.evaluation import (
    greedy_match_boxes,
    iou_matrix,
    iou_pairs,
    match_boxes,
    match_times,
)

pytestmark = pytest.mark.unit

box = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 16), st.integers(0, 16)).map(
    lambda b: tuple(float(v) for v in b)
)
rows = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), box), max_size=14)


def unpack(data: list[tuple[int, int, tuple[float, ...]]]) -> tuple[np.ndarray, ...]:
    frame = np.array([r[0] for r in data], dtype=np.int64)
    cls = np.array([r[1] for r in data], dtype=np.int64)
    boxes = np.array([r[2] for r in data], dtype=float).reshape(-1, 4)
    return frame, cls, boxes


@settings(max_examples=200, deadline=None)
@given(rows, rows, st.sampled_from([0.1, 0.3, 0.5, 0.75]), st.data())
def test_hungarian_properties(gts: list, dets: list, thr: float, data: st.DataObject) -> None:
    gf, gc, gb = unpack(gts)
    df, dc, db = unpack(dets)
    pairs = match_boxes(
        gt_frame=gf, gt_cls=gc, gt_box=gb, det_frame=df, det_cls=dc, det_box=db, iou_threshold=thr
    )
    tp = len(pairs)
    # one-to-one
    assert np.unique(pairs.gt).shape[0] == tp
    assert np.unique(pairs.det).shape[0] == tp
    # eligible pairs only: same frame, same class, IoU >= threshold
    assert (gf[pairs.gt] == df[pairs.det]).all() and (gc[pairs.gt] == dc[pairs.det]).all()
    ious = iou_pairs(db[pairs.det], gb[pairs.gt])
    assert (ious >= thr).all()
    assert np.array_equal(ious, pairs.value)
    fn, fp = len(gts) - tp, len(dets) - tp
    assert tp + fn == len(gts) and tp + fp == len(dets)
    scores = np.array(
        data.draw(
            st.lists(st.sampled_from([0.2, 0.5, 0.9]), min_size=len(dets), max_size=len(dets))
        )
    )
    greedy = greedy_match_boxes(
        gt_frame=gf,
        gt_cls=gc,
        gt_box=gb,
        det_frame=df,
        det_cls=dc,
        det_score=scores.astype(float),
        det_box=db,
        iou_threshold=thr,
    )
    assert tp >= len(greedy)


def brute_force(eligible: np.ndarray, gain: np.ndarray) -> tuple[int, float]:
    """Best (count, total gain) over all one-to-one matchings of a small matrix."""
    ng, nd = eligible.shape
    best = (0, 0.0)
    for k in range(min(ng, nd), 0, -1):
        for gs in itertools.combinations(range(ng), k):
            for ds in itertools.permutations(range(nd), k):
                if all(eligible[g, d] for g, d in zip(gs, ds, strict=True)):
                    total = float(sum(gain[g, d] for g, d in zip(gs, ds, strict=True)))
                    if (k, total) > best:
                        best = (k, total)
        if best[0] == k:
            return best
    return best


small_rows = st.lists(st.tuples(st.just(0), st.just(0), box), max_size=5)


@settings(max_examples=150, deadline=None)
@given(small_rows, small_rows, st.sampled_from([0.1, 0.3, 0.5]))
def test_hungarian_is_optimal_against_brute_force(gts: list, dets: list, thr: float) -> None:
    gf, gc, gb = unpack(gts)
    df, dc, db = unpack(dets)
    pairs = match_boxes(
        gt_frame=gf, gt_cls=gc, gt_box=gb, det_frame=df, det_cls=dc, det_box=db, iou_threshold=thr
    )
    iou = iou_matrix(db, gb).T
    count, total = brute_force(iou >= thr, iou)
    assert len(pairs) == count
    assert float(pairs.value.sum()) == pytest.approx(total, abs=1e-9)


def test_hungarian_prefers_more_pairs_over_higher_total_iou_tie() -> None:
    """A covers G1 perfectly and G2 at 0.5; B covers G1 at 0.5: two pairs beat one."""
    g = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 20.0]])
    d = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]])
    assert iou_matrix(d, g).tolist() == [[1.0, 0.5], [0.5, 0.25]]
    z = np.zeros(2, dtype=np.int64)
    pairs = match_boxes(
        gt_frame=z, gt_cls=z, gt_box=g, det_frame=z, det_cls=z, det_box=d, iou_threshold=0.5
    )
    assert sorted(zip(pairs.gt.tolist(), pairs.det.tolist(), strict=True)) == [(0, 1), (1, 0)]


times = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 400).map(lambda ms: ms / 1000.0)), max_size=7
)


@settings(max_examples=200, deadline=None)
@given(times, times, st.sampled_from([0.0, 20.0, 50.0, 120.0]))
def test_temporal_matching_is_optimal(gts: list, dets: list, tol_ms: float) -> None:
    gc = np.array([g[0] for g in gts], dtype=np.int64)
    gt_t = np.array([g[1] for g in gts], dtype=float)
    dc = np.array([d[0] for d in dets], dtype=np.int64)
    dt_t = np.array([d[1] for d in dets], dtype=float)
    pairs = match_times(gt_time_s=gt_t, gt_cls=gc, det_time_s=dt_t, det_cls=dc, tolerance_ms=tol_ms)
    assert np.unique(pairs.gt).shape[0] == len(pairs) == np.unique(pairs.det).shape[0]
    assert (gc[pairs.gt] == dc[pairs.det]).all()
    assert np.array_equal(pairs.value, dt_t[pairs.det] - gt_t[pairs.gt])
    assert (np.abs(pairs.value) <= tol_ms / 1000.0).all()
    delta = np.abs(dt_t[None, :] - gt_t[:, None])
    eligible = (delta <= tol_ms / 1000.0) & (gc[:, None] == dc[None, :])
    count, total = brute_force(eligible, -delta)
    assert len(pairs) == count
    assert -float(np.abs(pairs.value).sum()) == pytest.approx(total, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-50, 50, allow_nan=False),
            st.floats(-50, 50, allow_nan=False),
            st.floats(0, 40, allow_nan=False),
            st.floats(0, 40, allow_nan=False),
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(
        st.tuples(
            st.integers(-50, 50), st.integers(-50, 50), st.integers(0, 40), st.integers(0, 40)
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_iou_is_bit_identical_to_pycocotools(dets: list, gts: list) -> None:
    d = np.array(dets, dtype=float)
    g = np.array(gts, dtype=float)
    ref = np.asarray(mask_utils.iou(d, g, [0] * len(gts)))
    assert np.array_equal(iou_matrix(d, g), ref)
