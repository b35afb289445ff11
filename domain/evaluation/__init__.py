"""Pure evaluation engine for VRU detection models on video: matching, metrics, uncertainty.

No I/O: inputs are columnar numpy tables (:class:`GroundTruth`, :class:`Detections`), results are
frozen ``msgspec.Struct`` values that encode to JSON. Only numpy, scipy and msgspec are used.
"""

from domain.evaluation.boxes import iou_matrix, iou_pairs
from domain.evaluation.coco import (
    IOU_THRESHOLDS,
    MAX_DETECTIONS,
    RECALL_THRESHOLDS,
    ClassAP,
    CocoState,
    CocoSummary,
    coco_evaluate,
    coco_state,
    summarize,
)
from domain.evaluation.inputs import (
    NO_TRACK,
    DetectedObject,
    Detections,
    GroundTruth,
    GroundTruthObject,
    detections_from_objects,
    ground_truth_from_objects,
    make_detections,
    make_ground_truth,
    unify_classes,
)
from domain.evaluation.intervals import (
    ApIntervals,
    Interval,
    PairedComparison,
    bootstrap_ap,
    bootstrap_f1,
    paired_f1_comparison,
    quantile_interval,
    wilson_interval,
)
from domain.evaluation.latency import DistributionSummary, Histogram, summarize_ms
from domain.evaluation.matching import Pairs, greedy_match_boxes, match_boxes, match_times
from domain.evaluation.metrics import (
    BACKGROUND,
    ClassMetrics,
    ConfidenceCurve,
    ConfusionMatrix,
    Counts,
    FrameCounts,
    confidence_curve,
    make_counts,
)
from domain.evaluation.report import (
    EvaluationConfig,
    EvaluationReport,
    evaluate,
    operating_point_pairs,
    verdict,
)
from domain.evaluation.tracking import TrackingMetrics, clear_mot, tracking_metrics
from domain.evaluation.verdict import Criteria, CriterionResult, Outcome, Verdict, judge

__all__ = [
    "BACKGROUND",
    "IOU_THRESHOLDS",
    "MAX_DETECTIONS",
    "NO_TRACK",
    "RECALL_THRESHOLDS",
    "ApIntervals",
    "ClassAP",
    "ClassMetrics",
    "CocoState",
    "CocoSummary",
    "ConfidenceCurve",
    "ConfusionMatrix",
    "Counts",
    "Criteria",
    "CriterionResult",
    "DetectedObject",
    "Detections",
    "DistributionSummary",
    "EvaluationConfig",
    "EvaluationReport",
    "FrameCounts",
    "GroundTruth",
    "GroundTruthObject",
    "Histogram",
    "Interval",
    "Outcome",
    "PairedComparison",
    "Pairs",
    "TrackingMetrics",
    "Verdict",
    "bootstrap_ap",
    "bootstrap_f1",
    "clear_mot",
    "coco_evaluate",
    "coco_state",
    "confidence_curve",
    "detections_from_objects",
    "evaluate",
    "greedy_match_boxes",
    "ground_truth_from_objects",
    "iou_matrix",
    "iou_pairs",
    "judge",
    "make_counts",
    "make_detections",
    "make_ground_truth",
    "match_boxes",
    "match_times",
    "operating_point_pairs",
    "paired_f1_comparison",
    "quantile_interval",
    "summarize",
    "summarize_ms",
    "tracking_metrics",
    "unify_classes",
    "verdict",
    "wilson_interval",
]
