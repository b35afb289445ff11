"""Annotation file formats: export -> import -> export is identical; bad files are refused
with the row/line and field named."""

from __future__ import annotations

import io
import zipfile
from types import ModuleType
from typing import Any
from uuid import uuid4

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.annotations import AnnotationDraft, AnnotationState, BoundingBox
from domain.vru import VruType
from formats import FORMATS, coco, cvat, mot, verity_json, voc, yolo
from formats.common import FormatError, VideoInfo

pytestmark = pytest.mark.unit

VIDEO = VideoInfo(id="v", name="v.mp4", width=1000, height=1000, fps=10.0, frame_count=500)
VIDEO_ID = uuid4()


def state_of(d: AnnotationDraft) -> AnnotationState:
    return AnnotationState(
        id=uuid4(),
        video_id=VIDEO_ID,
        version=1,
        frame_number=d.frame_number,
        timestamp=d.timestamp,
        end_timestamp=d.end_timestamp,
        vru_type=d.vru_type.value,
        box=d.box,
        occluded=d.occluded,
        truncated=d.truncated,
        difficult=d.difficult,
        validated=d.validated,
        deleted=False,
        source=d.source.value,
        detection_id=d.detection_id,
        annotator=d.annotator,
        notes=d.notes,
        confidence=d.confidence,
    )


@st.composite
def annotation(draw: Any, float_boxes: bool = False) -> AnnotationState:
    frame = draw(st.integers(0, 60))
    if float_boxes:
        x = draw(st.floats(0, 900, allow_nan=False))
        y = draw(st.floats(0, 900, allow_nan=False))
        w = draw(st.floats(0.001, 99, allow_nan=False))
        h = draw(st.floats(0.001, 99, allow_nan=False))
    else:  # whole pixels, even sizes: every format carries these exactly
        x, y = draw(st.integers(0, 900)), draw(st.integers(0, 900))
        w, h = 2 * draw(st.integers(1, 50)), 2 * draw(st.integers(1, 50))
    return state_of(
        AnnotationDraft(
            frame_number=frame,
            timestamp=frame / 10,
            vru_type=draw(st.sampled_from(list(VruType))),
            box=BoundingBox(float(x), float(y), float(w), float(h)),
            occluded=draw(st.booleans()),
            truncated=draw(st.booleans()),
            difficult=draw(st.booleans()),
            validated=draw(st.booleans()),
            detection_id=draw(st.sampled_from([None, "T1", "T2", "PED_7"])),
            notes=draw(st.sampled_from([None, "near curb", "ünïcode"])),
            annotator=draw(st.sampled_from([None, "ana"])),
            confidence=draw(st.sampled_from([None, 0.5, 0.875])),
        )
    )


def distinct(states: list[AnnotationState]) -> list[AnnotationState]:
    """One box per (frame, x) and per (track, frame): real files never repeat those."""
    seen: set[Any] = set()
    out = []
    for s in states:
        keys = {("fx", s.frame_number, s.box.x if s.box else None)}
        if s.detection_id is not None:
            keys.add(("track", s.detection_id, s.frame_number))
        if keys & seen:
            continue
        seen |= keys
        out.append(s)
    return out


def round_trip(
    module: ModuleType, states: list[AnnotationState], interpolate: bool = False
) -> None:
    first = module.export(states, VIDEO, interpolate)
    parsed = module.parse(first, VIDEO)
    assert parsed.issues == []
    second = module.export([state_of(d) for d in parsed.drafts], VIDEO, interpolate)
    assert second == first


many = st.lists(annotation(), max_size=25).map(distinct)


@pytest.mark.parametrize(
    "module", [verity_json, coco, yolo, voc, cvat, mot], ids=lambda m: m.__name__
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states=many)
def test_export_import_export_is_identical(
    module: ModuleType, states: list[AnnotationState]
) -> None:
    round_trip(module, states)


@pytest.mark.parametrize("module", [verity_json, coco], ids=lambda m: m.__name__)
@settings(max_examples=40, deadline=None)
@given(states=st.lists(annotation(float_boxes=True), max_size=15).map(distinct))
def test_float_exact_formats_round_trip_any_box(
    module: ModuleType, states: list[AnnotationState]
) -> None:
    round_trip(module, states)


@settings(max_examples=25, deadline=None)
@given(states=many)
def test_cvat_round_trips_with_interpolated_frames(states: list[AnnotationState]) -> None:
    round_trip(cvat, states, interpolate=True)


def track(*frames: int) -> list[AnnotationState]:
    return [
        state_of(
            AnnotationDraft(
                frame_number=f,
                timestamp=f / 10,
                vru_type=VruType.CYCLIST,
                box=BoundingBox(10.0 + f, 20, 30, 40),
                detection_id="DET_CYC_0001",
            )
        )
        for f in frames
    ]


@pytest.mark.parametrize("name", ["json", "coco", "yolo", "pascal", "pascal_voc", "cvat", "mot"])
def test_keyframes_zero_and_ten_export_eleven_boxes_when_interpolated(name: str) -> None:
    module = FORMATS[name]
    states = track(0, 10)
    plain = module.parse(module.export(states, VIDEO, False), VIDEO).drafts
    full = module.parse(module.export(states, VIDEO, True), VIDEO).drafts
    assert len(plain) == 2
    expected = 2 if module is cvat else 11  # CVAT marks in-between frames as non-keyframes
    assert len(full) == expected
    if module is not cvat:
        assert sorted(d.frame_number for d in full) == list(range(11))


def test_cvat_marks_interpolated_boxes_as_non_keyframes() -> None:
    text = cvat.export(track(0, 10), VIDEO, True).decode()
    assert text.count('keyframe="0"') == 9 and text.count('outside="1"') == 1


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("module", [yolo, voc])
def test_zip_with_escaping_path_is_refused(module: ModuleType) -> None:
    with pytest.raises(FormatError, match="escapes"):
        module.parse(zip_of({"../../etc/evil.txt": b"0 0.5 0.5 0.1 0.1"}), VIDEO)


@pytest.mark.parametrize("module", [yolo, voc])
def test_truncated_zip_is_refused(module: ModuleType) -> None:
    data = module.export(track(0, 5), VIDEO, False)
    with pytest.raises(FormatError, match="zip"):
        module.parse(data[: len(data) // 2], VIDEO)


@pytest.mark.parametrize("module", [verity_json, coco])
def test_bad_json_is_refused(module: ModuleType) -> None:
    with pytest.raises(FormatError, match="JSON"):
        module.parse(b'{"annotations": [', VIDEO)


def test_bad_xml_is_refused_with_its_line() -> None:
    with pytest.raises(FormatError) as err:
        cvat.parse(b"<annotations>\n<track id='0' label='pedestrian'>\n<box frame=1>", VIDEO)
    assert err.value.line is not None


def test_entity_expansion_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><annotations>&lol2;</annotations>'
    )
    with pytest.raises(FormatError, match="unsafe"):
        cvat.parse(bomb, VIDEO)


def test_yolo_needs_the_video_resolution() -> None:
    unknown = msgspec.structs.replace(VIDEO, width=None, height=None)
    with pytest.raises(FormatError, match="resolution"):
        yolo.export(track(0), unknown, False)


def test_bad_rows_are_listed_with_row_and_field_and_good_rows_kept() -> None:
    document = {
        "images": [{"id": 1, "file_name": "frame_000003.jpg"}],
        "categories": [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "truck"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [990, 2, 30, 4]},
            {"id": 3, "image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4]},
            {"id": 4, "image_id": 9, "category_id": 1, "bbox": [1, 2, 3, 4]},
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, 0, 4]},
        ],
    }
    parsed = coco.parse(msgspec.json.encode(document), VIDEO)
    assert len(parsed.drafts) == 1 and parsed.drafts[0].frame_number == 3
    assert [(i.row, i.field) for i in parsed.issues] == [
        (1, "box.width"),
        (2, "category_id"),
        (3, "image_id"),
        (4, "box.width"),
    ]


def test_mot_and_yolo_issues_name_the_line() -> None:
    parsed = mot.parse(b"1,1,10,10,5,5,1,1,1\n0,1,10,10,5,5,1,1,1\n2,x,1,1,1,1\n", VIDEO)
    assert [(i.line, i.field) for i in parsed.issues] == [(2, "frame"), (3, "id")]
    data = zip_of({"labels/frame_000001.txt": b"0 0.5 0.5 0.1 0.1\n9 0.5 0.5 0.1 0.1\n"})
    parsed = yolo.parse(data, VIDEO)
    assert len(parsed.drafts) == 1
    assert [(i.file, i.line, i.field) for i in parsed.issues] == [
        ("labels/frame_000001.txt", 2, "class")
    ]


def test_original_backend_json_export_shape_imports() -> None:
    original = {
        "annotations": [
            {
                "id": "x",
                "detection_id": "DET_PED_0001",
                "frame_number": 30,
                "timestamp": 1.0,
                "vru_type": "wheelchair",
                "bounding_box": {"x": 320, "y": 240, "width": 80, "height": 160, "label": "p"},
                "validated": True,
            }
        ]
    }
    parsed = verity_json.parse(msgspec.json.encode(original), VIDEO)
    assert parsed.issues == []
    (d,) = parsed.drafts
    assert (d.vru_type, d.detection_id, d.validated) == (
        VruType.WHEELCHAIR_USER,
        "DET_PED_0001",
        True,
    )
