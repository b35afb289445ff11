"""Multi-object tracking metrics (CLEAR-MOT and identity scores) as py-motmetrics computes them.

Per frame, in frame order: ground-truth/hypothesis pairs whose distance ``1 - IoU`` exceeds
``max_distance`` (default 0.5) cannot pair; correspondences from earlier frames are kept when still
valid; the rest are assigned by ``scipy.optimize.linear_sum_assignment`` on the same cost matrix
motmetrics builds (invalid entries replaced by its "expensive edge"), so ties resolve identically.
A match whose object was last paired with another hypothesis is an ID switch. IDF1 comes from the
global one-to-one assignment of track ids maximising co-occurring valid pairs (IDTP).
Class labels are ignored, as in MOTChallenge-style evaluation; filter rows to score one class.
"""

from __future__ import annotations

import msgspec
import numpy as np
from scipy.optimize import linear_sum_assignment

from domain.evaluation.inputs import NO_TRACK, Detections, FloatArray, GroundTruth, IntArray


class TrackingMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """CLEAR-MOT and ID metrics; ratios are None when their denominator is zero.

    ``motp`` follows motmetrics: the mean *distance* ``1 - IoU`` over matched pairs (lower is
    better); ``mean_iou = 1 - motp`` is the same figure the other way round.
    ``matches`` includes switches (motmetrics' ``num_detections``).
    """

    mota: float | None
    motp: float | None
    mean_iou: float | None
    idf1: float | None
    idp: float | None
    idr: float | None
    idtp: int
    id_switches: int
    matches: int
    false_positives: int
    misses: int
    objects: int
    predictions: int
    frames: int


def _distances(objs: FloatArray, hyps: FloatArray, max_distance: float) -> FloatArray:
    """motmetrics' ``iou_matrix`` arithmetic: ``1 - IoU``, NaN above ``max_distance``."""
    a_min, b_min = objs[:, None, :2], hyps[None, :, :2]
    a_max, b_max = a_min + objs[:, None, 2:], b_min + hyps[None, :, 2:]
    i_size = np.maximum(np.minimum(a_max, b_max) - np.maximum(a_min, b_min), 0)
    i_vol = np.prod(i_size, axis=-1)
    a_vol = np.prod(np.maximum(a_max - a_min, 0), axis=-1)
    b_vol = np.prod(np.maximum(b_max - b_min, 0), axis=-1)
    u_vol = a_vol + b_vol - i_vol
    iou = np.zeros(i_vol.shape)
    np.divide(i_vol, u_vol, out=iou, where=i_vol != 0)
    dist = 1 - iou
    return np.where(dist > max_distance, np.nan, dist)


def _assign(costs: FloatArray) -> tuple[IntArray, IntArray]:
    """motmetrics' scipy path: invalid edges become ``2 r c + 1``, then dropped from the result."""
    valid = np.isfinite(costs)
    if not valid.any():
        finite = np.zeros_like(costs)
    elif valid.all():
        finite = costs.copy()
    else:
        c = np.abs(costs[valid]).max() + 1
        finite = np.where(valid, costs, 2 * min(costs.shape) * c + 1)
    rows, cols = linear_sum_assignment(finite)
    ok = valid[rows, cols]
    return rows[ok].astype(np.int64), cols[ok].astype(np.int64)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def clear_mot(
    *,
    gt_frame: IntArray,
    gt_id: IntArray,
    gt_box: FloatArray,
    det_frame: IntArray,
    det_id: IntArray,
    det_box: FloatArray,
    max_distance: float = 0.5,
) -> TrackingMetrics:
    """Score tracks; within a frame, rows keep their input order (it steers tie-breaking)."""
    go = np.argsort(gt_frame, kind="stable")
    do = np.argsort(det_frame, kind="stable")
    frames = np.union1d(gt_frame, det_frame)
    g_lo = np.searchsorted(gt_frame[go], frames, "left")
    g_hi = np.searchsorted(gt_frame[go], frames, "right")
    d_lo = np.searchsorted(det_frame[do], frames, "left")
    d_hi = np.searchsorted(det_frame[do], frames, "right")
    last: dict[int, int] = {}
    matches = switches = misses = fps = 0
    dist_sum = 0.0
    raw_o: list[IntArray] = []
    raw_h: list[IntArray] = []
    for f in range(frames.shape[0]):
        gi, di = go[g_lo[f] : g_hi[f]], do[d_lo[f] : d_hi[f]]
        oids, hids = gt_id[gi], det_id[di]
        if np.unique(oids).shape[0] != oids.shape[0] or np.unique(hids).shape[0] != hids.shape[0]:
            raise ValueError(f"duplicate track id within frame {int(frames[f])}")
        o_done = np.zeros(oids.shape[0], dtype=np.bool_)
        h_done = np.zeros(hids.shape[0], dtype=np.bool_)
        if oids.shape[0] and hids.shape[0]:
            dist = _distances(gt_box[gi], det_box[di], max_distance)
            fi, fj = np.nonzero(np.isfinite(dist))
            raw_o.append(oids[fi])
            raw_h.append(hids[fj])
            for i, o in enumerate(oids.tolist()):
                if o not in last:
                    continue
                js = np.flatnonzero(~h_done & (hids == last[o]))
                if js.shape[0] and np.isfinite(dist[i, js[0]]):
                    o_done[i] = h_done[js[0]] = True
                    matches += 1
                    dist_sum += float(dist[i, js[0]])
            free = dist.copy()
            free[o_done, :] = np.nan
            free[:, h_done] = np.nan
            rows, cols = _assign(free)
            for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
                o, h = int(oids[i]), int(hids[j])
                if o in last and last[o] != h:
                    switches += 1
                else:
                    matches += 1
                dist_sum += float(free[i, j])
                o_done[i] = h_done[j] = True
                last[o] = h
        misses += int(np.count_nonzero(~o_done))
        fps += int(np.count_nonzero(~h_done))
    idtp = _idtp(raw_o, raw_h)
    objects, predictions = int(gt_frame.shape[0]), int(det_frame.shape[0])
    matched = matches + switches
    motp = _ratio(dist_sum, matched)
    mota = _ratio(misses + switches + fps, objects)
    return TrackingMetrics(
        mota=None if mota is None else 1.0 - mota,
        motp=motp,
        mean_iou=None if motp is None else 1.0 - motp,
        idf1=_ratio(2 * idtp, objects + predictions),
        idp=_ratio(idtp, predictions),
        idr=_ratio(idtp, objects),
        idtp=idtp,
        id_switches=switches,
        matches=matched,
        false_positives=fps,
        misses=misses,
        objects=objects,
        predictions=predictions,
        frames=int(frames.shape[0]),
    )


def _idtp(raw_o: list[IntArray], raw_h: list[IntArray]) -> int:
    """Largest number of co-occurring valid (object, hypothesis) frames under a 1:1 id mapping."""
    if not raw_o:
        return 0
    o_all, h_all = np.concatenate(raw_o), np.concatenate(raw_h)
    if o_all.shape[0] == 0:
        return 0
    uo, oi = np.unique(o_all, return_inverse=True)
    uh, hi = np.unique(h_all, return_inverse=True)
    weight = np.zeros((uo.shape[0], uh.shape[0]))
    np.add.at(weight, (oi, hi), 1.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    return int(weight[rows, cols].sum())


def tracking_metrics(
    gt: GroundTruth, det: Detections, *, max_distance: float = 0.5, min_score: float = -np.inf
) -> TrackingMetrics:
    """Track metrics over rows that have both a box and a track id (detections >= min_score)."""
    g = gt.has_box & (gt.track_id != NO_TRACK)
    d = det.has_box & (det.track_id != NO_TRACK) & (det.score >= min_score)
    return clear_mot(
        gt_frame=gt.frame[g],
        gt_id=gt.track_id[g],
        gt_box=gt.box[g],
        det_frame=det.frame[d],
        det_id=det.track_id[d],
        det_box=det.box[d],
        max_distance=max_distance,
    )
