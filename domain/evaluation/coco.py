"""COCO-style bbox AP reproducing pycocotools' COCOeval (evaluate + accumulate + summarize).

Scope: area range ``all`` and ``maxDets=100`` only, and no crowd regions (every ground-truth row is
``iscrowd=0``; ``iscrowd``/``difficult`` flags are ignored). Ground-truth boxes with area above
``1e10`` px² (which COCO would ignore for area ``all``) are assumed not to occur.

The per-image Python loops of pycocotools are replaced by: ragged (det, gt) pairs per
(frame, class) cell; greedy rounds over detection rank, processed for all cells and all ten IoU
thresholds at once; and one global sort per class for accumulation. Tie-breaking is identical to
pycocotools: detections are ranked by score with a stable sort (input order breaks ties); each takes
the unmatched ground truth of highest IoU, the *last* one in input order among equal IoUs; the
global ranking per class breaks score ties by frame, then input order.
"""

from __future__ import annotations

import msgspec
import numpy as np

from domain.evaluation.boxes import group_keys, iou_pairs, ragged_pairs
from domain.evaluation.inputs import (
    BoolArray,
    Detections,
    FloatArray,
    GroundTruth,
    IntArray,
    unify_classes,
)

IOU_THRESHOLDS: FloatArray = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
"""Exactly pycocotools' ``iouThrs`` (linspace, so e.g. 0.55 is the same double)."""
RECALL_THRESHOLDS: FloatArray = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)
MAX_DETECTIONS = 100


class GreedyMatch(msgspec.Struct, frozen=True, kw_only=True):
    """Greedy matching outcome: ``kept`` detection indices and, per threshold, matched GT or -1."""

    kept: IntArray
    matched_gt: IntArray


class CocoState(msgspec.Struct, frozen=True, kw_only=True):
    """Per-class ranked detections with TP flags per IoU threshold (reused by the AP bootstrap)."""

    classes: tuple[str, ...]
    n_gt: IntArray
    n_det: IntArray
    bounds: IntArray
    det_frame: IntArray
    tp: BoolArray
    gt_frame: IntArray
    gt_class: IntArray


class ClassAP(msgspec.Struct, frozen=True, kw_only=True):
    """COCO figures for one class; None when the class has no ground truth (COCO's -1)."""

    label: str
    n_gt: int
    n_det: int
    ap: float | None
    ap50: float | None
    ap75: float | None
    ar100: float | None


class CocoSummary(msgspec.Struct, frozen=True, kw_only=True):
    """AP@[.50:.95], AP@.50, AP@.75 and AR@100 averaged over classes that have ground truth."""

    ap: float | None
    ap50: float | None
    ap75: float | None
    ar100: float | None
    per_class: tuple[ClassAP, ...]


def greedy_match(
    *,
    gt_frame: IntArray,
    gt_cls: IntArray,
    gt_box: FloatArray,
    det_frame: IntArray,
    det_cls: IntArray,
    det_score: FloatArray,
    det_box: FloatArray,
    thresholds: FloatArray,
    max_dets: int | None = MAX_DETECTIONS,
) -> GreedyMatch:
    """COCOeval's greedy matching per (frame, class), for all thresholds at once."""
    n_classes = int(max(gt_cls.max(initial=0), det_cls.max(initial=0))) + 1
    det_idx = np.arange(det_frame.shape[0], dtype=np.int64)
    order = np.lexsort((det_idx, -det_score, det_cls, det_frame))
    dkeys = group_keys(det_frame[order], det_cls[order], n_classes)
    rank = np.arange(order.shape[0]) - np.searchsorted(dkeys, dkeys, side="left")
    if max_dets is not None:
        top = rank < max_dets
        order, dkeys, rank = order[top], dkeys[top], rank[top]
    gorder = np.lexsort((np.arange(gt_frame.shape[0]), gt_cls, gt_frame))
    gkeys = group_keys(gt_frame[gorder], gt_cls[gorder], n_classes)

    # pycocotools starts from min(t, 1 - 1e-10) and accepts IoU >= that value.
    thr = np.minimum(np.asarray(thresholds, dtype=np.float64), 1 - 1e-10)
    n_thr = thr.shape[0]
    matched = np.full((n_thr, order.shape[0]), -1, dtype=np.int64)
    taken = np.zeros((n_thr, gorder.shape[0]), dtype=np.bool_)

    di, gi = ragged_pairs(dkeys, gkeys)
    iou = iou_pairs(det_box[order[di]], gt_box[gorder[gi]])
    keep = iou >= thr.min(initial=np.inf)
    di, gi, iou = di[keep], gi[keep], iou[keep]
    step = np.argsort(rank[di], kind="stable")
    di, gi, iou = di[step], gi[step], iou[step]
    prank = rank[di]
    bounds = np.searchsorted(prank, np.arange(int(prank.max(initial=-1)) + 2))
    col_thr = thr[:, None]
    for r in range(bounds.shape[0] - 1):
        lo, hi = int(bounds[r]), int(bounds[r + 1])
        if lo == hi:
            continue
        d, g, v = di[lo:hi], gi[lo:hi], iou[lo:hi]
        starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        valid = (v >= col_thr) & ~taken[:, g]
        key = np.where(valid, v, -1.0)
        seg_max = np.maximum.reduceat(key, starts, axis=1)
        lengths = np.diff(np.r_[starts, d.shape[0]])
        best = valid & (key == np.repeat(seg_max, lengths, axis=1))
        pos = np.where(best, np.arange(d.shape[0]), -1)
        last = np.maximum.reduceat(pos, starts, axis=1)
        ti, si = np.nonzero(last >= 0)
        p = last[ti, si]
        matched[ti, d[p]] = g[p]
        taken[ti, g[p]] = True
    lookup = np.append(gorder, np.int64(-1))
    matched_gt = lookup[matched]
    return GreedyMatch(kept=order, matched_gt=matched_gt)


def coco_state_arrays(
    *,
    classes: tuple[str, ...],
    gt_frame: IntArray,
    gt_cls: IntArray,
    gt_box: FloatArray,
    det_frame: IntArray,
    det_cls: IntArray,
    det_score: FloatArray,
    det_box: FloatArray,
) -> CocoState:
    """Match at the ten COCO thresholds and rank detections per class as ``accumulate`` does."""
    match = greedy_match(
        gt_frame=gt_frame,
        gt_cls=gt_cls,
        gt_box=gt_box,
        det_frame=det_frame,
        det_cls=det_cls,
        det_score=det_score,
        det_box=det_box,
        thresholds=IOU_THRESHOLDS,
    )
    kept = match.kept
    order = np.lexsort((kept, det_frame[kept], -det_score[kept], det_cls[kept]))
    ranked = kept[order]
    n_classes = len(classes)
    kcls = det_cls[ranked]
    bounds = np.searchsorted(kcls, np.arange(n_classes + 1), side="left").astype(np.int64)
    return CocoState(
        classes=classes,
        n_gt=np.bincount(gt_cls, minlength=n_classes).astype(np.int64),
        n_det=np.bincount(det_cls, minlength=n_classes).astype(np.int64),
        bounds=bounds,
        det_frame=det_frame[ranked],
        tp=match.matched_gt[:, order] >= 0,
        gt_frame=gt_frame,
        gt_class=gt_cls,
    )


def coco_state(gt: GroundTruth, det: Detections) -> CocoState:
    """COCO state for the boxed rows of ``gt`` and ``det`` (box-less rows take no part in AP)."""
    classes, gcls, dcls = unify_classes(gt, det)
    g, d = gt.has_box, det.has_box
    return coco_state_arrays(
        classes=classes,
        gt_frame=gt.frame[g],
        gt_cls=gcls[g],
        gt_box=gt.box[g],
        det_frame=det.frame[d],
        det_cls=dcls[d],
        det_score=det.score[d],
        det_box=det.box[d],
    )


def interpolated_precision(
    tp_sum: FloatArray, fp_sum: FloatArray, npig: FloatArray | float
) -> tuple[FloatArray, FloatArray]:
    """101-point interpolated precision rows and final recall, as in ``COCOeval.accumulate``."""
    rows, nd = tp_sum.shape
    q = np.zeros((rows, RECALL_THRESHOLDS.shape[0]))
    if nd == 0:
        return q, np.zeros(rows)
    rc = tp_sum / npig
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    for i in range(rows):
        inds = np.searchsorted(rc[i], RECALL_THRESHOLDS, side="left")
        ok = inds < nd
        q[i, ok] = pr[i, inds[ok]]
    return q, rc[:, -1].copy()


def accumulate(state: CocoState) -> tuple[FloatArray, FloatArray]:
    """``precision[T, R, K]`` and ``recall[T, K]`` with -1 for classes without ground truth."""
    n_thr, n_rec, n_cls = state.tp.shape[0], RECALL_THRESHOLDS.shape[0], len(state.classes)
    precision = -np.ones((n_thr, n_rec, n_cls))
    recall = -np.ones((n_thr, n_cls))
    for k in range(n_cls):
        npig = int(state.n_gt[k])
        if npig == 0:
            continue
        tps = state.tp[:, state.bounds[k] : state.bounds[k + 1]]
        tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
        fp_sum = np.cumsum(~tps, axis=1).astype(dtype=float)
        precision[:, :, k], recall[:, k] = interpolated_precision(tp_sum, fp_sum, npig)
    return precision, recall


def mean_valid(values: FloatArray) -> float | None:
    """COCOeval.summarize's ``mean(s[s > -1])``; None where COCO reports -1."""
    s = values[values > -1]
    return float(np.mean(s)) if s.size else None


def _at(threshold: float) -> IntArray:
    return np.where(threshold == IOU_THRESHOLDS)[0]


def summarize(state: CocoState) -> CocoSummary:
    """Reduce the accumulated arrays to the summary figures and per-class APs."""
    precision, recall = accumulate(state)
    t50, t75 = _at(0.5), _at(0.75)
    per_class = tuple(
        ClassAP(
            label=label,
            n_gt=int(state.n_gt[k]),
            n_det=int(state.n_det[k]),
            ap=mean_valid(precision[:, :, k]),
            ap50=mean_valid(precision[t50][:, :, k]),
            ap75=mean_valid(precision[t75][:, :, k]),
            ar100=mean_valid(recall[:, k]),
        )
        for k, label in enumerate(state.classes)
    )
    return CocoSummary(
        ap=mean_valid(precision),
        ap50=mean_valid(precision[t50]),
        ap75=mean_valid(precision[t75]),
        ar100=mean_valid(recall),
        per_class=per_class,
    )


def coco_evaluate(gt: GroundTruth, det: Detections) -> CocoSummary:
    """COCO bbox AP/AP50/AP75/AR100 of ``det`` against ``gt`` (boxed rows only)."""
    return summarize(coco_state(gt, det))
