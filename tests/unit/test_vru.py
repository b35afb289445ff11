"""The VRU classes and their aliases are defined once (domain/vru.py) and every edge reads a
label through the one `canonical_class`: unknown labels are None there, refused at each edge."""

from __future__ import annotations

import ast
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.device_messages import DetectionIn
from domain.errors import InvalidValue
from domain.vru import (
    DETECTOR_NAMES,
    VRU_ALIASES,
    VRU_CLASSES,
    VruType,
    canonical_class,
    vru_type_of,
)
from formats.common import VRU_ORDER, class_of

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("domain", "commands", "projections", "formats", "api", "workers", "verity")
HOME = Path("domain/vru.py")
NAMES = {*VRU_CLASSES, *VRU_ALIASES, *DETECTOR_NAMES}
labels = st.one_of(
    st.text(max_size=20),
    st.sampled_from(sorted(NAMES)).map(lambda n: f" {n.upper()} "),
    st.sampled_from(sorted(NAMES)),
)


def test_every_class_names_itself_and_aliases_name_their_class() -> None:
    assert tuple(t.value for t in VruType) == VRU_CLASSES
    for cls in VruType:
        assert canonical_class(cls.value) is cls
        assert canonical_class(f"  {cls.value.upper()}\t") is cls
    assert canonical_class("wheelchair") is VruType.WHEELCHAIR_USER
    assert canonical_class("Scooter") is VruType.SCOOTER_RIDER


@pytest.mark.parametrize("label", ["truck", "", "person", "pedestrians", "wheel chair", None, 3])
def test_an_unknown_label_is_none_never_passed_through(label: object) -> None:
    assert canonical_class(label) is None


def test_the_annotation_edge_refuses_unknown_labels_naming_the_field() -> None:
    assert vru_type_of(" Wheelchair ") is VruType.WHEELCHAIR_USER
    with pytest.raises(InvalidValue) as err:
        vru_type_of("truck", "objects[2].label")
    assert err.value.field == "objects[2].label"
    assert all(name in err.value.detail for name in VRU_CLASSES)


@given(labels)
def test_the_device_edge_takes_exactly_what_canonical_class_takes(label: str) -> None:
    expected = canonical_class(label)
    if expected is None:
        with pytest.raises(ValueError, match="classLabel"):
            DetectionIn(class_label=label)
    else:
        detection = DetectionIn(class_label=label)
        assert detection.class_label == expected.value
        assert type(detection.class_label) is str  # stored as the plain canonical name


@given(labels)
def test_files_take_canonical_classes_plus_detector_names(label: str) -> None:
    expected = canonical_class(label) or DETECTOR_NAMES.get(label.strip().lower())
    if expected is None:
        with pytest.raises(InvalidValue):
            class_of(label)
    else:
        assert class_of(label) is expected


def test_class_ids_of_the_id_based_formats_follow_the_one_table() -> None:
    assert tuple(VRU_ORDER) == tuple(VruType)


def test_device_schema_and_error_name_the_same_classes() -> None:
    with pytest.raises(msgspec.ValidationError) as err:
        msgspec.convert({"classLabel": "truck"}, DetectionIn)
    assert ", ".join(VRU_CLASSES) in str(err.value)


def _label_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.strip().lower() in NAMES
    ]


def test_no_module_but_domain_vru_spells_a_class_or_alias() -> None:
    """A second copy of the table (a tuple of names, an alias dict, a default label) drifts;
    every module names classes through VruType, VRU_CLASSES or canonical_class instead."""
    found = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.relative_to(ROOT) != HOME
        for line, value in _label_literals(path)
    ]
    assert found == []
    assert len(_label_literals(ROOT / HOME)) >= len(NAMES)  # the scan does see the table
