"""Running (batch by batch) figures equal the full evaluation's once every frame has arrived."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.evaluation import EvaluationConfig, evaluate, make_detections, make_ground_truth
from domain.running_evaluation import DetectionBatch, RunningEvaluation

pytestmark = pytest.mark.unit
CLASSES = ("pedestrian", "cyclist", "animal")


def scene(seed: int, n_frames: int) -> tuple[Any, Any, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    n_gt = int(rng.integers(0, 4 * n_frames + 1))
    gt_frame = rng.integers(0, n_frames, n_gt)
    gt_box = np.c_[rng.uniform(0, 100, (n_gt, 2)), rng.uniform(5, 40, (n_gt, 2))].round(0)
    gt_label = rng.choice(CLASSES, n_gt)
    # detections: jittered copies of some GT plus strays, some relabelled
    pick = rng.random(n_gt) < 0.7
    jitter = gt_box[pick] + rng.normal(0, 3, (int(pick.sum()), 4))
    jitter[:, 2:] = np.abs(jitter[:, 2:]) + 1
    n_fp = int(rng.integers(0, n_frames + 1))
    det_frame = np.r_[gt_frame[pick], rng.integers(0, n_frames, n_fp)]
    det_box = np.r_[jitter, np.c_[rng.uniform(0, 100, (n_fp, 2)), rng.uniform(5, 40, (n_fp, 2))]]
    det_label = np.r_[gt_label[pick], rng.choice([*CLASSES, "other"], n_fp)]
    det_score = rng.uniform(0, 1, det_frame.shape[0]).round(2)
    gt = make_ground_truth(frame=gt_frame, label=list(gt_label), box=gt_box, time_s=gt_frame / 10)
    det = make_detections(
        frame=det_frame, label=list(det_label), score=det_score, box=det_box, time_s=det_frame / 10
    )
    cols = {"frame": det_frame, "label": det_label, "score": det_score, "box": det_box}
    return gt, det, cols


def coded(names: Any) -> dict[str, Any]:
    classes, codes = np.unique(np.asarray(names, dtype=str), return_inverse=True)
    return {"label": codes.astype(np.int64).reshape(-1), "classes": tuple(classes.tolist())}


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_frames=st.integers(1, 30),
    n_batches=st.integers(1, 5),
    threshold=st.sampled_from([None, 0.3]),
)
def test_batches_add_up_to_the_full_evaluation(
    seed: int, n_frames: int, n_batches: int, threshold: float | None
) -> None:
    gt, det, cols = scene(seed, n_frames)
    config = EvaluationConfig(
        confidence_threshold=threshold, bootstrap_resamples=0, ap_bootstrap_resamples=0
    )
    full = evaluate(gt, det, config).counts
    running = RunningEvaluation(gt, config)
    cuts = np.linspace(0, n_frames, n_batches + 1).round().astype(int)
    for lo, hi in pairwise(cuts.tolist()):
        sel = (cols["frame"] >= lo) & (cols["frame"] < hi)
        counts = running.add(
            DetectionBatch(
                frames=np.arange(lo, hi),
                frame=cols["frame"][sel],
                **coded(cols["label"][sel]),
                score=cols["score"][sel],
                box=cols["box"][sel],
                time_s=cols["frame"][sel] / 10,
            )
        )
    assert (counts.tp, counts.fp, counts.fn) == (full.tp, full.fp, full.fn)


def test_recall_counts_only_frames_seen_so_far() -> None:
    gt = make_ground_truth(
        frame=[0, 1, 2], label=["pedestrian"] * 3, box=[(0, 0, 10, 10)] * 3, time_s=[0.0, 0.1, 0.2]
    )
    running = RunningEvaluation(gt)
    counts = running.add(
        DetectionBatch(
            frames=np.array([0]),
            frame=np.array([0]),
            **coded(["pedestrian"]),
            score=np.array([0.9]),
            box=np.array([[0.0, 0, 10, 10]]),
            time_s=np.array([0.0]),
        )
    )
    assert (counts.tp, counts.fp, counts.fn) == (1, 0, 0)
    assert counts.recall == 1.0
    empty = np.zeros(0)
    counts = running.add(
        DetectionBatch(
            frames=np.array([1]),
            frame=np.zeros(0, np.int64),
            **coded([]),
            score=empty,
            box=np.zeros((0, 4)),
            time_s=empty,
        )
    )
    assert (counts.tp, counts.fn) == (1, 1) and counts.recall == 0.5
