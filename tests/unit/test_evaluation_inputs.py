"""Ground truth from annotations (tracks interpolated), evaluation events in the codec, SVGs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from uuid import uuid4

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.charts import confusion_svg, pr_curve_svg
from commands.codec import MsgspecMapper
from commands.evaluation_inputs import ground_truth_of, unique_tracks
from domain.annotations import AnnotationState, BoundingBox
from domain.evaluation import (
    EvaluationConfig,
    EvaluationReport,
    evaluate,
    make_detections,
    make_ground_truth,
)
from domain.evaluations import (
    Comparison,
    DetectionsPin,
    Evaluation,
    GroundTruthPin,
    PinnedAnnotation,
    Status,
)
from domain.tracks import interpolate_track

pytestmark = pytest.mark.unit
VIDEO = uuid4()


def state(frame: int, box: BoundingBox | None, track: str | None, **kw: object) -> AnnotationState:
    values: dict[str, object] = {
        "id": uuid4(),
        "video_id": VIDEO,
        "version": 1,
        "frame_number": frame,
        "timestamp": frame / 10,
        "end_timestamp": None,
        "vru_type": "cyclist",
        "box": box,
        "occluded": False,
        "truncated": False,
        "difficult": False,
        "validated": False,
        "deleted": False,
        "source": "manual",
        "detection_id": track,
        "annotator": None,
        "notes": None,
        **kw,
    }
    return AnnotationState(**values)  # type: ignore[arg-type]


def test_track_keyframes_become_a_box_on_every_frame_between() -> None:
    a = state(0, BoundingBox(0, 0, 10, 10), "t1")
    b = state(4, BoundingBox(40, 0, 10, 10), "t1")
    gone = state(6, None, "t1")  # out of view: nothing interpolated after it
    back = state(9, BoundingBox(0, 0, 10, 10), "t1")
    loose = state(2, BoundingBox(5, 5, 5, 5), None)
    event = state(3, None, None)  # a box-less event, matched by time
    gt = ground_truth_of(
        [a, b, gone, back, loose, event],
        track_of=lambda x: x.detection_id,
        interpolate=interpolate_track,
    )
    frames = gt.gt.frame.tolist()
    assert frames == [0, 1, 2, 2, 3, 3, 4, 9]
    assert len(gt.pins) == 6
    interpolated = gt.refs[frames.index(1)]
    assert interpolated == f"{a.id}@1"
    assert gt.gt.box[frames.index(1)].tolist() == [10.0, 0.0, 10.0, 10.0]
    assert (gt.gt.track_id[np.array(frames) == 9] == gt.gt.track_id[0]).all()
    assert np.isnan(gt.gt.box[gt.refs.index(str(event.id)), 0])


def test_unvalidated_detector_candidates_and_deleted_boxes_are_not_truth() -> None:
    box = BoundingBox(0, 0, 10, 10)
    kept = state(0, box, None, source="detector", validated=True)
    difficult = state(3, box, None, source="imported", difficult=True)
    gt = ground_truth_of(
        [
            kept,
            state(1, box, None, source="detector"),
            state(2, box, None, deleted=True),
            difficult,
        ]
    )
    assert gt.gt.frame.tolist() == [0, 3]  # difficult boxes count: no ignore regions
    assert set(gt.pins) == {PinnedAnnotation(kept.id, 1), PinnedAnnotation(difficult.id, 1)}


def small_report() -> EvaluationReport:
    gt = make_ground_truth(frame=[0, 1], label=["pedestrian", "cyclist"], box=[(0, 0, 9, 9)] * 2)
    det = make_detections(
        frame=[0, 1, 1],
        label=["pedestrian", "pedestrian", "cyclist"],
        score=[0.9, 0.3, 0.8],
        box=[(0, 0, 9, 9), (50, 50, 9, 9), (1, 1, 9, 9)],
    )
    return evaluate(gt, det, EvaluationConfig(bootstrap_resamples=50, ap_bootstrap_resamples=20))


def test_evaluation_events_round_trip_through_the_codec() -> None:
    report = small_report()
    evaluation = Evaluation._create(
        Evaluation.Requested,
        id=uuid4(),
        session_id=uuid4(),
        project_id=None,
        video_id=uuid4(),
        config=EvaluationConfig(),
        ground_truth=GroundTruthPin(position=7, annotations=(PinnedAnnotation(uuid4(), 3),)),
        detections=DetectionsPin(count=3),
    )
    row = Comparison(Status.TP, 0, 0.0, "a", "pedestrian", "d", "pedestrian", 0.9, 1.0, None)
    evaluation.record(report, None, [row])
    mapper = MsgspecMapper()
    for event in evaluation.collect_events():
        back = mapper.to_domain_event(mapper.to_stored_event(event))
        assert vars(back) == vars(event)


def test_charts_are_well_formed_svg() -> None:
    report = small_report()
    for svg in (pr_curve_svg(report, "run <1>"), confusion_svg(report, "run & co")):
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
        assert root.find("{http://www.w3.org/2000/svg}title") is not None


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n_gt=st.integers(0, 12),
    n_det=st.integers(0, 12),
    boxless=st.booleans(),
    tracks=st.booleans(),
    threshold=st.sampled_from([None, 0.5]),
)
def test_any_report_survives_the_event_store_exactly(
    seed: int, n_gt: int, n_det: int, boxless: bool, tracks: bool, threshold: float | None
) -> None:
    """A NaN would be stored as null and could not be read back: every figure must be a number
    or None."""
    rng = np.random.default_rng(seed)

    def boxes(n: int) -> object:
        if boxless:
            return None
        return np.c_[rng.integers(0, 50, (n, 2)), rng.integers(1, 30, (n, 2))].astype(float)

    labels = ["pedestrian", "cyclist"]
    gt_frames = rng.integers(0, 4, n_gt)
    det_frames = rng.integers(0, 4, n_det)
    gt = make_ground_truth(
        frame=gt_frames,
        label=rng.choice(labels, n_gt).tolist(),
        box=boxes(n_gt),
        time_s=rng.uniform(0, 1, n_gt),
        track_id=unique_tracks(gt_frames.tolist(), list(range(n_gt)), [0.0] * n_gt)
        if tracks
        else None,
    )
    det = make_detections(
        frame=det_frames,
        label=rng.choice(labels, n_det).tolist(),
        score=rng.uniform(0, 1, n_det).round(2),
        box=boxes(n_det),
        time_s=rng.uniform(0, 1, n_det),
        captured_at_s=rng.uniform(0, 2, n_det),
        track_id=unique_tracks(det_frames.tolist(), [i % 3 for i in range(n_det)], [0.0] * n_det)
        if tracks
        else None,
    )
    report = evaluate(
        gt,
        det,
        EvaluationConfig(
            confidence_threshold=threshold, bootstrap_resamples=30, ap_bootstrap_resamples=10
        ),
    )
    evaluation = Evaluation._create(
        Evaluation.Requested,
        id=uuid4(),
        session_id=uuid4(),
        project_id=None,
        video_id=None,
        config=report.config,
        ground_truth=GroundTruthPin(position=1, annotations=()),
        detections=DetectionsPin(count=n_det),
    )
    evaluation.record(report, None, [])
    mapper = MsgspecMapper()
    for event in evaluation.collect_events():
        back = mapper.to_domain_event(mapper.to_stored_event(event))
        assert vars(back) == vars(event)


def test_a_track_repeated_within_a_frame_keeps_only_its_best_row() -> None:
    assert unique_tracks([0, 0, 0, 1], [7, 7, -1, 7], [-0.2, -0.9, 0.0, -0.1]) == [-1, 7, -1, 7]
    two_keyframes = [
        state(0, BoundingBox(0, 0, 10, 10), "t"),
        state(0, BoundingBox(1, 0, 10, 10), "t"),
        state(2, BoundingBox(2, 0, 10, 10), "t"),
    ]
    gt = ground_truth_of(
        two_keyframes, track_of=lambda x: x.detection_id, interpolate=interpolate_track
    )
    on_frame_0 = gt.gt.track_id[gt.gt.frame == 0].tolist()
    assert sorted(on_frame_0) == [-1, 0] and len(gt.gt) == 4
