"""Columnar evaluation inputs: ground truth and detections as parallel numpy arrays.

Rows are objects (or box-less events). A box is ``(x, y, w, h)`` in pixels with ``(x, y)`` the
top-left corner; a row of NaN means "no box". Class labels are stored as integer codes into a
``classes`` vocabulary so that matching works on integers; the engine unifies the vocabularies of
the two sides itself. COCO's ``iscrowd`` and VOC's ``difficult`` flags are accepted by the row
builders and ignored: every ground-truth row is a regular object (COCO ``iscrowd=0``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import msgspec
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NO_TRACK = -1
"""Track id used for rows that carry no track."""

Box = tuple[float, float, float, float]


class GroundTruth(msgspec.Struct, frozen=True, kw_only=True):
    """Ground-truth rows (columnar). Build with :func:`make_ground_truth` so inputs are checked."""

    frame: IntArray
    label: IntArray
    classes: tuple[str, ...]
    box: FloatArray
    time_s: FloatArray
    track_id: IntArray

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    @property
    def has_box(self) -> BoolArray:
        return ~np.isnan(self.box[:, 0])


class Detections(msgspec.Struct, frozen=True, kw_only=True):
    """Detection rows (columnar). ``captured_at_s`` is NaN where the producer gave no timestamp."""

    frame: IntArray
    label: IntArray
    classes: tuple[str, ...]
    score: FloatArray
    box: FloatArray
    time_s: FloatArray
    captured_at_s: FloatArray
    track_id: IntArray

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    @property
    def has_box(self) -> BoolArray:
        return ~np.isnan(self.box[:, 0])


class GroundTruthObject(msgspec.Struct, frozen=True, kw_only=True):
    """One annotated object; ``iscrowd``/``difficult`` are accepted for parity and ignored."""

    frame: int
    label: str
    time_s: float
    box: Box | None = None
    track_id: int | None = None
    iscrowd: bool = False
    difficult: bool = False


class DetectedObject(msgspec.Struct, frozen=True, kw_only=True):
    """One model output; ``captured_at`` is seconds on the video clock or a wall-clock datetime."""

    frame: int
    label: str
    confidence: float
    time_s: float
    box: Box | None = None
    captured_at: float | datetime | None = None
    track_id: int | None = None


def _encode_labels(
    label: Sequence[str] | npt.ArrayLike, classes: Sequence[str] | None, n: int
) -> tuple[IntArray, tuple[str, ...]]:
    if classes is not None:
        codes = np.asarray(label, dtype=np.int64).reshape(-1)
        if codes.shape[0] != n:
            raise ValueError("label has the wrong length")
        if n and (codes.min() < 0 or codes.max() >= len(classes)):
            raise ValueError("label codes out of range for the given classes")
        return codes, tuple(str(c) for c in classes)
    names = np.asarray(label, dtype=np.str_).reshape(-1)
    if names.shape[0] != n:
        raise ValueError("label has the wrong length")
    if n == 0:
        return np.zeros(0, dtype=np.int64), ()
    uniq, inverse = np.unique(names, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), tuple(str(c) for c in uniq)


def _boxes(box: npt.ArrayLike | None, n: int) -> FloatArray:
    if box is None:
        return np.full((n, 4), np.nan)
    arr = np.array(box, dtype=np.float64).reshape(n, 4)
    missing = np.isnan(arr)
    partial = missing.any(axis=1) & ~missing.all(axis=1)
    if partial.any() or not np.isfinite(arr[~missing]).all():
        raise ValueError("boxes must be four finite numbers or entirely NaN (no box)")
    if (arr[:, 2:] < 0).any():
        raise ValueError("box width and height must be non-negative")
    return arr


def _column(values: npt.ArrayLike | None, n: int, fill: float, name: str) -> FloatArray:
    if values is None:
        return np.full(n, fill)
    arr = np.array(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has the wrong length")
    return arr


def _tracks(values: npt.ArrayLike | None, n: int) -> IntArray:
    if values is None:
        return np.full(n, NO_TRACK, dtype=np.int64)
    arr = np.array(values, dtype=np.int64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError("track_id has the wrong length")
    return arr


def make_ground_truth(
    *,
    frame: npt.ArrayLike,
    label: Sequence[str] | npt.ArrayLike,
    box: npt.ArrayLike | None = None,
    time_s: npt.ArrayLike | None = None,
    track_id: npt.ArrayLike | None = None,
    classes: Sequence[str] | None = None,
) -> GroundTruth:
    """Check and pack ground truth; pass ``classes`` to give ``label`` as integer codes."""
    frames = np.array(frame, dtype=np.int64).reshape(-1)
    n = int(frames.shape[0])
    codes, vocab = _encode_labels(label, classes, n)
    return GroundTruth(
        frame=frames,
        label=codes,
        classes=vocab,
        box=_boxes(box, n),
        time_s=_column(time_s, n, np.nan, "time_s"),
        track_id=_tracks(track_id, n),
    )


def make_detections(
    *,
    frame: npt.ArrayLike,
    label: Sequence[str] | npt.ArrayLike,
    score: npt.ArrayLike,
    box: npt.ArrayLike | None = None,
    time_s: npt.ArrayLike | None = None,
    captured_at_s: npt.ArrayLike | None = None,
    track_id: npt.ArrayLike | None = None,
    classes: Sequence[str] | None = None,
) -> Detections:
    """Check and pack detections; pass ``classes`` to give ``label`` as integer codes."""
    frames = np.array(frame, dtype=np.int64).reshape(-1)
    n = int(frames.shape[0])
    codes, vocab = _encode_labels(label, classes, n)
    scores = _column(score, n, np.nan, "score")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return Detections(
        frame=frames,
        label=codes,
        classes=vocab,
        score=scores,
        box=_boxes(box, n),
        time_s=_column(time_s, n, np.nan, "time_s"),
        captured_at_s=_column(captured_at_s, n, np.nan, "captured_at_s"),
        track_id=_tracks(track_id, n),
    )


def _box_rows(boxes: Iterable[Box | None]) -> list[Box]:
    nan = float("nan")
    return [b if b is not None else (nan, nan, nan, nan) for b in boxes]


def ground_truth_from_objects(objects: Sequence[GroundTruthObject]) -> GroundTruth:
    """Pack row structs (e.g. decoded from JSON) into the columnar form."""
    return make_ground_truth(
        frame=[o.frame for o in objects],
        label=[o.label for o in objects],
        box=_box_rows(o.box for o in objects) if objects else None,
        time_s=[o.time_s for o in objects],
        track_id=[NO_TRACK if o.track_id is None else o.track_id for o in objects],
    )


def _seconds(value: float | datetime | None, epoch: datetime | None) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, datetime):
        if epoch is None:
            raise ValueError("captured_at is a datetime: pass epoch (wall-clock time of t=0)")
        return (value - epoch).total_seconds()
    return float(value)


def detections_from_objects(
    objects: Sequence[DetectedObject], *, epoch: datetime | None = None
) -> Detections:
    """Pack row structs; datetime ``captured_at`` values become seconds since ``epoch``."""
    return make_detections(
        frame=[o.frame for o in objects],
        label=[o.label for o in objects],
        score=[o.confidence for o in objects],
        box=_box_rows(o.box for o in objects) if objects else None,
        time_s=[o.time_s for o in objects],
        captured_at_s=[_seconds(o.captured_at, epoch) for o in objects],
        track_id=[NO_TRACK if o.track_id is None else o.track_id for o in objects],
    )


def unify_classes(gt: GroundTruth, det: Detections) -> tuple[tuple[str, ...], IntArray, IntArray]:
    """Merge both vocabularies (sorted) and re-code both label columns into it."""
    classes = tuple(sorted(set(gt.classes) | set(det.classes)))
    index = {c: i for i, c in enumerate(classes)}
    gmap = np.array([index[c] for c in gt.classes] or [0], dtype=np.int64)
    dmap = np.array([index[c] for c in det.classes] or [0], dtype=np.int64)
    return classes, gmap[gt.label], dmap[det.label]
