"""Detection counts and the figures derived from them: P/R/F1/accuracy, confusion, curves."""

from __future__ import annotations

import msgspec
import numpy as np

from domain.evaluation.inputs import BoolArray, FloatArray, IntArray
from domain.evaluation.matching import Pairs

BACKGROUND = "background"


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    """TP/FP/FN and ratios; a ratio is None when its denominator is zero.

    precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN) (the harmonic mean of P and
    R, also defined as 0 when there are no detections but some ground truth), and
    accuracy = TP/(TP+FP+FN): detection has no true negatives, so this is the threat score /
    critical success index rather than (TP+TN)/N.
    """

    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    accuracy: float | None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def make_counts(tp: int, fp: int, fn: int) -> Counts:
    """Counts with the ratios documented on :class:`Counts`."""
    return Counts(
        tp=tp,
        fp=fp,
        fn=fn,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        accuracy=_ratio(tp, tp + fp + fn),
    )


class ClassMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """Operating-point counts and COCO AP for one class (AP None: class has no ground truth)."""

    label: str
    n_gt: int
    n_det: int
    counts: Counts
    ap: float | None
    ap50: float | None
    ap75: float | None


class FrameCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Per-frame TP/FP/FN: the resampling unit of the bootstrap and of paired comparisons."""

    frames: tuple[int, ...]
    tp: tuple[int, ...]
    fp: tuple[int, ...]
    fn: tuple[int, ...]


def frame_counts(
    gt_frame: IntArray, det_frame: IntArray, pairs: Pairs, extra_frames: IntArray | None = None
) -> FrameCounts:
    """TP and FN are booked on the ground truth's frame, FP on the detection's frame."""
    matched_gt = np.zeros(gt_frame.shape[0], dtype=np.bool_)
    matched_gt[pairs.gt] = True
    matched_det = np.zeros(det_frame.shape[0], dtype=np.bool_)
    matched_det[pairs.det] = True
    parts = [gt_frame, det_frame] + ([extra_frames] if extra_frames is not None else [])
    frames = np.unique(np.concatenate(parts))
    n = frames.shape[0]

    def per_frame(where: IntArray) -> tuple[int, ...]:
        pos = np.searchsorted(frames, where)
        return tuple(np.bincount(pos, minlength=n).tolist())

    return FrameCounts(
        frames=tuple(frames.tolist()),
        tp=per_frame(gt_frame[matched_gt]),
        fp=per_frame(det_frame[~matched_det]),
        fn=per_frame(gt_frame[~matched_gt]),
    )


def class_counts(gt_cls: IntArray, det_cls: IntArray, pairs: Pairs, n_classes: int) -> list[Counts]:
    """Per-class counts for a same-class matching (a pair's class is its ground truth's)."""
    n_gt = np.bincount(gt_cls, minlength=n_classes)
    n_det = np.bincount(det_cls, minlength=n_classes)
    tp = np.bincount(gt_cls[pairs.gt], minlength=n_classes)
    return [
        make_counts(int(tp[k]), int(n_det[k] - tp[k]), int(n_gt[k] - tp[k]))
        for k in range(n_classes)
    ]


class ConfusionMatrix(msgspec.Struct, frozen=True, kw_only=True):
    """Rows: true class, columns: predicted class; the last row/column is ``background``.

    Rule: ground truth and detections are matched one-to-one *ignoring labels* (same objective as
    the operating-point matching: most pairs with IoU >= threshold, then highest total IoU;
    box-less detections by time). A matched pair adds one to [true label, predicted label];
    an unmatched ground truth adds one to [true label, background] (a miss); an unmatched
    detection adds one to [background, predicted label] (a false alarm). [background, background]
    is always 0. Because labels do not steer the matching, a mislabelled but well-placed box
    counts as a confusion, not as a miss plus a false alarm.
    """

    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]


def confusion_matrix(
    gt_cls: IntArray, det_cls: IntArray, pairs: Pairs, classes: tuple[str, ...]
) -> ConfusionMatrix:
    """Build the matrix of :class:`ConfusionMatrix` from a class-agnostic matching."""
    k = len(classes)
    m = np.zeros((k + 1, k + 1), dtype=np.int64)
    np.add.at(m, (gt_cls[pairs.gt], det_cls[pairs.det]), 1)
    unmatched_gt = np.ones(gt_cls.shape[0], dtype=np.bool_)
    unmatched_gt[pairs.gt] = False
    unmatched_det = np.ones(det_cls.shape[0], dtype=np.bool_)
    unmatched_det[pairs.det] = False
    m[:k, k] = np.bincount(gt_cls[unmatched_gt], minlength=k)
    m[k, :k] = np.bincount(det_cls[unmatched_det], minlength=k)
    return ConfusionMatrix(
        labels=(*classes, BACKGROUND), matrix=tuple(tuple(r) for r in m.tolist())
    )


class ConfidenceCurve(msgspec.Struct, frozen=True, kw_only=True):
    """Precision, recall and F1 when keeping detections with score >= threshold.

    One point per distinct score (thinned evenly to at most ``max_points``, always keeping the
    best). Recall is 0 where there is no ground truth. ``best_*`` is the highest-F1 point (the
    highest threshold among ties), computed before thinning; None when there are no detections.
    """

    threshold: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    best_threshold: float | None
    best_f1: float | None
    best_precision: float | None
    best_recall: float | None


def confidence_curve(
    score: FloatArray, is_tp: BoolArray, n_gt: int, max_points: int = 256
) -> ConfidenceCurve:
    """Sweep the confidence threshold over a prefix-consistent (greedy, score-ordered) matching."""
    if score.shape[0] == 0:
        return ConfidenceCurve(
            threshold=(),
            precision=(),
            recall=(),
            f1=(),
            best_threshold=None,
            best_f1=None,
            best_precision=None,
            best_recall=None,
        )
    order = np.argsort(-score, kind="stable")
    s = score[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = np.cumsum(is_tp[order])[ends].astype(np.float64)
    kept = (ends + 1).astype(np.float64)
    precision = tp / kept
    recall = tp / n_gt if n_gt else np.zeros_like(tp)
    f1 = 2 * tp / (kept + n_gt)
    best = int(np.argmax(f1))
    idx = np.arange(ends.shape[0])
    if idx.shape[0] > max_points:
        idx = np.unique(np.r_[np.linspace(0, idx.shape[0] - 1, max_points).round(), best])
        idx = idx.astype(np.int64)
    return ConfidenceCurve(
        threshold=tuple(s[ends][idx].tolist()),
        precision=tuple(precision[idx].tolist()),
        recall=tuple(recall[idx].tolist()),
        f1=tuple(f1[idx].tolist()),
        best_threshold=float(s[ends][best]),
        best_f1=float(f1[best]),
        best_precision=float(precision[best]),
        best_recall=float(recall[best]),
    )
