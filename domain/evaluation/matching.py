"""One-to-one matching of detections to ground truth: optimal by IoU, optimal by time, greedy.

The optimal matchers maximise first the *number* of pairs and then the total IoU (or minimise the
total |Δt|) among the eligible pairs. Maximising total IoU alone can trade two valid pairs for one
(0.5 + 0.5 vs 1.0), which would make it lose true positives to plain greedy matching; the
lexicographic objective keeps "max total IoU" as the tie-break while guaranteeing maximum TP.
Cells (frame and class, or a class timeline component) in which no detection or ground truth has
two eligible partners are resolved without the solver; only conflicting cells go through
``scipy.optimize.linear_sum_assignment``.
"""

from __future__ import annotations

import msgspec
import numpy as np
from scipy.optimize import linear_sum_assignment

from domain.evaluation.boxes import group_keys, iou_pairs, ragged_pairs
from domain.evaluation.coco import greedy_match
from domain.evaluation.inputs import FloatArray, IntArray


class Pairs(msgspec.Struct, frozen=True, kw_only=True):
    """Matched pairs as indices into the caller's arrays; ``value`` is IoU or signed Δt (s)."""

    gt: IntArray
    det: IntArray
    value: FloatArray

    def __len__(self) -> int:
        return int(self.gt.shape[0])


def _empty() -> Pairs:
    return Pairs(gt=np.zeros(0, np.int64), det=np.zeros(0, np.int64), value=np.zeros(0))


def _solve_cells(
    cell: IntArray, gt: IntArray, det: IntArray, gain: FloatArray, value: FloatArray
) -> Pairs:
    """Lexicographic (count, total gain) max matching per cell; inputs are eligible pairs."""
    if gt.shape[0] == 0:
        return _empty()
    gdeg = np.bincount(gt)[gt]
    ddeg = np.bincount(det)[det]
    conflict_cells = np.unique(cell[(gdeg > 1) | (ddeg > 1)])
    simple = ~np.isin(cell, conflict_cells)
    out_g, out_d, out_v = [gt[simple]], [det[simple]], [value[simple]]
    order = np.argsort(cell, kind="stable")
    sorted_cells = cell[order]
    lo = np.searchsorted(sorted_cells, conflict_cells, side="left")
    hi = np.searchsorted(sorted_cells, conflict_cells, side="right")
    for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
        idx = order[a:b]
        ug, gi = np.unique(gt[idx], return_inverse=True)
        ud, di = np.unique(det[idx], return_inverse=True)
        bonus = float(min(ug.shape[0], ud.shape[0]) + 1)
        weight = np.zeros((ug.shape[0], ud.shape[0]))
        weight[gi, di] = bonus + gain[idx]
        vals = np.zeros_like(weight)
        vals[gi, di] = value[idx]
        rows, cols = linear_sum_assignment(weight, maximize=True)
        ok = weight[rows, cols] > 0
        out_g.append(ug[rows[ok]])
        out_d.append(ud[cols[ok]])
        out_v.append(vals[rows[ok], cols[ok]])
    g = np.concatenate(out_g).astype(np.int64)
    order = np.argsort(g, kind="stable")
    return Pairs(
        gt=g[order],
        det=np.concatenate(out_d).astype(np.int64)[order],
        value=np.concatenate(out_v)[order],
    )


def match_boxes(
    *,
    gt_frame: IntArray,
    gt_cls: IntArray,
    gt_box: FloatArray,
    det_frame: IntArray,
    det_cls: IntArray,
    det_box: FloatArray,
    iou_threshold: float,
) -> Pairs:
    """Optimal one-to-one matching per (frame, class) over pairs with IoU >= ``iou_threshold``.

    Pass all-zero class arrays for class-agnostic matching. ``iou_threshold`` must be in (0, 1].
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError("iou_threshold must be in (0, 1]")
    n_classes = int(max(gt_cls.max(initial=0), det_cls.max(initial=0))) + 1
    gk = group_keys(gt_frame, gt_cls, n_classes)
    dk = group_keys(det_frame, det_cls, n_classes)
    go = np.argsort(gk, kind="stable")
    do = np.argsort(dk, kind="stable")
    di, gi = ragged_pairs(dk[do], gk[go])
    d, g = do[di], go[gi]
    iou = iou_pairs(det_box[d], gt_box[g])
    ok = iou >= iou_threshold
    return _solve_cells(gk[g[ok]], g[ok], d[ok], iou[ok], iou[ok])


def match_times(
    *,
    gt_time_s: FloatArray,
    gt_cls: IntArray,
    det_time_s: FloatArray,
    det_cls: IntArray,
    tolerance_ms: float,
) -> Pairs:
    """Optimal one-to-one matching per class of events with |Δt| <= tolerance (minimum total |Δt|).

    ``value`` is the signed offset ``det - gt`` in seconds. The class timeline is cut wherever two
    consecutive events are further apart than the tolerance, so the solver only sees small pieces.
    """
    if tolerance_ms < 0:
        raise ValueError("tolerance_ms must be non-negative")
    tol = tolerance_ms / 1000.0
    ng = gt_time_s.shape[0]
    if ng == 0 or det_time_s.shape[0] == 0:
        return _empty()
    if not (np.isfinite(gt_time_s).all() and np.isfinite(det_time_s).all()):
        raise ValueError("temporal matching needs finite timestamps")
    times = np.concatenate([gt_time_s, det_time_s])
    cls = np.concatenate([gt_cls, det_cls])
    order = np.lexsort((times, cls))
    t, c = times[order], cls[order]
    cut = np.r_[True, (c[1:] != c[:-1]) | (np.diff(t) > tol)]
    comp = np.cumsum(cut)[np.argsort(order)]
    gcomp, dcomp = comp[:ng], comp[ng:]
    go = np.argsort(gcomp, kind="stable")
    do = np.argsort(dcomp, kind="stable")
    di, gi = ragged_pairs(dcomp[do], gcomp[go])
    d, g = do[di], go[gi]
    delta = det_time_s[d] - gt_time_s[g]
    ok = np.abs(delta) <= tol
    d, g, delta = d[ok], g[ok], delta[ok]
    gain = 1.0 - np.abs(delta) / tol if tol > 0 else np.ones_like(delta)
    return _solve_cells(gcomp[g], g, d, gain, delta)


def greedy_match_boxes(
    *,
    gt_frame: IntArray,
    gt_cls: IntArray,
    gt_box: FloatArray,
    det_frame: IntArray,
    det_cls: IntArray,
    det_score: FloatArray,
    det_box: FloatArray,
    iou_threshold: float,
) -> Pairs:
    """COCO greedy matching (score order, best IoU first) at one threshold, no detection cap."""
    res = greedy_match(
        gt_frame=gt_frame,
        gt_cls=gt_cls,
        gt_box=gt_box,
        det_frame=det_frame,
        det_cls=det_cls,
        det_score=det_score,
        det_box=det_box,
        thresholds=np.array([iou_threshold]),
        max_dets=None,
    )
    hit = res.matched_gt[0] >= 0
    g, d = res.matched_gt[0][hit], res.kept[hit]
    order = np.argsort(g, kind="stable")
    g, d = g[order], d[order]
    return Pairs(gt=g, det=d, value=iou_pairs(det_box[d], gt_box[g]))
