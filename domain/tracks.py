"""Tracks: the boxes of one object (one `detection_id`) are keyframes; frames between two
keyframes get a linearly interpolated box.

A keyframe without a box means "not visible from here" (CVAT's `outside`): nothing is
interpolated across it.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import msgspec

from domain.annotations import AnnotationState, BoundingBox


class TrackBox(msgspec.Struct, frozen=True, kw_only=True):
    """One frame of a track. For interpolated frames `annotation_id` is the preceding keyframe."""

    frame_number: int
    timestamp: float
    box: BoundingBox | None
    keyframe: bool
    annotation_id: UUID
    vru_type: str
    detection_id: str | None


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _between(a: BoundingBox, b: BoundingBox, t: float) -> BoundingBox:
    return BoundingBox(
        _lerp(a.x, b.x, t),
        _lerp(a.y, b.y, t),
        _lerp(a.width, b.width, t),
        _lerp(a.height, b.height, t),
    )


def _as_keyframe(k: AnnotationState) -> TrackBox:
    return TrackBox(
        frame_number=k.frame_number,
        timestamp=k.timestamp,
        box=k.box,
        keyframe=True,
        annotation_id=k.id,
        vru_type=k.vru_type,
        detection_id=k.detection_id,
    )


def interpolate_track(keyframes: Sequence[AnnotationState]) -> list[TrackBox]:
    """Every frame from the first keyframe to the last, keyframes marked, in frame order."""
    ordered = sorted(keyframes, key=lambda k: (k.frame_number, str(k.id)))
    out: list[TrackBox] = []
    for i, k in enumerate(ordered):
        out.append(_as_keyframe(k))
        if i + 1 == len(ordered):
            break
        nxt = ordered[i + 1]
        gap = nxt.frame_number - k.frame_number
        if gap <= 1 or k.box is None or nxt.box is None:
            continue
        for step in range(1, gap):
            t = step / gap
            out.append(
                TrackBox(
                    frame_number=k.frame_number + step,
                    timestamp=_lerp(k.timestamp, nxt.timestamp, t),
                    box=_between(k.box, nxt.box, t),
                    keyframe=False,
                    annotation_id=k.id,
                    vru_type=k.vru_type,
                    detection_id=k.detection_id,
                )
            )
    return out
