"""Benchmark: Verity's COCO AP engine vs pycocotools (and faster-coco-eval when installed).

Data: 10k frames x 20 ground-truth boxes x 20 detections, 5 classes, seeded. Detections are 15
jittered copies of ground-truth boxes per frame (10% relabelled) plus 5 random false positives;
scores are drawn higher for the jittered copies. Every implementation gets the same data; COCO
objects are built before timing. Timed: ours = ``coco_evaluate`` (IoU, matching at the ten IoU
thresholds, accumulation, AP/AP50/AP75); pycocotools = ``evaluate() + accumulate()`` restricted to
what we compute (area range "all", maxDets=[100]) so both do the same work; pycocotools with its
default parameters (4 area ranges x 3 maxDets, ~4x the work) is timed once for reference.
Results must agree to 1e-9 or the script fails.

Run: ``uv run --group bench python bench/bench_evaluation.py [--frames N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from domain.evaluation import coco_evaluate, make_detections, make_ground_truth

CLASSES = ("pedestrian", "cyclist", "motorcyclist", "scooter_rider", "animal")


def make_data(
    seed: int, n_frames: int, n_gt: int = 20, n_tp: int = 15, n_fp: int = 5
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n = n_frames * n_gt
    gt_frame = np.repeat(np.arange(n_frames), n_gt)
    wh = rng.uniform(16, 240, (n, 2)).round(1)
    xy = (rng.uniform(0, 1, (n, 2)) * (np.array([1920.0, 1080.0]) - wh)).round(1)
    gt_box = np.c_[xy, wh]
    gt_cls = rng.integers(0, len(CLASSES), n)

    pick = np.argsort(rng.random((n_frames, n_gt)), axis=1)[:, :n_tp]
    src = (pick + np.arange(n_frames)[:, None] * n_gt).ravel()
    m = src.shape[0]
    jit_wh = gt_box[src, 2:] * np.exp(rng.normal(0, 0.08, (m, 2)))
    jit_xy = gt_box[src, :2] + rng.normal(0, 0.05, (m, 2)) * gt_box[src, 2:]
    tp_box = np.c_[jit_xy, jit_wh].round(1)
    tp_cls = np.where(rng.random(m) < 0.9, gt_cls[src], rng.integers(0, len(CLASSES), m))
    tp_score = rng.beta(5, 2, m).round(3)
    tp_frame = gt_frame[src]

    k = n_frames * n_fp
    fp_wh = rng.uniform(16, 240, (k, 2)).round(1)
    fp_xy = (rng.uniform(0, 1, (k, 2)) * (np.array([1920.0, 1080.0]) - fp_wh)).round(1)
    fp_box = np.c_[fp_xy, fp_wh]
    fp_cls = rng.integers(0, len(CLASSES), k)
    fp_score = rng.beta(2, 5, k).round(3)
    fp_frame = np.repeat(np.arange(n_frames), n_fp)

    det_frame = np.r_[tp_frame, fp_frame]
    order = np.argsort(det_frame, kind="stable")
    return {
        "gt_frame": gt_frame,
        "gt_cls": gt_cls,
        "gt_box": gt_box,
        "det_frame": det_frame[order],
        "det_cls": np.r_[tp_cls, fp_cls][order],
        "det_box": np.r_[tp_box, fp_box][order],
        "det_score": np.r_[tp_score, fp_score][order],
    }


def coco_objects(data: dict[str, Any], coco_cls: Any = COCO) -> tuple[Any, Any]:
    images = [{"id": int(f)} for f in np.unique(np.r_[data["gt_frame"], data["det_frame"]])]
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]
    anns = [
        {
            "id": i + 1,
            "image_id": int(f),
            "category_id": int(c) + 1,
            "bbox": [float(v) for v in b],
            "area": float(b[2] * b[3]),
            "iscrowd": 0,
        }
        for i, (f, c, b) in enumerate(
            zip(data["gt_frame"], data["gt_cls"], data["gt_box"], strict=True)
        )
    ]
    results = [
        {
            "image_id": int(f),
            "category_id": int(c) + 1,
            "bbox": [float(v) for v in b],
            "score": float(s),
        }
        for f, c, b, s in zip(
            data["det_frame"], data["det_cls"], data["det_box"], data["det_score"], strict=True
        )
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_cls()
        gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        gt.createIndex()
        dt = gt.loadRes(results)
    return gt, dt


def stats_from_eval(ev: Any) -> tuple[float, float, float]:
    """COCOeval.summarize's logic for stats[0:3] on whatever params were evaluated."""
    p = ev.params
    precision = ev.eval["precision"]
    a = list(p.areaRngLbl).index("all")
    m = list(p.maxDets).index(100)
    s = precision[:, :, :, a, m]
    out = []
    for t in (None, 0.5, 0.75):
        x = s if t is None else s[np.where(t == p.iouThrs)[0]]
        out.append(float(np.mean(x[x > -1])) if (x > -1).any() else -1.0)
    return out[0], out[1], out[2]


def run_cocoeval(gt: Any, dt: Any, evaluator: Any, restricted: bool) -> tuple[float, float, float]:
    with contextlib.redirect_stdout(io.StringIO()):
        ev = evaluator(gt, dt, "bbox")
        if restricted:
            ev.params.areaRng = [[0**2, 1e5**2]]
            ev.params.areaRngLbl = ["all"]
            ev.params.maxDets = [100]
        ev.evaluate()
        ev.accumulate()
    return stats_from_eval(ev)


def timed(
    fn: Callable[[], tuple[float, float, float]], repeats: int
) -> tuple[float, tuple[float, float, float]]:
    times = []
    result = (0.0, 0.0, 0.0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--skip-default-params", action="store_true")
    args = parser.parse_args()

    data = make_data(args.seed, args.frames)
    print(
        f"data: {args.frames} frames, {data['gt_frame'].shape[0]} GT, "
        f"{data['det_frame'].shape[0]} detections, {len(CLASSES)} classes"
    )
    gt = make_ground_truth(
        frame=data["gt_frame"], label=data["gt_cls"], box=data["gt_box"], classes=CLASSES
    )
    det = make_detections(
        frame=data["det_frame"],
        label=data["det_cls"],
        score=data["det_score"],
        box=data["det_box"],
        classes=CLASSES,
    )

    def ours() -> tuple[float, float, float]:
        s = coco_evaluate(gt, det)
        assert s.ap is not None and s.ap50 is not None and s.ap75 is not None
        return s.ap, s.ap50, s.ap75

    coco_gt, coco_dt = coco_objects(data)
    t_ours, r_ours = timed(ours, max(args.repeats, 5))
    t_ref, r_ref = timed(lambda: run_cocoeval(coco_gt, coco_dt, COCOeval, True), args.repeats)
    diff = max(abs(a - b) for a, b in zip(r_ours, r_ref, strict=True))
    print(f"ours        ap/ap50/ap75 = {r_ours[0]:.12f} {r_ours[1]:.12f} {r_ours[2]:.12f}")
    print(f"pycocotools ap/ap50/ap75 = {r_ref[0]:.12f} {r_ref[1]:.12f} {r_ref[2]:.12f}")
    print(f"max |difference| = {diff:.3e}")
    assert diff <= 1e-9, "results disagree with pycocotools"
    print(f"ours (coco_evaluate), median of {max(args.repeats, 5)}: {t_ours:8.3f} s")
    print(
        f"pycocotools evaluate+accumulate (area=all, maxDets=[100]), median of {args.repeats}: "
        f"{t_ref:8.3f} s  -> ours is {t_ref / t_ours:6.1f}x faster"
    )
    if not args.skip_default_params:
        t_def, r_def = timed(lambda: run_cocoeval(coco_gt, coco_dt, COCOeval, False), 1)
        assert max(abs(a - b) for a, b in zip(r_ours, r_def, strict=True)) <= 1e-9
        print(
            f"pycocotools evaluate+accumulate (default params: 4 areas x 3 maxDets), 1 run: "
            f"{t_def:8.3f} s  -> {t_def / t_ours:6.1f}x"
        )
    try:
        from faster_coco_eval import COCO as FCOCO  # noqa: PLC0415 - optional dependency
        from faster_coco_eval import COCOeval_faster  # noqa: PLC0415
    except ImportError:
        print("faster-coco-eval: not installed (uv run --group bench ...)")
        return
    f_gt, f_dt = coco_objects(data, FCOCO)
    t_fast, r_fast = timed(lambda: run_cocoeval(f_gt, f_dt, COCOeval_faster, True), args.repeats)
    fdiff = max(abs(a - b) for a, b in zip(r_ours, r_fast, strict=True))
    print(
        f"faster-coco-eval evaluate+accumulate (area=all, maxDets=[100]), median of "
        f"{args.repeats}: {t_fast:8.3f} s  -> ours is {t_fast / t_ours:6.2f}x its speed; "
        f"max |difference| vs ours = {fdiff:.3e}"
    )


if __name__ == "__main__":
    main()
