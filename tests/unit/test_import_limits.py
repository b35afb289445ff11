"""Import files cannot exhaust the server: archives, documents and rows are bounded while they
are read, refusals name the limit and their kind (413/422 over HTTP), and values outside
`domain.limits` are refused row by row before anything is stored."""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats import coco, cvat, mot, verity_json, voc, yolo
from formats import common as formats_common
from formats.common import FormatError, Parsed, VideoInfo
from formats.import_limits import (
    MAX_ARCHIVE_ENTRIES,
    MAX_ITEMS,
    MAX_NESTING,
    MAX_TEXT_LINES,
    MAX_XML_NAMES,
    ImportTooDeep,
    ImportTooLarge,
    Refusal,
)
from tests.unit.import_files import (
    MiB,
    crafted_zip,
    deflated_zeros,
    lying_zip,
    parse_in_fresh_process,
    zip_bomb,
)

pytestmark = pytest.mark.unit

VIDEO = VideoInfo(id="v", name="v.mp4", width=1000, height=1000, fps=10.0, frame_count=500)
UNSIZED = VideoInfo(id="v", name="v.mp4", width=None, height=None, fps=10.0, frame_count=None)
GROWTH_BOUND = 64 * MiB
"""Most a refused hostile file may add to the parsing process's peak RSS."""


def zip_of(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def refused(module: Any, data: bytes, video: VideoInfo = VIDEO) -> FormatError:
    with pytest.raises(FormatError) as caught:
        module.parse(data, video)
    return caught.value


def fields(parsed: Parsed) -> list[str]:
    assert parsed.drafts == []
    return [issue.field for issue in parsed.issues]


# --- archives ---------------------------------------------------------------------------------


def test_an_honest_zip_bomb_is_refused_by_its_declared_size() -> None:
    err = refused(yolo, zip_bomb())
    assert (err.kind, type(err)) == (Refusal.TOO_LARGE, ImportTooLarge)
    assert "MAX_ENTRY_BYTES" in err.message


def test_a_zip_whose_headers_understate_its_size_never_inflates_past_the_claim() -> None:
    err = refused(yolo, lying_zip())
    assert err.kind is Refusal.UNREADABLE and "damaged" in err.message


def test_a_member_inflating_beyond_the_ratio_is_stopped_while_it_streams() -> None:
    raw, crc = deflated_zeros(3 * MiB)  # under the 4 MiB member cap, ~1000:1
    err = refused(yolo, crafted_zip([("labels/frame_000001.txt", raw, crc, 3 * MiB)]))
    assert err.kind is Refusal.TOO_LARGE and "MAX_COMPRESSION_RATIO" in err.message


def test_members_together_are_capped() -> None:
    text = b"0 0.5 0.5 0.1 0.1\n" * 200_000  # 3.6 MB, stored: under the member and ratio caps
    archive = zip_of({f"labels/frame_{i:06d}.txt": text for i in range(19)}, zipfile.ZIP_STORED)
    err = refused(yolo, archive)
    assert err.kind is Refusal.TOO_LARGE and "MAX_UNCOMPRESSED_BYTES" in err.message


def test_too_many_members_are_refused_before_the_index_is_built() -> None:
    raw, crc = deflated_zeros(0)
    many = crafted_zip([(f"{i}.txt", raw, crc, 0) for i in range(MAX_ARCHIVE_ENTRIES + 1)])
    err = refused(voc, many)
    assert err.kind is Refusal.TOO_LARGE and "MAX_ARCHIVE_ENTRIES" in err.message


def test_unbounded_compression_methods_and_encryption_are_refused() -> None:
    bzip = zip_of({"labels/frame_000001.txt": b"0 0.5 0.5 0.1 0.1\n"}, zipfile.ZIP_BZIP2)
    err = refused(yolo, bzip)
    assert err.kind is Refusal.UNSUPPORTED and "compression method 12" in err.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_damaged_archive_is_a_format_error_never_a_crash(data: st.DataObject) -> None:
    module = data.draw(st.sampled_from([yolo, voc]))
    archive = bytearray(
        zip_of({"classes.txt": b"pedestrian\n", "labels/frame_000001.txt": b"0 .5 .5 .1 .1\n"})
        if module is yolo
        else zip_of({"Annotations/frame_000001.xml": b"<annotation><object/></annotation>"})
    )
    for _ in range(data.draw(st.integers(1, 8))):
        archive[data.draw(st.integers(0, len(archive) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):  # anything else (a crash) fails the test
        module.parse(bytes(archive), VIDEO)


# --- documents --------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [verity_json, coco])
def test_json_nested_100000_deep_is_422_naming_the_limit(module: Any) -> None:
    err = refused(module, b"[" * 100_000 + b"]" * 100_000)
    assert (err.kind, type(err)) == (Refusal.UNSUPPORTED, ImportTooDeep)
    assert "MAX_NESTING" in err.message


def test_json_nesting_is_accepted_up_to_the_limit_and_refused_one_past_it() -> None:
    def document(depth: int) -> bytes:
        notes = b"[" * (depth - 3) + b"]" * (depth - 3)  # inside {"annotations":[{"notes":
        return b'{"annotations":[{"frame_number":1,"vru_type":"pedestrian","notes":%s}]}' % notes

    assert fields(verity_json.parse(document(MAX_NESTING), VIDEO)) == ["notes"]  # not a string
    assert refused(verity_json, document(MAX_NESTING + 1)).kind is Refusal.UNSUPPORTED


@pytest.mark.parametrize("module", [verity_json, coco])
def test_a_flood_of_json_values_is_413_before_decoding(module: Any) -> None:
    err = refused(module, b"[" + b"{}," * MAX_ITEMS + b"{}]")
    assert err.kind is Refusal.TOO_LARGE and "MAX_ITEMS" in err.message


def test_xml_entities_depth_and_floods_are_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE annotations [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><annotations>&b;</annotations>'
    )
    err = refused(cvat, laughs)
    assert err.kind is Refusal.UNSUPPORTED and "entities" in err.message
    deep = b"<annotations>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</annotations>"
    err = refused(cvat, deep)
    assert err.kind is Refusal.UNSUPPORTED and "MAX_NESTING" in err.message
    err = refused(cvat, b"<annotations>" + b"<a/>" * MAX_ITEMS + b"</annotations>")
    assert err.kind is Refusal.TOO_LARGE and "MAX_ITEMS" in err.message
    in_zip = zip_of({"Annotations/frame_000001.xml": laughs.replace(b"annotations", b"x")})
    assert refused(voc, in_zip).kind is Refusal.UNSUPPORTED


def test_one_huge_xml_tag_or_a_flood_of_invented_names_is_refused_early() -> None:
    attributes = b" ".join(b"a%d='1'" % i for i in range(100_000))  # one 1 MB tag
    err = refused(cvat, b"<annotations><track " + attributes + b"/></annotations>")
    assert err.kind is Refusal.TOO_LARGE and "MAX_XML_TOKEN" in err.message
    invented = b"".join(b"<t%d/>" % i for i in range(MAX_XML_NAMES + 1))
    err = refused(cvat, b"<annotations>" + invented + b"</annotations>")
    assert err.kind is Refusal.TOO_LARGE and "MAX_XML_NAMES" in err.message


def test_text_lines_are_capped_and_a_long_line_is_one_bad_row() -> None:
    err = refused(mot, b"\n" * MAX_TEXT_LINES)
    assert err.kind is Refusal.TOO_LARGE and "MAX_TEXT_LINES" in err.message
    parsed = mot.parse(b"1,1,1,1,5,5,1,1,1" + b",x" * 1_000_000 + b"\n", VIDEO)
    assert len(parsed.drafts) == 1  # columns past the tenth are not read
    labels = zip_of({"labels/frame_000001.txt": b"0 0.5 0.5 0.1 0.1" + b" 1" * 400_000})
    assert fields(yolo.parse(labels, VIDEO)) == ["line"]


def test_rows_beyond_the_cap_refuse_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats_common, "MAX_IMPORT_ROWS", 10)
    assert len(mot.parse(b"1,1,1,1,5,5\n" * 10, VIDEO).drafts) == 10
    err = refused(mot, b"1,1,1,1,5,5\n" * 11)
    assert err.kind is Refusal.TOO_LARGE and "MAX_IMPORT_ROWS" in err.message
    bad_images = msgspec.json.encode({"images": [{}] * 11, "annotations": []})
    assert refused(coco, bad_images).kind is Refusal.TOO_LARGE  # issues count as rows too


# --- values outside domain.limits --------------------------------------------------------------


def test_coco_values_out_of_range_are_refused_per_row() -> None:
    document = {
        "images": [
            {"id": 1, "frame_number": 2**40},
            {"id": 2, "frame_number": 1},
            {"id": [3], "frame_number": 1},
        ],
        "categories": [{"id": 1, "name": "pedestrian"}, {"id": {"x": 1}, "name": "cyclist"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"image_id": 2, "category_id": 1, "bbox": [1e308, 1, 5, 5]},
            {"image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 2},
            {
                "image_id": 2,
                "category_id": 1,
                "bbox": [1, 1, 5, 5],
                "attributes": {"track_id": "a\u0000b"},
            },
            {"image_id": 2, "category_id": "pedestrian\u0000", "bbox": [1, 1, 5, 5]},
            {"image_id": [2], "category_id": 1, "bbox": [1, 1, 5, 5]},
        ],
    }
    parsed = coco.parse(msgspec.json.encode(document), UNSIZED)
    assert fields(parsed) == [
        "images.id",
        "frame_number",
        "box.x",
        "confidence",
        "detection_id",
        "category_id",
        "image_id",
    ]


def test_verity_json_values_out_of_range_are_refused_per_row() -> None:
    box = {"x": 1, "y": 1, "width": 5, "height": 5}
    rows: list[dict[str, Any]] = [
        {"frame_number": 2**40, "vru_type": "pedestrian", "bounding_box": box},
        {"frame_number": 1, "vru_type": "pedestrian", "bounding_box": {**box, "x": 1e308}},
        {"frame_number": 1, "vru_type": "pedestrian", "notes": "x\u0000"},
        {"frame_number": 1, "vru_type": "pedestrian", "annotator": "a" * 300},
        {"frame_number": 1, "vru_type": "pedestrian", "timestamp": 1e300},
        {"frame_number": 1, "vru_type": "pedestrian\u0000"},
        {"frame_number": 1, "vru_type": "pedestrian", "detection_id": "t" * 129},
    ]
    parsed = verity_json.parse(msgspec.json.encode(rows), UNSIZED)
    assert fields(parsed) == [
        "frame_number",
        "box.x",
        "notes",
        "annotator",
        "timestamp",
        "vru_type",
        "detection_id",
    ]


def test_cvat_values_out_of_range_are_refused_per_row() -> None:
    xml = (
        b'<annotations><track id="1" label="pedestrian">'
        b'<box frame="1099511627776" keyframe="1" outside="0" xtl="1" ytl="1" xbr="5" ybr="5"/>'
        b"</track>"
        b'<track id="2" label="pedestrian">'
        b'<box frame="\xc2\xb2" keyframe="1" outside="0" xtl="1" ytl="1" xbr="5" ybr="5"/></track>'
        b'<track id="3" label="pedestrian">'
        b'<box frame="9' + b"9" * 5000 + b'" keyframe="1" outside="0" xtl="1" ytl="1" xbr="5" '
        b'ybr="5"/></track>'
        b'<track id="4" label="pedestrian">'
        b'<box frame="1" keyframe="1" outside="0" xtl="nan" ytl="1" xbr="5" ybr="5"/></track>'
        b'<track id="5" label="pedestrian"><box frame="1" keyframe="1" outside="0" xtl="1" ytl="1" '
        b'xbr="5" ybr="5"><attribute name="detection_id">' + b"d" * 200 + b"</attribute></box>"
        b"</track></annotations>"
    )
    parsed = cvat.parse(xml, UNSIZED)
    assert fields(parsed) == ["frame_number", "frame", "frame", "xtl", "detection_id"]


def test_mot_values_out_of_range_are_refused_per_line() -> None:
    text = b"\n".join(
        [
            b"1099511627777,1,1,1,5,5,1,1,1",
            b"1,1,1e308,1,5,5,1,1,1",
            b"1,1,1,1,5,5,1,1,inf",
            b"9" + b"9" * 5000 + b",1,1,1,5,5,1,1,1",
            b"1," + b"7" * 300 + b",1,1,5,5,1,1,1",
        ]
    )
    assert fields(mot.parse(text, UNSIZED)) == [
        "frame_number",
        "box.x",
        "visibility",
        "frame",
        "detection_id",
    ]


def test_yolo_and_voc_frame_numbers_out_of_range_are_refused_per_file() -> None:
    huge = "9" * 5000
    labels = zip_of(
        {
            f"labels/frame_{2**40}.txt": b"0 0.5 0.5 0.1 0.1\n",
            f"labels/frame_{huge}.txt": b"0 0.5 0.5 0.1 0.1\n",
            "labels/frame_000001.txt": b"0 1e300 0.5 0.1 0.1\n",
        }
    )
    assert fields(yolo.parse(labels, VIDEO)) == ["box.width", "file", "file"]
    frame_xml = (
        b"<annotation><filename>frame_1099511627776.jpg</filename><object><name>pedestrian"
        b"</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>"
        b"</object></annotation>"
    )
    box_xml = frame_xml.replace(b"1099511627776", b"1").replace(b"<xmin>1<", b"<xmin>-1e308<")
    archive = zip_of({"Annotations/frame_a.xml": frame_xml, "Annotations/frame_b.xml": box_xml})
    assert fields(voc.parse(archive, UNSIZED)) == ["filename", "box.x"]


# --- memory, measured in a fresh process ------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "make", "kind"),
    [
        ("yolo", zip_bomb, Refusal.TOO_LARGE),
        ("yolo", lying_zip, Refusal.UNREADABLE),
        ("pascal_voc", zip_bomb, Refusal.TOO_LARGE),
        ("json", lambda: b"[" * 100_000 + b"]" * 100_000, Refusal.UNSUPPORTED),
        ("coco", lambda: b"[" + b"{}," * MAX_ITEMS + b"{}]", Refusal.TOO_LARGE),
        (
            "cvat",
            lambda: b"<annotations>" + b"<a/>" * MAX_ITEMS + b"</annotations>",
            Refusal.TOO_LARGE,
        ),
    ],
    ids=["yolo-bomb", "yolo-lying-zip", "voc-bomb", "json-deep", "coco-flood", "cvat-flood"],
)
def test_hostile_files_are_refused_within_the_memory_bound(
    fmt: str, make: Any, kind: Refusal, tmp_path: Path
) -> None:
    """Each of these inflates to 480 MB or 3M objects (~250 MB) if parsed naively."""
    result = parse_in_fresh_process(fmt, make(), tmp_path)
    assert result.get("kind") == kind.value, result
    assert result["growth"] < GROWTH_BOUND, result


def test_an_archive_entry_without_a_name_is_a_format_error() -> None:
    # found by the fuzz test above: zipfile's own ZipInfo.is_dir() fails on an empty name
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("classes.txt", b"pedestrian\n")
        archive.writestr(zipfile.ZipInfo(""), b"0 .5 .5 .1 .1\n")
    with pytest.raises(FormatError):
        yolo.parse(buffer.getvalue(), VIDEO)
