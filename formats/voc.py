"""Pascal VOC: a zip of per-frame `Annotations/frame_NNNNNN.xml` (pixel corners)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from domain.annotations import AnnotationDraft, AnnotationState, BoundingBox
from domain.errors import InvalidValue
from formats.common import (
    Location,
    Parsed,
    VideoInfo,
    class_of,
    expand,
    flag,
    fmt,
    frame_from_name,
    imported_draft,
    number,
)
from formats.documents import parse_xml
from formats.zips import BoundedZip, write_zip

MEDIA_TYPE = "application/zip"
EXTENSION = "zip"


def _text(parent: Element, tag: str, value: str) -> None:
    SubElement(parent, tag).text = value


def _frame_xml(frame: int, states: list[AnnotationState], video: VideoInfo) -> bytes:
    root = Element("annotation")
    _text(root, "folder", "frames")
    _text(root, "filename", f"frame_{frame:06d}.jpg")
    size = SubElement(root, "size")
    _text(size, "width", str(video.width or 0))
    _text(size, "height", str(video.height or 0))
    _text(size, "depth", "3")
    for s in states:
        box = s.box
        assert box is not None
        obj = SubElement(root, "object")
        _text(obj, "name", s.vru_type)
        _text(obj, "pose", "Unspecified")
        _text(obj, "truncated", str(int(s.truncated)))
        _text(obj, "difficult", str(int(s.difficult)))
        _text(obj, "occluded", str(int(s.occluded)))
        bnd = SubElement(obj, "bndbox")
        _text(bnd, "xmin", fmt(box.x))
        _text(bnd, "ymin", fmt(box.y))
        _text(bnd, "xmax", fmt(box.x + box.width))
        _text(bnd, "ymax", fmt(box.y + box.height))
    xml: bytes = tostring(root, encoding="utf-8", xml_declaration=True)
    return xml


def export(states: list[AnnotationState], video: VideoInfo, interpolate: bool) -> bytes:
    frames: dict[int, list[AnnotationState]] = defaultdict(list)
    for s, _ in expand(states, interpolate):
        if s.box is not None:
            frames[s.frame_number].append(s)
    return write_zip(
        {f"Annotations/frame_{f:06d}.xml": _frame_xml(f, rows, video) for f, rows in frames.items()}
    )


def _child_text(node: Any, tag: str, field: str, default: str | None = None) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        if default is not None:
            return default
        raise InvalidValue(field, f"{field}: missing")
    return str(child.text).strip()


def _object(node: Any, frame: int, video: VideoInfo) -> AnnotationDraft:
    bnd = node.find("bndbox")
    if bnd is None:
        raise InvalidValue("bndbox", "bndbox: missing")
    xmin, ymin, xmax, ymax = (
        number(_child_text(bnd, t, f"bndbox.{t}"), f"bndbox.{t}")
        for t in ("xmin", "ymin", "xmax", "ymax")
    )
    return imported_draft(
        video,
        frame,
        class_of(_child_text(node, "name", "name"), "name"),
        BoundingBox(xmin, ymin, xmax - xmin, ymax - ymin),
        truncated=flag(_child_text(node, "truncated", "truncated", "0"), "truncated"),
        difficult=flag(_child_text(node, "difficult", "difficult", "0"), "difficult"),
        occluded=flag(_child_text(node, "occluded", "occluded", "0"), "occluded"),
    )


def parse(data: bytes, video: VideoInfo) -> Parsed:
    parsed = Parsed()
    with BoundedZip(data) as archive:
        for name in archive.names():
            if name.endswith(".xml"):
                _frame_file(parsed, name, parse_xml(archive.read(name), name), video)
    return parsed


def _frame_file(parsed: Parsed, name: str, root: Any, video: VideoInfo) -> None:
    try:
        filename = _child_text(root, "filename", "filename", name)
        frame = frame_from_name(filename, "filename")
    except InvalidValue as err:
        parsed.refuse(Location(file=name), err.field, err.detail)
        return
    for i, node in enumerate(root.findall("object")):
        parsed.add(
            Location(file=name, row=i),
            lambda node=node, frame=frame: _object(node, frame, video),
        )
