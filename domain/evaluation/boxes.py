"""Vectorised IoU for ``(x, y, w, h)`` top-left pixel boxes and ragged per-group pairing."""

from __future__ import annotations

import numpy as np

from domain.evaluation.inputs import FloatArray, IntArray


def iou_pairs(det: FloatArray, gt: FloatArray) -> FloatArray:
    """IoU of row-aligned box pairs, operation-for-operation as pycocotools' ``bbIou`` (C).

    Matching decisions compare IoU with thresholds such as 0.55 exactly, so the arithmetic order
    is kept identical to pycocotools (``inter / (area_d + area_g - inter)``, areas as ``w*h``).
    """
    dx, dy, dw, dh = det[:, 0], det[:, 1], det[:, 2], det[:, 3]
    gx, gy, gw, gh = gt[:, 0], gt[:, 1], gt[:, 2], gt[:, 3]
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    ok = (w > 0) & (h > 0)
    inter = w * h
    union = dw * dh + gw * gh - inter
    out: FloatArray = np.zeros(det.shape[0])
    np.divide(inter, union, out=out, where=ok)
    return out


def iou_matrix(det: FloatArray, gt: FloatArray) -> FloatArray:
    """Dense ``(n_det, n_gt)`` IoU matrix with the same arithmetic as :func:`iou_pairs`."""
    nd, ng = det.shape[0], gt.shape[0]
    di = np.repeat(np.arange(nd), ng)
    gi = np.tile(np.arange(ng), nd)
    return iou_pairs(det[di], gt[gi]).reshape(nd, ng)


def group_keys(frame: IntArray, cls: IntArray, n_classes: int) -> IntArray:
    """One integer per (frame, class) cell; ``n_classes=1`` with zero classes groups by frame."""
    return frame * np.int64(max(n_classes, 1)) + cls


def ragged_pairs(a_keys: IntArray, b_keys: IntArray) -> tuple[IntArray, IntArray]:
    """All (a, b) index pairs sharing a key; both inputs sorted ascending.

    Pairs come out ordered by key, then a, then b, which is the order greedy matching needs.
    """
    if a_keys.shape[0] == 0 or b_keys.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    keys = np.intersect1d(a_keys, b_keys)
    a0 = np.searchsorted(a_keys, keys, side="left")
    na = np.searchsorted(a_keys, keys, side="right") - a0
    b0 = np.searchsorted(b_keys, keys, side="left")
    nb = np.searchsorted(b_keys, keys, side="right") - b0
    counts = na * nb
    total = int(counts.sum())
    group = np.repeat(np.arange(keys.shape[0]), counts)
    local = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    nbg = nb[group]
    a_idx = (a0[group] + local // nbg).astype(np.int64)
    b_idx = (b0[group] + local % nbg).astype(np.int64)
    return a_idx, b_idx
