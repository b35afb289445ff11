"""COCO: video frames as images, categories = the VRU classes (ids 1..7 in canonical order).

Non-standard but conventional (CVAT does the same) `attributes` carry occluded, truncated,
difficult and the track's detection_id; `score` carries a detector's confidence.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.annotations import AnnotationDraft, AnnotationState, BoundingBox
from domain.errors import InvalidValue
from domain.vru import VruType
from formats.common import (
    VRU_ORDER,
    FormatError,
    Location,
    Parsed,
    VideoInfo,
    class_by_index,
    class_of,
    expand,
    flag,
    frame_from_name,
    imported_draft,
    integer,
    number,
)
from formats.documents import decode_json

MEDIA_TYPE = "application/json"
EXTENSION = "json"
_encoder = msgspec.json.Encoder()


def _image_name(frame: int) -> str:
    return f"frame_{frame:06d}.jpg"


def export(states: list[AnnotationState], video: VideoInfo, interpolate: bool) -> bytes:
    rows = [(s, k) for s, k in expand(states, interpolate) if s.box is not None]
    frames = sorted({s.frame_number for s, _ in rows})
    images = [
        {
            "id": f + 1,
            "file_name": _image_name(f),
            "width": video.width or 0,
            "height": video.height or 0,
            "frame_number": f,
        }
        for f in frames
    ]
    annotations: list[dict[str, Any]] = []
    for i, (s, _) in enumerate(rows, start=1):
        box = s.box
        assert box is not None
        attributes: dict[str, Any] = {
            "occluded": s.occluded,
            "truncated": s.truncated,
            "difficult": s.difficult,
        }
        if s.detection_id is not None:
            attributes["detection_id"] = s.detection_id
        item: dict[str, Any] = {
            "id": i,
            "image_id": s.frame_number + 1,
            "category_id": VRU_ORDER.index(VruType(s.vru_type)) + 1,
            "bbox": [box.x, box.y, box.width, box.height],
            "area": box.width * box.height,
            "iscrowd": 0,
            "attributes": attributes,
        }
        if s.confidence is not None:
            item["score"] = s.confidence
        annotations.append(item)
    document = {
        "info": {"description": "Verity annotations", "version": "1.0", "fps": video.fps},
        "images": images,
        "categories": [
            {"id": i, "name": c.value, "supercategory": "vru"} for i, c in enumerate(VRU_ORDER, 1)
        ],
        "annotations": annotations,
    }
    return _encoder.encode(document)


def _frames(images: list[Any], parsed: Parsed) -> dict[Any, int]:
    frames: dict[Any, int] = {}
    for i, image in enumerate(images):
        where = Location(row=i, file="images")
        if not isinstance(image, dict) or not isinstance(image.get("id"), int | str):
            parsed.refuse(where, "images.id", "images.id: missing")
            continue
        try:
            if "frame_number" in image:
                frames[image["id"]] = integer(image["frame_number"], "images.frame_number")
            else:
                frames[image["id"]] = frame_from_name(
                    str(image.get("file_name", "")), "images.file_name"
                )
        except InvalidValue as err:
            parsed.refuse(where, err.field, err.detail)
    return frames


def _categories(categories: list[Any]) -> dict[Any, Any]:
    """category id -> VRU class, by name when it names one, else by canonical position."""
    out: dict[Any, Any] = {}
    for c in categories:
        if isinstance(c, dict) and isinstance(c.get("id"), int | str):
            out[c["id"]] = c.get("name")
    return out


def _row(
    item: Any, frames: dict[Any, int], names: dict[Any, Any], video: VideoInfo
) -> AnnotationDraft:
    if not isinstance(item, dict):
        raise InvalidValue("annotation", "annotation: expected a JSON object")
    image = item.get("image_id")
    if not isinstance(image, int | str) or image not in frames:
        raise InvalidValue("image_id", f"image_id: {str(image)[:40]!r} names no image")
    category = item.get("category_id")
    if isinstance(category, int | str) and category in names:
        vru = class_of(names[category], "category_id")
    else:
        vru = class_by_index(integer(category, "category_id"), 1, "category_id")
    bbox = item.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise InvalidValue("bbox", f"bbox: expected [x, y, width, height], got {bbox!r}")
    box = BoundingBox(*(number(v, f"bbox[{k}]") for k, v in enumerate(bbox)))
    attributes = item.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise InvalidValue("attributes", "attributes: expected an object")
    detection = attributes.get("detection_id", attributes.get("track_id"))
    score = item.get("score")
    return imported_draft(
        video,
        frames[image],
        vru,
        box,
        occluded=flag(attributes.get("occluded", False), "attributes.occluded"),
        truncated=flag(attributes.get("truncated", False), "attributes.truncated"),
        difficult=flag(attributes.get("difficult", False), "attributes.difficult"),
        detection_id=None if detection is None else str(detection),
        confidence=None if score is None else number(score, "score"),
    )


def parse(data: bytes, video: VideoInfo) -> Parsed:
    document = decode_json(data)
    if not isinstance(document, dict):
        raise FormatError("file: a COCO file is a JSON object with images and annotations")
    images, annotations = document.get("images"), document.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise FormatError("file: a COCO file needs `images` and `annotations` lists")
    parsed = Parsed()
    frames = _frames(images, parsed)
    names = _categories(document.get("categories") or [])
    for i, item in enumerate(annotations):
        parsed.add(Location(row=i), lambda item=item: _row(item, frames, names, video))
    return parsed
