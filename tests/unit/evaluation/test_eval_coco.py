"""COCO AP parity with pycocotools' COCOeval on random scenes (hypothesis) and edge cases."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from domain.evaluation import coco_evaluate, make_detections, make_ground_truth

pytestmark = pytest.mark.unit

LABELS = ("pedestrian", "cyclist", "animal")

GtRow = tuple[int, str, float, float, float, float]
DetRow = tuple[int, str, float, float, float, float, float]


def reference_stats(gts: list[GtRow], dets: list[DetRow]) -> tuple[float, float, float, float]:
    """Run pycocotools end to end (evaluate, accumulate, summarize) on in-memory COCO objects."""
    cats = [{"id": i + 1, "name": name} for i, name in enumerate(LABELS)]
    cat_id = {name: i + 1 for i, name in enumerate(LABELS)}
    frames = sorted({g[0] for g in gts} | {d[0] for d in dets}) or [0]
    images = [{"id": f} for f in frames]
    anns = [
        {
            "id": i + 1,
            "image_id": f,
            "category_id": cat_id[lab],
            "bbox": [x, y, w, h],
            "area": w * h,
            "iscrowd": 0,
        }
        for i, (f, lab, x, y, w, h) in enumerate(gts)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        coco_gt.createIndex()
        if dets:
            results = [
                {"image_id": f, "category_id": cat_id[lab], "bbox": [x, y, w, h], "score": s}
                for (f, lab, s, x, y, w, h) in dets
            ]
            coco_dt = coco_gt.loadRes(results)
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": images, "annotations": [], "categories": cats}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats: Any = ev.stats
    return float(stats[0]), float(stats[1]), float(stats[2]), float(stats[8])


def ours(gts: list[GtRow], dets: list[DetRow]) -> tuple[float, float, float, float]:
    gt = make_ground_truth(
        frame=[g[0] for g in gts],
        label=[g[1] for g in gts],
        box=np.array([g[2:] for g in gts], dtype=float).reshape(-1, 4),
    )
    det = make_detections(
        frame=[d[0] for d in dets],
        label=[d[1] for d in dets],
        score=[d[2] for d in dets],
        box=np.array([d[3:] for d in dets], dtype=float).reshape(-1, 4),
    )
    s = coco_evaluate(gt, det)
    return tuple(-1.0 if v is None else v for v in (s.ap, s.ap50, s.ap75, s.ar100))  # type: ignore[return-value]


scores = st.one_of(
    st.sampled_from([0.1, 0.5, 0.5, 0.9, 1.0]),
    st.floats(0.0, 1.0, allow_nan=False),
)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[list[GtRow], list[DetRow]]:
    n_frames = draw(st.integers(1, 4))
    frame = st.integers(0, n_frames - 1)
    label = st.sampled_from(LABELS)
    coord = st.integers(0, 24)
    size = st.integers(0, 14)
    raw_gts = draw(st.lists(st.tuples(frame, label, coord, coord, size, size), max_size=14))
    gts: list[GtRow] = [
        (f, lab, float(x), float(y), float(w), float(h)) for f, lab, x, y, w, h in raw_gts
    ]
    # mirrored pairs: a box exactly between two ground truths has equal IoU with both (ties)
    mirrors = draw(
        st.lists(st.tuples(frame, label, coord, coord, size, size, st.integers(1, 4)), max_size=2)
    )
    middles: list[tuple[int, str, float, float, float, float]] = []
    for f, lab, x, y, w, h, shift in mirrors:
        gts.append((f, lab, float(x), float(y), float(w), float(h)))
        gts.append((f, lab, float(x + 2 * shift), float(y), float(w), float(h)))
        middles.append((f, lab, float(x + shift), float(y), float(w), float(h)))
    dets: list[DetRow] = []
    for f, lab, x, y, w, h in gts:
        copies = draw(st.integers(0, 2))
        for _ in range(copies):
            jx, jy, jw, jh = (draw(st.integers(-3, 3)) for _ in range(4))
            relabel = draw(st.booleans()) and draw(st.booleans())
            dets.append(
                (
                    f,
                    draw(label) if relabel else lab,
                    draw(scores),
                    x + jx,
                    y + jy,
                    max(w + jw, 0.0),
                    max(h + jh, 0.0),
                )
            )
    dets.extend((f, lab, draw(scores), x, y, w, h) for f, lab, x, y, w, h in middles)
    extra = draw(st.lists(st.tuples(frame, label, scores, coord, coord, size, size), max_size=10))
    dets.extend(
        (f, lab, s, float(x), float(y), float(w), float(h)) for f, lab, s, x, y, w, h in extra
    )
    perm = draw(st.permutations(range(len(dets))))
    return gts, [dets[i] for i in perm]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_ap_matches_pycocotools(scene: tuple[list[GtRow], list[DetRow]]) -> None:
    gts, dets = scene
    assert ours(gts, dets) == pytest.approx(reference_stats(gts, dets), abs=1e-9)


float_box = st.tuples(
    st.floats(0, 50, allow_nan=False),
    st.floats(0, 50, allow_nan=False),
    st.floats(0, 30, allow_nan=False),
    st.floats(0, 30, allow_nan=False),
)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.sampled_from(LABELS), float_box), max_size=10),
    st.lists(st.tuples(st.integers(0, 2), st.sampled_from(LABELS), scores, float_box), max_size=12),
)
def test_ap_matches_pycocotools_float_boxes(
    raw_gts: list[tuple[int, str, tuple[float, float, float, float]]],
    raw_dets: list[tuple[int, str, float, tuple[float, float, float, float]]],
) -> None:
    gts: list[GtRow] = [(f, lab, *box) for f, lab, box in raw_gts]
    dets: list[DetRow] = [(f, lab, s, *box) for f, lab, s, box in raw_dets]
    assert ours(gts, dets) == pytest.approx(reference_stats(gts, dets), abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_max_100_detections_per_frame_and_class(seed: int) -> None:
    """A cell with 140 detections: COCO keeps only the 100 best-scored (ties by input order)."""
    rng = np.random.default_rng(seed)
    gts: list[GtRow] = []
    dets: list[DetRow] = []
    for f in range(2):
        for _ in range(30):
            x, y = rng.integers(0, 200, 2)
            w, h = rng.integers(5, 40, 2)
            gts.append((f, "pedestrian", float(x), float(y), float(w), float(h)))
        for _ in range(140):
            g = gts[rng.integers(len(gts))]
            jit = rng.integers(-4, 5, 4)
            score = float(rng.choice([0.2, 0.4, 0.6, 0.8]))
            dets.append(
                (f, "pedestrian", score, g[2] + jit[0], g[3] + jit[1], g[4] + jit[2], g[5] + jit[3])
            )
    assert ours(gts, dets) == pytest.approx(reference_stats(gts, dets), abs=1e-9)


def test_equal_iou_ties_go_to_the_last_ground_truth() -> None:
    """The first detection sits between G1 and G2 (IoU 2/3 with each) and takes G2, the later
    one in input order; the second detection equals G2 and overlaps G1 by only 0.43, so at
    IoU 0.5 it stays unmatched (taking G1 first would have given two true positives)."""
    gts: list[GtRow] = [(0, "pedestrian", 8, 0, 10, 10), (0, "pedestrian", 12, 0, 10, 10)]
    dets: list[DetRow] = [
        (0, "pedestrian", 0.9, 10, 0, 10, 10),
        (0, "pedestrian", 0.8, 12, 0, 10, 10),
    ]
    ref = reference_stats(gts, dets)
    assert ref[1] == pytest.approx(51 / 101)  # one TP of two GT at precision 1, then an FP
    assert ours(gts, dets) == pytest.approx(ref, abs=1e-12)
    swapped = [gts[1], gts[0]]  # now the tie goes to the box the second detection cannot use
    assert reference_stats(swapped, dets)[1] == pytest.approx(1.0)
    assert ours(swapped, dets) == pytest.approx(reference_stats(swapped, dets), abs=1e-12)


def test_class_without_ground_truth_is_excluded_and_missed_class_counts_zero() -> None:
    gts: list[GtRow] = [(0, "pedestrian", 0, 0, 10, 10), (0, "cyclist", 20, 20, 10, 10)]
    dets: list[DetRow] = [(0, "pedestrian", 0.9, 0, 0, 10, 10), (0, "animal", 0.8, 40, 40, 5, 5)]
    ap, ap50, ap75, _ = ours(gts, dets)
    # pedestrian: AP 1; cyclist (GT, no detections): AP 0; animal (no GT): excluded.
    assert (ap, ap50, ap75) == pytest.approx((0.5, 0.5, 0.5))
    assert ours(gts, dets) == pytest.approx(reference_stats(gts, dets), abs=1e-12)


def test_no_ground_truth_gives_none() -> None:
    dets: list[DetRow] = [(0, "pedestrian", 0.9, 0, 0, 10, 10)]
    assert ours([], dets) == (-1.0, -1.0, -1.0, -1.0)
    assert reference_stats([], dets) == (-1.0, -1.0, -1.0, -1.0)
