"""YOLO: a zip of per-frame `labels/frame_NNNNNN.txt` (class cx cy w h, normalised by the
video's resolution, 6 decimals) and `classes.txt`."""

from __future__ import annotations

from collections import defaultdict

from domain.annotations import AnnotationDraft, AnnotationState, BoundingBox
from domain.errors import InvalidValue
from domain.vru import VruType
from formats.common import (
    VRU_ORDER,
    FormatError,
    Location,
    Parsed,
    VideoInfo,
    class_of,
    expand,
    frame_from_name,
    imported_draft,
    integer,
    number,
)
from formats.documents import text_lines
from formats.zips import BoundedZip, write_zip

MEDIA_TYPE = "application/zip"
EXTENSION = "zip"


def _size(video: VideoInfo) -> tuple[int, int]:
    if video.frame_size is None:
        raise FormatError(
            "format: YOLO coordinates are relative to the frame, and this video's "
            "resolution is unknown"
        )
    return video.frame_size


def _n(value: float) -> str:
    return f"{value:.6f}"


def export(states: list[AnnotationState], video: VideoInfo, interpolate: bool) -> bytes:
    width, height = _size(video)
    lines: dict[int, list[str]] = defaultdict(list)
    for s, _ in expand(states, interpolate):
        if s.box is None:
            continue
        b = s.box
        cls = VRU_ORDER.index(VruType(s.vru_type))
        lines[s.frame_number].append(
            f"{cls} {_n((b.x + b.width / 2) / width)} {_n((b.y + b.height / 2) / height)}"
            f" {_n(b.width / width)} {_n(b.height / height)}"
        )
    files = {
        f"labels/frame_{f:06d}.txt": ("\n".join(rows) + "\n").encode() for f, rows in lines.items()
    }
    files["classes.txt"] = ("\n".join(c.value for c in VRU_ORDER) + "\n").encode()
    return write_zip(files)


def _line(
    text: str, frame: int, classes: list[VruType], size: tuple[int, int], video: VideoInfo
) -> AnnotationDraft:
    parts = text.split(maxsplit=5)
    if len(parts) != 5:
        raise InvalidValue("line", f"line: expected 'class cx cy w h', got {text[:80]!r}")
    index = integer(parts[0], "class")
    if not 0 <= index < len(classes):
        raise InvalidValue(
            "class", f"class: id {index} is not in classes.txt (0..{len(classes) - 1})"
        )
    cx, cy, w, h = (
        number(v, name) for v, name in zip(parts[1:], ("cx", "cy", "w", "h"), strict=True)
    )
    width, height = size
    box = BoundingBox((cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height)
    return imported_draft(video, frame, classes[index], box)


def _classes(archive: BoundedZip, name: str) -> list[VruType]:
    classes = []
    for i, line in enumerate(text_lines(archive.read(name), name), start=1):
        if not line.strip():
            continue
        try:
            classes.append(class_of(line.strip(), "classes.txt"))
        except InvalidValue as err:
            raise FormatError(f"{name} line {i}: {err.detail}", line=i, file=name) from None
    return classes


def parse(data: bytes, video: VideoInfo) -> Parsed:
    size = _size(video)
    parsed = Parsed()
    with BoundedZip(data) as archive:
        files = archive.names()
        names = [n for n in files if n.rsplit("/", 1)[-1] in {"classes.txt", "obj.names"}]
        classes = _classes(archive, names[0]) if names else list(VRU_ORDER)
        for name in files:
            if name.endswith(".txt") and name not in names:
                lines = text_lines(archive.read(name), name)
                _frame_file(parsed, name, lines, classes, size, video)
    return parsed


def _frame_file(
    parsed: Parsed,
    name: str,
    lines: list[str],
    classes: list[VruType],
    size: tuple[int, int],
    video: VideoInfo,
) -> None:
    try:
        frame = frame_from_name(name)
    except InvalidValue as err:
        parsed.refuse(Location(file=name), "file", err.detail)
        return
    for number_, line in enumerate(lines, start=1):
        text = line.strip()
        if text:
            where = Location(file=name, line=number_)
            parsed.add(
                where, lambda text=text, frame=frame: _line(text, frame, classes, size, video)
            )
