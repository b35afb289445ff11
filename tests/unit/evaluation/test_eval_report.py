"""End-to-end evaluation on a hand-checked scene, JSON round trip and row builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np
import pytest

from domain.evaluation import (
    DetectedObject,
    Detections,
    EvaluationConfig,
    EvaluationReport,
    GroundTruth,
    GroundTruthObject,
    detections_from_objects,
    evaluate,
    ground_truth_from_objects,
    make_counts,
    make_detections,
    make_ground_truth,
)

pytestmark = pytest.mark.unit
NAN4 = [float("nan")] * 4


def scene() -> tuple[GroundTruth, Detections]:
    """f0: pedestrian A, cyclist B; f1: pedestrian C; f2: a box-less animal event.

    Detections: A found (0.9); B's box found but called pedestrian (0.8); a stray pedestrian in
    f1 (0.3); a box-less animal 30 ms after the animal event (0.7).
    """
    gt = make_ground_truth(
        frame=[0, 0, 1, 2],
        label=["pedestrian", "cyclist", "pedestrian", "animal"],
        box=[[0, 0, 10, 10], [50, 50, 10, 10], [0, 0, 10, 10], NAN4],
        time_s=[0.0, 0.0, 0.1, 0.2],
    )
    det = make_detections(
        frame=[0, 0, 1, 2],
        label=["pedestrian", "pedestrian", "pedestrian", "animal"],
        score=[0.9, 0.8, 0.3, 0.7],
        box=[[0, 0, 10, 10], [50, 50, 10, 10], [100, 100, 10, 10], NAN4],
        time_s=[0.0, 0.0, 0.1, 0.23],
        captured_at_s=[0.05, 0.08, float("nan"), 0.3],
    )
    return gt, det


def test_hand_checked_scene() -> None:
    gt, det = scene()
    r = evaluate(gt, det, EvaluationConfig(bootstrap_resamples=200, ap_bootstrap_resamples=50))
    assert r.classes == ("animal", "cyclist", "pedestrian")
    assert r.counts == make_counts(2, 2, 2)
    assert r.counts.accuracy == pytest.approx(2 / 6)
    per = {c.label: c.counts for c in r.per_class}
    assert (per["animal"].tp, per["animal"].fp, per["animal"].fn) == (1, 0, 0)
    assert (per["cyclist"].tp, per["cyclist"].fp, per["cyclist"].fn) == (0, 0, 1)
    assert (per["pedestrian"].tp, per["pedestrian"].fp, per["pedestrian"].fn) == (1, 2, 1)
    assert r.confusion.labels == ("animal", "cyclist", "pedestrian", "background")
    assert r.confusion.matrix == (
        (1, 0, 0, 0),
        (0, 0, 1, 0),
        (0, 0, 1, 1),
        (0, 0, 1, 0),
    )
    # COCO: pedestrian AP = 51/101 (recall 0.5 at precision 1), cyclist 0, animal has no boxed GT.
    assert r.coco.ap == pytest.approx(51 / 202)
    assert r.coco.ap50 == pytest.approx(51 / 202)
    assert r.per_class[0].ap is None
    # latency: A 50 ms, animal 100 ms; offsets 0 and 30 ms
    assert r.latency.count == 2
    assert r.latency.mean_ms == pytest.approx(75.0)
    assert r.latency.max_ms == pytest.approx(100.0)
    assert r.offset.max_ms == pytest.approx(30.0)
    assert sum(r.latency.histogram.counts) == 2
    # curve over boxed detections: best F1 at 0.9 (1 TP of 3 boxed GT)
    assert r.curve.best_threshold == 0.9
    assert r.curve.best_f1 == pytest.approx(0.5)
    assert r.curve.f1 == pytest.approx((0.5, 0.4, 1 / 3))
    assert r.tracking is None
    assert r.frame_counts.frames == (0, 1, 2)
    fc = r.frame_counts
    assert (fc.tp, fc.fp, fc.fn) == ((1, 0, 1), (1, 1, 0), (1, 1, 0))
    assert r.precision_interval.low is not None and r.precision_interval.low < 0.5


def test_confidence_threshold_and_tolerance() -> None:
    gt, det = scene()
    cfg = EvaluationConfig(
        confidence_threshold=0.5,
        temporal_tolerance_ms=20.0,
        bootstrap_resamples=50,
        ap_bootstrap_resamples=10,
    )
    r = evaluate(gt, det, cfg)
    # the 0.3 stray is dropped; the animal is 30 ms off, outside 20 ms
    assert r.counts == make_counts(1, 2, 3)
    # AP ignores the operating threshold
    assert r.coco.ap == pytest.approx(51 / 202)


def test_report_round_trips_through_json() -> None:
    gt, det = scene()
    r = evaluate(gt, det, EvaluationConfig(bootstrap_resamples=50, ap_bootstrap_resamples=10))
    again = msgspec.json.decode(msgspec.json.encode(r), type=EvaluationReport)
    assert again == r


def test_row_builders_with_datetime_capture() -> None:
    epoch = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    gt = ground_truth_from_objects(
        [
            GroundTruthObject(
                frame=3, label="pedestrian", time_s=0.1, box=(0, 0, 10, 10), iscrowd=True
            ),
            GroundTruthObject(frame=3, label="cyclist", time_s=0.1, track_id=4),
        ]
    )
    det = detections_from_objects(
        [
            DetectedObject(
                frame=3,
                label="pedestrian",
                confidence=0.9,
                time_s=0.1,
                box=(1, 0, 10, 10),
                captured_at=epoch + timedelta(milliseconds=250),
            )
        ],
        epoch=epoch,
    )
    assert np.isnan(gt.box[1]).all() and gt.track_id.tolist() == [-1, 4]
    assert det.captured_at_s.tolist() == [0.25]
    r = evaluate(gt, det, EvaluationConfig(bootstrap_resamples=20, ap_bootstrap_resamples=5))
    assert r.counts.tp == 1 and r.counts.fn == 1  # iscrowd is ignored: a regular object
    assert r.latency.p50_ms == pytest.approx(150.0)
    with pytest.raises(ValueError, match="epoch"):
        detections_from_objects(
            [DetectedObject(frame=0, label="x", confidence=1.0, time_s=0.0, captured_at=epoch)]
        )


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        make_ground_truth(frame=[0], label=["a"], box=[[0, 0, -1, 2]])
    with pytest.raises(ValueError, match="NaN"):
        make_ground_truth(frame=[0], label=["a"], box=[[0, float("nan"), 1, 2]])
    with pytest.raises(ValueError, match="finite"):
        make_detections(frame=[0], label=["a"], score=[float("nan")])


def test_empty_inputs() -> None:
    gt = make_ground_truth(frame=[], label=[])
    det = make_detections(frame=[], label=[], score=[])
    r = evaluate(gt, det)
    assert r.counts == make_counts(0, 0, 0)
    assert r.coco.ap is None and r.curve.best_threshold is None and r.latency.count == 0
    assert r.f1_interval.low is None


def test_tracking_is_reported_when_both_sides_have_track_ids() -> None:
    gt = make_ground_truth(
        frame=[0, 1], label=["pedestrian"] * 2, box=[[0, 0, 10, 10]] * 2, track_id=[1, 1]
    )
    det = make_detections(
        frame=[0, 1],
        label=["pedestrian"] * 2,
        score=[0.9, 0.9],
        box=[[0, 0, 10, 10]] * 2,
        track_id=[7, 8],
    )
    r = evaluate(gt, det, EvaluationConfig(bootstrap_resamples=20, ap_bootstrap_resamples=5))
    assert r.tracking is not None
    assert r.tracking.id_switches == 1
    assert r.tracking.mota == pytest.approx(0.5)
