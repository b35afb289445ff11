"""Annotation file formats: each module has `parse(bytes, video) -> Parsed` and
`export(states, video, interpolate) -> bytes`, plus MEDIA_TYPE and EXTENSION."""

from __future__ import annotations

from types import ModuleType

from api.formats import coco, cvat, mot, verity_json, voc, yolo

FORMATS: dict[str, ModuleType] = {
    "json": verity_json,
    "verity": verity_json,
    "coco": coco,
    "yolo": yolo,
    "pascal_voc": voc,
    "pascal": voc,
    "voc": voc,
    "cvat": cvat,
    "cvat_video": cvat,
    "mot": mot,
    "motchallenge": mot,
}
