"""Running precision and recall of a session while its detections arrive, batch by batch.

Each batch of frames is matched (optimal one-to-one per frame and class, IoU threshold; box-less
detections by time) against the ground truth of those frames that no earlier batch matched, and
the counts grow. Frames arrive whole (one device message is one frame), so per-frame matching
is the same as the final evaluation's; only box-less events whose tolerance window spans two
batches can be matched differently. The figures are provisional: the evaluation recorded on
completion is the full, exact one. Work per batch is vectorised over the whole batch, so a
slower tick simply takes a bigger batch (coalescing) instead of building a backlog.
"""

from __future__ import annotations

import msgspec
import numpy as np

from domain.evaluation import (
    Counts,
    EvaluationConfig,
    GroundTruth,
    make_counts,
    match_boxes,
    match_times,
)
from domain.evaluation.inputs import FloatArray, IntArray


class DetectionBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Columnar detections of whole frames; `frames` lists every frame reported, even empty ones."""

    frames: IntArray
    frame: IntArray
    label: IntArray
    """Codes into `classes`."""
    classes: tuple[str, ...]
    score: FloatArray
    box: FloatArray
    time_s: FloatArray


class RunningEvaluation:
    def __init__(self, gt: GroundTruth, config: EvaluationConfig | None = None) -> None:
        self.config = config or EvaluationConfig()
        self.gt = gt
        self.classes = {c: i for i, c in enumerate(gt.classes)}
        self.unknown = len(gt.classes)
        """Code of labels the ground truth never uses: they can only be false positives."""
        self.matched = np.zeros(len(gt), dtype=np.bool_)
        self.seen: set[int] = set()
        """Frame numbers folded so far. A set, not a sorted array: merging each tick's frames
        into an array of every frame seen costs O(all frames) a tick and grows with the run."""
        self.gt_in_seen = np.zeros(len(gt), dtype=np.bool_)
        """Ground-truth rows whose frame has been seen (they count as expected so far)."""
        self.has_box = gt.has_box
        self.timed = np.isfinite(gt.time_s) & ~self.has_box
        self.tp = 0
        self.fp = 0
        self.gt_seen = 0
        self.detections = 0

    @property
    def frames_seen(self) -> int:
        return len(self.seen)

    def counts(self) -> Counts:
        return make_counts(self.tp, self.fp, self.gt_seen - self.tp)

    def _codes(self, batch: DetectionBatch) -> IntArray:
        """The batch's label codes re-coded into the ground truth's vocabulary."""
        mapping = np.array(
            [self.classes.get(c, self.unknown) for c in batch.classes] or [self.unknown],
            dtype=np.int64,
        )
        return mapping[batch.label]

    def add(self, batch: DetectionBatch) -> Counts:
        cfg = self.config
        seen = self.seen
        fresh = [f for f in batch.frames.tolist() if f not in seen]
        if fresh:
            seen.update(fresh)
            new_frames = np.asarray(fresh, dtype=np.int64)
            hit = np.isin(self.gt.frame, new_frames)
            self.gt_in_seen |= hit
            self.gt_seen += int(hit.sum())
        keep = np.ones(batch.frame.shape[0], dtype=np.bool_)
        if cfg.confidence_threshold is not None:
            keep = batch.score >= cfg.confidence_threshold
        codes = self._codes(batch)
        boxed = keep & ~np.isnan(batch.box[:, 0])
        timed = keep & np.isnan(batch.box[:, 0]) & np.isfinite(batch.time_s)
        n_kept = int(keep.sum())
        self.detections += n_kept
        tp = 0
        if boxed.any():
            open_gt = np.flatnonzero(
                self.has_box & ~self.matched & np.isin(self.gt.frame, batch.frame[boxed])
            )
            pairs = match_boxes(
                gt_frame=self.gt.frame[open_gt],
                gt_cls=self.gt.label[open_gt],
                gt_box=self.gt.box[open_gt],
                det_frame=batch.frame[boxed],
                det_cls=codes[boxed],
                det_box=batch.box[boxed],
                iou_threshold=cfg.iou_threshold,
            )
            self.matched[open_gt[pairs.gt]] = True
            tp += len(pairs)
        if timed.any():
            open_gt = np.flatnonzero(self.timed & ~self.matched & self.gt_in_seen)
            pairs = match_times(
                gt_time_s=self.gt.time_s[open_gt],
                gt_cls=self.gt.label[open_gt],
                det_time_s=batch.time_s[timed],
                det_cls=codes[timed],
                tolerance_ms=cfg.temporal_tolerance_ms,
            )
            self.matched[open_gt[pairs.gt]] = True
            tp += len(pairs)
        self.tp += tp
        self.fp += n_kept - tp
        return self.counts()
