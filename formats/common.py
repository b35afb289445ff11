"""What every annotation file format shares: the video it describes, parse results, row checks.

Parsers never store anything: they turn bytes into checked drafts plus a list of issues, each
naming where (row, line or file) and which field is wrong, so a caller can refuse the whole
file or import only the valid rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from domain.annotations import (
    AnnotationDraft,
    AnnotationState,
    BoundingBox,
    Source,
    check_draft,
)
from domain.errors import InvalidValue
from domain.limits import (
    MAX_FRAME_NUMBER,
    Coordinate,
    Fraction,
    FrameNumber,
    Identifier,
    OptionalName,
    Seconds,
    Size,
    Text,
)
from domain.tracks import interpolate_track
from domain.vru import DETECTOR_NAMES, VruType, vru_type_of
from formats.import_limits import MAX_IMPORT_ROWS, ImportTooLarge
from formats.import_limits import FormatError as FormatError  # noqa: PLC0414 - re-exported

VRU_ORDER: tuple[VruType, ...] = tuple(VruType)
"""Class ids of the id-based formats (COCO 1-based, YOLO 0-based, MOT 1-based) follow this."""

_DIGITS = re.compile(r"(\d+)(?!.*\d)")


class VideoInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    width: int | None
    height: int | None
    fps: float | None
    frame_count: int | None

    @property
    def frame_size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None


class Issue(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    field: str
    message: str
    row: int | None = None
    line: int | None = None
    file: str | None = None


class Location(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    row: int | None = None
    line: int | None = None
    file: str | None = None


class Parsed(msgspec.Struct, kw_only=True):
    drafts: list[AnnotationDraft] = msgspec.field(default_factory=list)
    issues: list[Issue] = msgspec.field(default_factory=list)

    def add(self, where: Location, make: Any) -> None:
        """Run `make()` (which builds and returns a draft); record an issue if it refuses.

        Refuses the whole file (ImportTooLarge) past MAX_IMPORT_ROWS rows, valid or not."""
        self._make_room(where)
        try:
            draft = make()
        except InvalidValue as err:
            self.issues.append(self.issue(where, err.field, err.detail))
            return
        except (ValueError, TypeError, KeyError, IndexError) as err:
            self.issues.append(self.issue(where, "row", f"cannot read this row: {err}"))
            return
        if draft is not None:
            self.drafts.append(draft)

    def refuse(self, where: Location, field: str, message: str) -> None:
        """Record an issue that is not a row's (a file, an image); counted like a row."""
        self._make_room(where)
        self.issues.append(self.issue(where, field, message))

    def _make_room(self, where: Location) -> None:
        if len(self.drafts) + len(self.issues) >= MAX_IMPORT_ROWS:
            raise ImportTooLarge(
                f"file: more than {MAX_IMPORT_ROWS} annotation rows (MAX_IMPORT_ROWS); "
                "split the file into several imports",
                file=where.file,
            )

    @staticmethod
    def issue(where: Location, field: str, message: str) -> Issue:
        return Issue(field=field, message=message, row=where.row, line=where.line, file=where.file)


def class_of(value: Any, field: str = "vru_type") -> VruType:
    if isinstance(value, str) and value.strip().lower() in DETECTOR_NAMES:
        return DETECTOR_NAMES[value.strip().lower()]
    return vru_type_of(value, field)


def class_by_index(index: int, base: int, field: str) -> VruType:
    if not base <= index < base + len(VRU_ORDER):
        raise InvalidValue(
            field, f"{field}: class id {index} is not one of {base}..{base + len(VRU_ORDER) - 1}"
        )
    return VRU_ORDER[index - base]


def frame_from_name(name: str, field: str = "file") -> int:
    """The frame number a per-frame file is named after (the last digits in its name)."""
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    found = _DIGITS.search(stem)
    if found is None:
        raise InvalidValue(field, f"{field}: {name!r} names no frame number")
    digits = found.group(1).lstrip("0") or "0"
    if len(digits) > len(str(MAX_FRAME_NUMBER)) or int(digits) > MAX_FRAME_NUMBER:
        raise InvalidValue(
            field, f"{field}: frame number in {name[:80]!r} is over {MAX_FRAME_NUMBER}"
        )
    return int(digits)


def seconds_of(frame: int, video: VideoInfo) -> float:
    return frame / video.fps if video.fps else 0.0


def number(value: Any, field: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise InvalidValue(field, f"{field}: expected a number, got {value!r}") from None
    if not math.isfinite(result):
        raise InvalidValue(field, f"{field}: expected a finite number, got {value!r}")
    return result


def integer(value: Any, field: str) -> int:
    result = number(value, field)
    if result != int(result):
        raise InvalidValue(field, f"{field}: expected a whole number, got {value!r}")
    return int(result)


def flag(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes"}:
        return True
    if text in {"0", "false", "no", ""}:
        return False
    raise InvalidValue(field, f"{field}: expected 0/1 or true/false, got {value!r}")


class _BoxRanges(msgspec.Struct, frozen=True):
    x: Coordinate
    y: Coordinate
    width: Size
    height: Size


class _DraftRanges(msgspec.Struct, frozen=True, kw_only=True):
    """The `domain.limits` range of every imported value that reaches an event and a column."""

    frame_number: FrameNumber
    timestamp: Seconds
    end_timestamp: Seconds | None = None
    box: _BoxRanges | None = None
    detection_id: Identifier | None = None
    annotator: OptionalName | None = None
    notes: Text | None = None
    confidence: Fraction | None = None


def check_ranges(draft: AnnotationDraft) -> None:
    """InvalidValue naming the field when a value is outside `domain.limits` (frame 2**40,
    a 1e308 box, NUL in a track id), so everything an import stores can be projected."""
    try:
        msgspec.convert(draft, _DraftRanges, from_attributes=True)
    except msgspec.ValidationError as err:
        text = str(err)
        message, _, path = text.partition(" - at `$.")
        field = path.rstrip("`") or "row"
        raise InvalidValue(field, f"{field}: {message}") from None


def checked(draft: AnnotationDraft, video: VideoInfo) -> AnnotationDraft:
    check_draft(draft, video.frame_size, video.frame_count)
    check_ranges(draft)
    return draft


def imported_draft(
    video: VideoInfo,
    frame: int,
    vru_type: VruType,
    box: BoundingBox | None,
    **extra: Any,
) -> AnnotationDraft:
    """A checked draft from a format that may not carry time: time is derived from the fps."""
    extra.setdefault("timestamp", seconds_of(frame, video))
    extra.setdefault("source", Source.IMPORTED)
    return checked(AnnotationDraft(frame_number=frame, vru_type=vru_type, box=box, **extra), video)


def fmt(value: float, places: int = 3) -> str:
    """A coordinate rounded to `places` decimals, written without trailing zeros."""
    text = f"{round(value, places):.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def export_order(states: Iterable[AnnotationState]) -> list[AnnotationState]:
    """A content-based order (not ids), so re-exporting an import gives the same file."""

    def key(s: AnnotationState) -> tuple[Any, ...]:
        b = s.box
        coords = (b.x, b.y, b.width, b.height) if b is not None else (-1.0, -1.0, -1.0, -1.0)
        return (s.frame_number, *coords, s.vru_type, s.detection_id or "", s.timestamp)

    return sorted(states, key=key)


def expand(
    states: Iterable[AnnotationState], interpolate: bool
) -> list[tuple[AnnotationState, bool]]:
    """(state, is_keyframe) for export: with `interpolate`, tracks gain their in-between frames,
    each a copy of its preceding keyframe with the interpolated time and box."""
    live = [s for s in states if not s.deleted]
    if not interpolate:
        return [(s, True) for s in export_order(live)]
    by_id = {s.id: s for s in live}
    tracks: dict[str, list[AnnotationState]] = {}
    out: list[tuple[AnnotationState, bool]] = []
    for s in live:
        if s.detection_id is None:
            out.append((s, True))
        else:
            tracks.setdefault(s.detection_id, []).append(s)
    for keyframes in tracks.values():
        for tb in interpolate_track(keyframes):
            source = by_id[tb.annotation_id]
            if tb.keyframe:
                out.append((source, True))
            else:
                copy = msgspec.structs.replace(
                    source, frame_number=tb.frame_number, timestamp=tb.timestamp, box=tb.box
                )
                out.append((copy, False))
    order = {id(s): i for i, s in enumerate(export_order(s for s, _ in out))}
    out.sort(key=lambda pair: order[id(pair[0])])
    return out
