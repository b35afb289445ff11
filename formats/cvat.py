"""CVAT for video 1.1: one `<track>` per object, its boxes keyframes; `outside` ends a segment.

A Verity annotation without a box is an "outside" keyframe. A track ends at its last keyframe,
so the export closes every track with an outside box on the next frame (CVAT would otherwise
carry the box to the end of the video), and the import drops that closing box again.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from domain.annotations import AnnotationDraft, AnnotationState, BoundingBox
from formats.common import (
    VRU_ORDER,
    FormatError,
    Location,
    Parsed,
    VideoInfo,
    class_of,
    expand,
    flag,
    fmt,
    imported_draft,
    integer,
    number,
)
from formats.documents import parse_xml

MEDIA_TYPE = "application/xml"
EXTENSION = "xml"


def _meta(root: Element, video: VideoInfo) -> None:
    task = SubElement(SubElement(root, "meta"), "task")
    SubElement(task, "size").text = str(video.frame_count or 0)
    SubElement(task, "mode").text = "interpolation"
    original = SubElement(task, "original_size")
    SubElement(original, "width").text = str(video.width or 0)
    SubElement(original, "height").text = str(video.height or 0)
    labels = SubElement(task, "labels")
    for c in VRU_ORDER:
        label = SubElement(labels, "label")
        SubElement(label, "name").text = c.value
        SubElement(label, "type").text = "rectangle"


def _box(
    track: Element, s: AnnotationState, box: BoundingBox, keyframe: bool, outside: bool
) -> None:
    node = SubElement(
        track,
        "box",
        frame=str(s.frame_number),
        keyframe=str(int(keyframe)),
        outside=str(int(outside)),
        occluded=str(int(s.occluded)),
        xtl=fmt(box.x),
        ytl=fmt(box.y),
        xbr=fmt(box.x + box.width),
        ybr=fmt(box.y + box.height),
        z_order="0",
    )
    if s.detection_id is not None:
        SubElement(node, "attribute", name="detection_id").text = s.detection_id


def _groups(rows: list[tuple[AnnotationState, bool]]) -> list[list[tuple[AnnotationState, bool]]]:
    """Tracks: one per (detection_id, class); a box without detection_id is a track alone."""
    grouped: dict[tuple[str, str], list[tuple[AnnotationState, bool]]] = defaultdict(list)
    loose: list[list[tuple[AnnotationState, bool]]] = []
    for s, k in rows:
        if s.detection_id is None:
            loose.append([(s, k)])
        else:
            grouped[(s.detection_id, s.vru_type)].append((s, k))
    tracks = [sorted(g, key=lambda p: p[0].frame_number) for g in grouped.values()] + loose
    tracks.sort(key=lambda t: (t[0][0].frame_number, t[0][0].detection_id or "", t[0][0].vru_type))
    return tracks


def export(states: list[AnnotationState], video: VideoInfo, interpolate: bool) -> bytes:
    root = Element("annotations")
    SubElement(root, "version").text = "1.1"
    _meta(root, video)
    for number_, track_rows in enumerate(_groups(expand(states, interpolate))):
        first = track_rows[0][0]
        track = SubElement(root, "track", id=str(number_), label=first.vru_type, source="manual")
        last_box: BoundingBox | None = None
        for s, keyframe in track_rows:
            if s.box is None:
                if last_box is not None:
                    _box(track, s, last_box, True, True)
                continue
            _box(track, s, s.box, keyframe, False)
            last_box = s.box
        last = track_rows[-1][0]
        if last.box is not None:
            closing = AnnotationState(**{**_fields(last), "frame_number": last.frame_number + 1})
            _box(track, closing, last.box, True, True)
    xml: bytes = tostring(root, encoding="utf-8", xml_declaration=True)
    return xml


def _fields(s: AnnotationState) -> dict[str, Any]:
    return {f: getattr(s, f) for f in s.__struct_fields__}


def _shape(
    node: Any, label: str, video: VideoInfo, detection: str | None, outside: bool
) -> AnnotationDraft:
    frame = integer(node.get("frame"), "frame")
    corners = [number(node.get(a), a) for a in ("xtl", "ytl", "xbr", "ybr")]
    box = (
        None
        if outside
        else BoundingBox(corners[0], corners[1], corners[2] - corners[0], corners[3] - corners[1])
    )
    return imported_draft(
        video,
        frame,
        class_of(label, "label"),
        box,
        occluded=flag(node.get("occluded", "0"), "occluded"),
        detection_id=detection,
    )


def _detection_id(track: Any, boxes: list[Any]) -> str | None:
    for b in boxes:
        for attribute in b.findall("attribute"):
            if attribute.get("name") == "detection_id" and attribute.text:
                return str(attribute.text)
    visible = [b for b in boxes if b.get("keyframe", "1") == "1" and b.get("outside", "0") != "1"]
    return None if len(visible) <= 1 else f"cvat_track_{track.get('id')}"


def _frame_order(box: Any) -> int:
    """Sort key of a `<box>`: its frame when it is a plain number (bad ones are reported later)."""
    frame = str(box.get("frame", ""))
    return int(frame) if frame.isascii() and frame.isdigit() and len(frame) <= 18 else 0


def parse(data: bytes, video: VideoInfo) -> Parsed:
    root = parse_xml(data, "file")
    if root.tag != "annotations":
        raise FormatError("file: a CVAT for video file has <annotations> at its root")
    parsed = Parsed()
    for t, track in enumerate(root.findall("track")):
        label = track.get("label")
        boxes = sorted(track.findall("box"), key=_frame_order)
        if label is None:
            parsed.refuse(Location(row=t), "label", "label: track has no label")
            continue
        detection = _detection_id(track, boxes)
        keyframes = [b for b in boxes if b.get("keyframe", "1") == "1"]
        while keyframes and keyframes[-1].get("outside", "0") == "1":
            keyframes.pop()  # the closing box: the track ends at its last visible keyframe
        for i, node in enumerate(keyframes):
            outside = node.get("outside", "0") == "1"
            if outside and (i == 0 or keyframes[i - 1].get("outside", "0") == "1"):
                continue  # a leading or repeated outside marks nothing new
            where = Location(row=t, file=f"track {track.get('id')} frame {node.get('frame')}")
            parsed.add(
                where,
                lambda node=node, outside=outside, label=label, detection=detection: _shape(
                    node, label, video, detection, outside
                ),
            )
    return parsed
