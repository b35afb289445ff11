"""The vulnerable-road-user classes, their aliases, and the one way to read a label as a class.

Every layer speaks of these classes: an annotation's `vru_type`, a device's `classLabel`, the
file formats' class names and ids, the evaluation's labels. They are defined here only
(tests/unit/test_vru.py fails on a copy elsewhere).

Unknown labels: `canonical_class` answers None, never a guess and never the label passed
through. Each edge refuses None in its own words (a device message is dead-lettered or answered
422 naming `classLabel`; an annotation or an imported row is refused naming its field), so a
label stored in an event is always canonical and what reads stored data (evaluation, exports)
uses it as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType

from domain.errors import InvalidValue


class VruType(StrEnum):
    PEDESTRIAN = "pedestrian"
    CYCLIST = "cyclist"
    MOTORCYCLIST = "motorcyclist"
    WHEELCHAIR_USER = "wheelchair_user"
    SCOOTER_RIDER = "scooter_rider"
    ANIMAL = "animal"
    OTHER = "other"


VRU_CLASSES: tuple[str, ...] = tuple(t.value for t in VruType)
"""The canonical class names, in the order the id-based file formats number them."""

VRU_ALIASES: Mapping[str, VruType] = MappingProxyType(
    {"wheelchair": VruType.WHEELCHAIR_USER, "scooter": VruType.SCOOTER_RIDER}
)
"""Contract decision 2: the original's short names, accepted wherever a class is read."""

DETECTOR_NAMES: Mapping[str, VruType] = MappingProxyType(
    {"person": VruType.PEDESTRIAN, "bicycle": VruType.CYCLIST, "motorcycle": VruType.MOTORCYCLIST}
)
"""COCO-trained detectors' names, accepted in imported annotation files only: a file exported
from a detector's output reads as annotations, while a device must send a VRU class."""

DEFAULT_CLASS_MAP: Mapping[str, VruType] = DETECTOR_NAMES
"""A detector model's class names -> VRU classes, when its registration names none: the COCO
classes every COCO-trained detector (the YOLO family) reports."""

COCO_IDS: Mapping[int, str] = MappingProxyType({0: "person", 1: "bicycle", 3: "motorcycle"})
"""The COCO ids of those names: an architecture built from a `.yaml` with 80 classes has no
names, only numbers, and numbers COCO's order."""
COCO_CLASS_COUNT = 80


def default_class_map(class_names: Sequence[str]) -> dict[str, VruType]:
    """The default map restricted to the model's own class names (COCO ids for an unnamed
    80-class model); empty when none of its classes is a VRU."""
    names = list(class_names)
    if len(names) == COCO_CLASS_COUNT and all(n.strip().isdigit() for n in names):
        return {names[i]: DEFAULT_CLASS_MAP[coco] for i, coco in COCO_IDS.items()}
    return {
        n: DEFAULT_CLASS_MAP[n.strip().lower()]
        for n in names
        if n.strip().lower() in DEFAULT_CLASS_MAP
    }


_BY_NAME: Mapping[str, VruType] = MappingProxyType({**{t.value: t for t in VruType}, **VRU_ALIASES})


def canonical_class(label: object) -> VruType | None:
    """The class `label` names (case, surrounding blanks and `VRU_ALIASES` aside), or None."""
    if not isinstance(label, str):
        return None
    return _BY_NAME.get(label.strip().lower())


def vru_type_of(value: object, field: str = "vru_type") -> VruType:
    """`canonical_class`, refusing an unknown label with InvalidValue naming `field`."""
    found = canonical_class(value)
    if found is None:
        allowed = ", ".join(VRU_CLASSES)
        message = f"{field}: unknown VRU class {value!r}; allowed values: {allowed}"
        raise InvalidValue(field, message)
    return found
