"""What an evaluation reads, and how it becomes the engine's columnar ground truth and detections.

Which annotations count is the domain's ground-truth rule (`domain.ground_truth`). Labels are
used as stored: the edges only let canonical VRU classes in (`domain.vru`). Keyframes of one
track are interpolated to a box on every frame between them. ``difficult`` boxes are kept as
ordinary ground truth: the engine has no ignore regions (COCO ``iscrowd``).

The inputs are described structurally (Protocols) so the handlers can be fed the read models in
production and plain fakes in tests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec
import numpy as np

from domain.evaluation import Detections, GroundTruth, make_detections, make_ground_truth
from domain.evaluations import Comparison, PinnedAnnotation, Status
from domain.ground_truth import counts_as_ground_truth

DEFAULT_FPS = 30.0
"""Frame rate assumed for detections without a frame number when the video's is unknown."""
Box = tuple[float, float, float, float]


class AnnotationLike(Protocol):
    @property
    def id(self) -> UUID: ...
    @property
    def version(self) -> int: ...
    @property
    def frame_number(self) -> int: ...
    @property
    def timestamp(self) -> float: ...
    @property
    def vru_type(self) -> str: ...
    @property
    def box(self) -> Any: ...
    @property
    def validated(self) -> bool: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def source(self) -> str: ...


class DetectionLike(Protocol):
    @property
    def id(self) -> UUID: ...
    @property
    def frame_number(self) -> int | None: ...
    @property
    def timestamp(self) -> float: ...
    @property
    def captured_at(self) -> datetime | None: ...
    @property
    def class_label(self) -> str: ...
    @property
    def confidence(self) -> float | None: ...
    @property
    def box(self) -> Any: ...
    @property
    def track_id(self) -> Any: ...


class SessionLike(Protocol):
    @property
    def id(self) -> UUID: ...
    @property
    def project_id(self) -> UUID: ...
    @property
    def video_id(self) -> UUID: ...
    @property
    def status(self) -> str: ...
    @property
    def tolerance_ms(self) -> int: ...
    @property
    def iou_threshold(self) -> float: ...
    @property
    def started_at(self) -> datetime | None: ...


class EvaluationSources(Protocol):
    """Where an evaluation's inputs come from (read models and the event store's history)."""

    def session(self, session_id: UUID) -> SessionLike | None: ...
    def annotations(self, video_id: UUID) -> Sequence[AnnotationLike]:
        """The current annotations of the video (all of them; the rule is applied here)."""
        ...

    def annotation_at(self, annotation_id: UUID, version: int) -> AnnotationLike: ...
    def detections(self, session_id: UUID) -> Sequence[DetectionLike]:
        """The session's detections in arrival order."""
        ...

    def position(self) -> int:
        """The global position the read models reflect now."""
        ...

    def frame_rate(self, video_id: UUID) -> float | None: ...


class TrackBoxLike(Protocol):
    @property
    def frame_number(self) -> int: ...
    @property
    def timestamp(self) -> float: ...
    @property
    def box(self) -> Any: ...
    @property
    def keyframe(self) -> bool: ...
    @property
    def annotation_id(self) -> UUID: ...
    @property
    def vru_type(self) -> str: ...


Interpolator = Callable[[Sequence[Any]], Sequence[TrackBoxLike]]


def box_tuple(box: Any) -> Box | None:
    """(x, y, w, h) from a BoundingBox-like struct, a mapping or a 4-sequence."""
    if box is None:
        return None
    if hasattr(box, "width"):
        return (float(box.x), float(box.y), float(box.width), float(box.height))
    if isinstance(box, dict):
        return (float(box["x"]), float(box["y"]), float(box["width"]), float(box["height"]))
    x, y, w, h = box
    return (float(x), float(y), float(w), float(h))


class GroundTruthInput(msgspec.Struct, frozen=True, kw_only=True):
    gt: GroundTruth
    refs: tuple[str, ...]
    pins: tuple[PinnedAnnotation, ...]


class DetectionInput(msgspec.Struct, frozen=True, kw_only=True):
    det: Detections
    refs: tuple[str, ...]


def ground_truth_of(
    annotations: Sequence[AnnotationLike],
    *,
    track_of: Callable[[AnnotationLike], Any] | None = None,
    interpolate: Interpolator | None = None,
) -> GroundTruthInput:
    """Apply the ground-truth rule; expand tracks when a track key and an interpolator are given.

    A box-less annotation outside a track is a timed event (matched by time); inside a track it
    marks the object as out of view, and nothing is interpolated across it.

    Every annotation that passes the rule is pinned (id, version), including keyframes whose
    in-between boxes are interpolated.
    """
    used = sorted((a for a in annotations if counts_as_ground_truth(a)), key=lambda a: str(a.id))
    rows: list[tuple[int, float, str, Box | None, int, str]] = []
    tracks: dict[Any, list[AnnotationLike]] = defaultdict(list)
    track_ids: dict[Any, int] = {}
    for a in used:
        key = track_of(a) if track_of is not None else None
        if key is not None and interpolate is not None:
            tracks[key].append(a)
            continue
        rows.append((a.frame_number, a.timestamp, a.vru_type, box_tuple(a.box), -1, str(a.id)))
    for key, keyframes in sorted(tracks.items(), key=lambda kv: str(kv[0])):
        tid = track_ids.setdefault(key, len(track_ids))
        for tb in interpolate(keyframes) if interpolate is not None else ():
            if tb.box is None:  # a box-less keyframe in a track: the object is out of view
                continue
            ref = str(tb.annotation_id)
            ref = ref if tb.keyframe else f"{ref}@{tb.frame_number}"
            rows.append((tb.frame_number, tb.timestamp, tb.vru_type, box_tuple(tb.box), tid, ref))
    rows.sort(key=lambda r: (r[0], r[5]))
    nan = float("nan")
    gt = make_ground_truth(
        frame=[r[0] for r in rows],
        label=[str(r[2]) for r in rows],
        box=[r[3] or (nan, nan, nan, nan) for r in rows] if rows else None,
        time_s=[r[1] for r in rows],
        track_id=unique_tracks(
            [r[0] for r in rows], [r[4] for r in rows], [float(i) for i in range(len(rows))]
        ),
    )
    pins = tuple(PinnedAnnotation(a.id, a.version) for a in used)
    return GroundTruthInput(gt=gt, refs=tuple(r[5] for r in rows), pins=pins)


def unique_tracks(frame: list[int], track: list[int], priority: list[float]) -> list[int]:
    """Track ids with repeats inside one frame removed (-1), keeping the lowest `priority`.

    Tracking metrics need one row per track and frame; a device repeating a track id in one
    frame, or two keyframes of one track on the same frame, would otherwise stop the whole
    evaluation. The repeated rows still count as detections or ground truth.
    """
    if not track:
        return track
    f, t, p = np.asarray(frame), np.asarray(track), np.asarray(priority, dtype=np.float64)
    order = np.lexsort((p, t, f))
    fs, ts = f[order], t[order]
    repeat = np.r_[False, (fs[1:] == fs[:-1]) & (ts[1:] == ts[:-1])] & (ts != -1)
    out = t.copy()
    out[order[repeat]] = -1
    return [int(v) for v in out]


def _seconds_since(value: datetime | None, epoch: datetime | None) -> float:
    if value is None or epoch is None:
        return float("nan")
    return (value - epoch).total_seconds()


def detections_of(
    rows: Sequence[DetectionLike], *, fps: float | None, epoch: datetime | None
) -> DetectionInput:
    """Columnar detections; a missing frame number is derived from the timestamp and frame rate.

    A detection without a confidence counts as certain (score 1). ``captured_at`` becomes
    seconds since ``epoch`` (the session's start), the video clock's origin.
    """
    rate = fps or DEFAULT_FPS
    nan = float("nan")
    track_codes: dict[Any, int] = {}
    frames, labels, scores, boxes, times, captured, tracks = [], [], [], [], [], [], []
    for d in rows:
        frames.append(d.frame_number if d.frame_number is not None else round(d.timestamp * rate))
        labels.append(str(d.class_label))
        scores.append(1.0 if d.confidence is None else float(d.confidence))
        boxes.append(box_tuple(d.box) or (nan, nan, nan, nan))
        times.append(float(d.timestamp))
        captured.append(_seconds_since(d.captured_at, epoch))
        track = d.track_id
        tracks.append(-1 if track is None else track_codes.setdefault(track, len(track_codes)))
    det = make_detections(
        frame=frames,
        label=labels,
        score=scores,
        box=boxes if rows else None,
        time_s=times,
        captured_at_s=captured,
        track_id=unique_tracks(frames, tracks, [-s for s in scores]),
    )
    return DetectionInput(det=det, refs=tuple(str(d.id) for d in rows))


def _maybe(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def comparison_rows(
    gt: GroundTruthInput,
    det: DetectionInput,
    pairs_gt: Sequence[int],
    pairs_det: Sequence[int],
    pairs_value: Sequence[float],
    keep: Sequence[bool],
) -> list[Comparison]:
    """One row per matched pair, lone detection and lone ground-truth object, by frame."""
    g, d = gt.gt, det.det
    rows: list[Comparison] = []

    def gt_part(i: int) -> tuple[str, str]:
        return gt.refs[i], g.classes[int(g.label[i])]

    def det_part(j: int) -> tuple[str, str, float]:
        return det.refs[j], d.classes[int(d.label[j])], float(d.score[j])

    for i, j, value in zip(pairs_gt, pairs_det, pairs_value, strict=True):
        gref, glabel = gt_part(i)
        dref, dlabel, conf = det_part(j)
        boxed = bool(np.isfinite(d.box[j, 0]))
        offset = (d.time_s[j] - g.time_s[i]) * 1000.0
        rows.append(
            Comparison(
                Status.TP,
                int(g.frame[i]),
                _maybe(g.time_s[i]),
                gref,
                glabel,
                dref,
                dlabel,
                conf,
                float(value) if boxed else None,
                _maybe(offset),
            )
        )
    matched_gt = set(pairs_gt)
    matched_det = set(pairs_det)
    for i in range(len(g)):
        if i not in matched_gt:
            gref, glabel = gt_part(i)
            rows.append(
                Comparison(
                    Status.FN,
                    int(g.frame[i]),
                    _maybe(g.time_s[i]),
                    gref,
                    glabel,
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            )
    for j in range(len(d)):
        if j not in matched_det:
            dref, dlabel, conf = det_part(j)
            status = Status.FP if keep[j] else Status.BELOW_THRESHOLD
            rows.append(
                Comparison(
                    status,
                    int(d.frame[j]),
                    _maybe(d.time_s[j]),
                    None,
                    None,
                    dref,
                    dlabel,
                    conf,
                    None,
                    None,
                )
            )
    rows.sort(key=lambda r: (r.frame, r.status.value, r.gt_ref or "", r.det_ref or ""))
    return rows
