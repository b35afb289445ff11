"""MOTChallenge ground truth txt: `frame,id,left,top,width,height,conf,class,visibility`.

Frames are 1-based (MOT's convention); `class` is the 1-based position in Verity's VRU list
(not MOT17's classes); visibility < 1 means occluded. Track ids are numbered by first
appearance; on import a track id becomes the detection id.
"""

from __future__ import annotations

from domain.annotations import AnnotationDraft, AnnotationState, BoundingBox
from domain.errors import InvalidValue
from domain.vru import VruType
from formats.common import (
    VRU_ORDER,
    Location,
    Parsed,
    VideoInfo,
    class_by_index,
    expand,
    fmt,
    imported_draft,
    integer,
    number,
)
from formats.documents import text_lines

_CELLS = 10
"""MOT ground truth has 9 columns, MOT15 detections 10; any further ones are not read."""
MEDIA_TYPE = "text/plain"
EXTENSION = "txt"


def export(states: list[AnnotationState], video: VideoInfo, interpolate: bool) -> bytes:
    ids: dict[str, int] = {}
    lines = []
    for s, _ in expand(states, interpolate):
        if s.box is None:
            continue
        key = s.detection_id if s.detection_id is not None else f"annotation:{s.id}"
        track = ids.setdefault(key, len(ids) + 1)
        b = s.box
        cls = VRU_ORDER.index(VruType(s.vru_type)) + 1
        visibility = "0.5" if s.occluded else "1"
        lines.append(
            f"{s.frame_number + 1},{track},{fmt(b.x)},{fmt(b.y)},{fmt(b.width)},"
            f"{fmt(b.height)},1,{cls},{visibility}"
        )
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _row(cells: list[str], video: VideoInfo) -> AnnotationDraft:
    if len(cells) < 6:
        raise InvalidValue(
            "line", f"line: expected at least 6 comma-separated values, got {len(cells)}"
        )
    frame = integer(cells[0], "frame") - 1
    if frame < 0:
        raise InvalidValue("frame", f"frame: MOT frames start at 1, got {cells[0]}")
    track = integer(cells[1], "id")
    left, top, width, height = (
        number(cells[k], name)
        for k, name in zip(range(2, 6), ("bb_left", "bb_top", "bb_width", "bb_height"), strict=True)
    )
    cls = (
        class_by_index(integer(cells[7], "class"), 1, "class")
        if len(cells) > 7
        else VruType.PEDESTRIAN
    )
    visibility = number(cells[8], "visibility") if len(cells) > 8 else 1.0
    return imported_draft(
        video,
        frame,
        cls,
        BoundingBox(left, top, width, height),
        occluded=visibility < 1,
        detection_id=str(track),
    )


def parse(data: bytes, video: VideoInfo) -> Parsed:
    parsed = Parsed()
    for line_number, line in enumerate(text_lines(data, "file"), start=1):
        cells = line.split(",", _CELLS)[:_CELLS]  # the columns MOT has, however long the line
        if not "".join(cells).strip():
            continue
        parsed.add(
            Location(line=line_number), lambda cells=cells: _row([c.strip() for c in cells], video)
        )
    return parsed
