"""Annotation file formats: pure conversions between files and annotation drafts.

Each module has `parse(bytes, video) -> Parsed` and `export(states, video, interpolate) ->
bytes`, plus MEDIA_TYPE and EXTENSION. Nothing here stores, speaks HTTP or imports api/, so the
HTTP layer and workers (an import or export job, a detector's candidates) use them alike; only
domain/, the standard library, msgspec and defusedxml are imported. A whole-file refusal is a
`FormatError` whose `kind` the HTTP layer maps to a status in one place (api/errors.py).
"""

from __future__ import annotations

from types import ModuleType

from formats import coco, cvat, mot, verity_json, voc, yolo

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
