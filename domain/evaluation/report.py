"""One call from ground truth and detections to every figure of an evaluation, plus its verdict."""

from __future__ import annotations

import msgspec
import numpy as np

from domain.evaluation.coco import CocoSummary, coco_state_arrays, summarize
from domain.evaluation.inputs import (
    NO_TRACK,
    BoolArray,
    Detections,
    FloatArray,
    GroundTruth,
    IntArray,
    unify_classes,
)
from domain.evaluation.intervals import Interval, bootstrap_ap, bootstrap_f1, wilson_interval
from domain.evaluation.latency import (
    DistributionSummary,
    matched_latency_ms,
    matched_offset_ms,
    summarize_ms,
)
from domain.evaluation.matching import Pairs, greedy_match_boxes, match_boxes, match_times
from domain.evaluation.metrics import (
    ClassMetrics,
    ConfidenceCurve,
    ConfusionMatrix,
    Counts,
    FrameCounts,
    class_counts,
    confidence_curve,
    confusion_matrix,
    frame_counts,
    make_counts,
)
from domain.evaluation.tracking import TrackingMetrics, tracking_metrics
from domain.evaluation.verdict import Criteria, CriterionResult, Verdict, combine, judge


class EvaluationConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of :func:`evaluate`; ``confidence_threshold`` None keeps every detection."""

    iou_threshold: float = 0.5
    confidence_threshold: float | None = None
    temporal_tolerance_ms: float = 100.0
    confidence_level: float = 0.95
    bootstrap_resamples: int = 2000
    ap_bootstrap_resamples: int = 200
    seed: int = 0
    curve_points: int = 256
    latency_bins: int = 20
    tracking_max_distance: float = 0.5


class EvaluationReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything measured for one session (JSON-encodable with ``msgspec.json.encode``).

    ``counts``, ``per_class``, ``confusion``, ``latency``, ``offset`` and ``tracking`` are at the
    operating point (detections >= confidence threshold, optimal matching at the IoU threshold;
    box-less detections matched by time). ``coco`` and ``curve`` use all detections.
    """

    config: EvaluationConfig
    classes: tuple[str, ...]
    counts: Counts
    precision_interval: Interval
    recall_interval: Interval
    f1_interval: Interval
    per_class: tuple[ClassMetrics, ...]
    coco: CocoSummary
    ap_interval: Interval
    ap50_interval: Interval
    confusion: ConfusionMatrix
    curve: ConfidenceCurve
    latency: DistributionSummary
    offset: DistributionSummary
    tracking: TrackingMetrics | None
    frame_counts: FrameCounts


def _concat(a: Pairs, b: Pairs) -> Pairs:
    return Pairs(
        gt=np.concatenate([a.gt, b.gt]),
        det=np.concatenate([a.det, b.det]),
        value=np.concatenate([a.value, b.value]),
    )


def _two_stage(
    gt: GroundTruth,
    det: Detections,
    gcls: IntArray,
    dcls: IntArray,
    keep: BoolArray,
    config: EvaluationConfig,
) -> Pairs:
    """Boxed detections by IoU, then box-less detections by time against still-unmatched GT.

    Indices are into the full ``gt`` and ``det``. A box-less ground truth can only be matched by
    a box-less detection; rows without a finite timestamp take no part in the temporal stage.
    """
    gb, db = gt.has_box, det.has_box & keep
    gi, di = np.flatnonzero(gb), np.flatnonzero(db)
    spatial = match_boxes(
        gt_frame=gt.frame[gi],
        gt_cls=gcls[gi],
        gt_box=gt.box[gi],
        det_frame=det.frame[di],
        det_cls=dcls[di],
        det_box=det.box[di],
        iou_threshold=config.iou_threshold,
    )
    spatial = Pairs(gt=gi[spatial.gt], det=di[spatial.det], value=spatial.value)
    open_gt = np.ones(len(gt), dtype=np.bool_)
    open_gt[spatial.gt] = False
    tg = np.flatnonzero(open_gt & np.isfinite(gt.time_s))
    td = np.flatnonzero(~det.has_box & keep & np.isfinite(det.time_s))
    temporal = match_times(
        gt_time_s=gt.time_s[tg],
        gt_cls=gcls[tg],
        det_time_s=det.time_s[td],
        det_cls=dcls[td],
        tolerance_ms=config.temporal_tolerance_ms,
    )
    return _concat(spatial, Pairs(gt=tg[temporal.gt], det=td[temporal.det], value=temporal.value))


def operating_point_pairs(
    gt: GroundTruth, det: Detections, config: EvaluationConfig | None = None
) -> tuple[Pairs, BoolArray]:
    """The matching behind ``report.counts`` and which detections were kept (score >= threshold).

    Pair indices are into ``gt`` and ``det``; ``value`` is IoU for boxed detections and the
    signed offset (s) for box-less ones. Same arithmetic as :func:`evaluate`, for callers that
    list per-object outcomes.
    """
    cfg = config or EvaluationConfig()
    _, gcls, dcls = unify_classes(gt, det)
    thr = cfg.confidence_threshold
    keep = np.ones(len(det), dtype=np.bool_) if thr is None else det.score >= thr
    return _two_stage(gt, det, gcls, dcls, keep, cfg), keep


def _curve(
    gt: GroundTruth, det: Detections, gcls: IntArray, dcls: IntArray, config: EvaluationConfig
) -> ConfidenceCurve:
    gb, db = gt.has_box, det.has_box
    pairs = greedy_match_boxes(
        gt_frame=gt.frame[gb],
        gt_cls=gcls[gb],
        gt_box=gt.box[gb],
        det_frame=det.frame[db],
        det_cls=dcls[db],
        det_score=det.score[db],
        det_box=det.box[db],
        iou_threshold=config.iou_threshold,
    )
    is_tp = np.zeros(int(db.sum()), dtype=np.bool_)
    is_tp[pairs.det] = True
    return confidence_curve(det.score[db], is_tp, int(gb.sum()), config.curve_points)


def evaluate(
    gt: GroundTruth, det: Detections, config: EvaluationConfig | None = None
) -> EvaluationReport:
    """Score one session's detections against ground truth (pure; deterministic given the seed)."""
    cfg = config or EvaluationConfig()
    classes, gcls, dcls = unify_classes(gt, det)
    n_cls = len(classes)
    thr = cfg.confidence_threshold
    keep = np.ones(len(det), dtype=np.bool_) if thr is None else det.score >= thr
    pairs = _two_stage(gt, det, gcls, dcls, keep, cfg)
    n_kept = int(keep.sum())
    tp = len(pairs)
    counts = make_counts(tp, n_kept - tp, len(gt) - tp)

    kept_idx = np.flatnonzero(keep)
    remap = np.full(len(det), -1, dtype=np.int64)
    remap[kept_idx] = np.arange(n_kept)
    kept_pairs = Pairs(gt=pairs.gt, det=remap[pairs.det], value=pairs.value)
    fc = frame_counts(gt.frame, det.frame[kept_idx], kept_pairs, det.frame)

    gb, db = gt.has_box, det.has_box
    state = coco_state_arrays(
        classes=classes,
        gt_frame=gt.frame[gb],
        gt_cls=gcls[gb],
        gt_box=gt.box[gb],
        det_frame=det.frame[db],
        det_cls=dcls[db],
        det_score=det.score[db],
        det_box=det.box[db],
    )
    coco = summarize(state)
    per_cls = class_counts(gcls, dcls[kept_idx], kept_pairs, n_cls)
    per_class = tuple(
        ClassMetrics(
            label=label,
            n_gt=per_cls[k].tp + per_cls[k].fn,
            n_det=per_cls[k].tp + per_cls[k].fp,
            counts=per_cls[k],
            ap=coco.per_class[k].ap,
            ap50=coco.per_class[k].ap50,
            ap75=coco.per_class[k].ap75,
        )
        for k, label in enumerate(classes)
    )
    agnostic = _two_stage(gt, det, np.zeros_like(gcls), np.zeros_like(dcls), keep, cfg)
    confusion = confusion_matrix(
        gcls,
        dcls[kept_idx],
        Pairs(gt=agnostic.gt, det=remap[agnostic.det], value=agnostic.value),
        classes,
    )
    ap_iv = bootstrap_ap(
        state,
        n_resamples=cfg.ap_bootstrap_resamples,
        confidence=cfg.confidence_level,
        seed=cfg.seed,
    )
    has_tracks = bool((gt.track_id != NO_TRACK).any() and (det.track_id[keep] != NO_TRACK).any())
    tracking = (
        tracking_metrics(
            gt,
            det,
            max_distance=cfg.tracking_max_distance,
            min_score=-np.inf if thr is None else thr,
        )
        if has_tracks
        else None
    )
    level = cfg.confidence_level
    return EvaluationReport(
        config=cfg,
        classes=classes,
        counts=counts,
        precision_interval=wilson_interval(tp, n_kept, level),
        recall_interval=wilson_interval(tp, len(gt), level),
        f1_interval=bootstrap_f1(
            fc, n_resamples=cfg.bootstrap_resamples, confidence=level, seed=cfg.seed
        ),
        per_class=per_class,
        coco=coco,
        ap_interval=ap_iv.ap,
        ap50_interval=ap_iv.ap50,
        confusion=confusion,
        curve=_curve(gt, det, gcls, dcls, cfg),
        latency=_summary(matched_latency_ms(gt.time_s, det.captured_at_s, pairs), cfg),
        offset=_summary(matched_offset_ms(gt.time_s, det.time_s, pairs), cfg),
        tracking=tracking,
        frame_counts=fc,
    )


def _summary(values: FloatArray, cfg: EvaluationConfig) -> DistributionSummary:
    return summarize_ms(values, bins=cfg.latency_bins, confidence=cfg.confidence_level)


def verdict(report: EvaluationReport, criteria: Criteria) -> Verdict:
    """Judge a report against acceptance criteria (see :mod:`domain.evaluation.verdict`)."""
    results: list[CriterionResult] = []
    c = report.counts
    if criteria.min_precision is not None:
        results.append(
            judge(
                "precision",
                criteria.min_precision,
                c.precision,
                report.precision_interval,
                at_least=True,
            )
        )
    if criteria.min_recall is not None:
        results.append(
            judge("recall", criteria.min_recall, c.recall, report.recall_interval, at_least=True)
        )
    if criteria.min_f1 is not None:
        results.append(judge("f1", criteria.min_f1, c.f1, report.f1_interval, at_least=True))
    if criteria.max_latency_p95_ms is not None:
        lat = report.latency
        results.append(
            judge(
                "latency_p95_ms",
                criteria.max_latency_p95_ms,
                lat.p95_ms,
                lat.p95_interval,
                at_least=False,
            )
        )
    return combine(tuple(results))
