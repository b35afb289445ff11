"""HTTP range and conditional requests on a stored file (RFC 9110 §13-14), as pure decisions.

A player seeks by asking for byte ranges and revalidates what it cached by ETag; this module
turns a request's headers and a file's size and validators into what to answer, so the rules
can be tested (and attacked) without a server. Decisions where the RFC lets a server choose:
- a `Range` naming several ranges is ignored (200 with the whole file): players ask for one,
  and multipart answers are what range-amplification attacks feed on;
- a `Range` in the `bytes` unit that does not parse, or whose ranges are all unsatisfiable, is
  416 (the RFC allows ignoring a malformed one; a clear refusal is easier to debug);
- a `Range` in another unit is ignored, as the RFC requires;
- HEAD ignores `Range` (the RFC defines ranges for GET only) and answers the full headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

MAX_DIGITS = 19
"""Digits a byte position may have and still be read as a number: more is beyond any file."""
MAX_RANGES = 100
"""Range specs read from one header; a longer list is refused (416) without reading on."""

_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
_ETAG = re.compile(r'\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*')


@dataclass(frozen=True)
class Validators:
    """What identifies one version of a file: a strong ETag and its modification time."""

    size: int
    mtime_ns: int

    @property
    def etag(self) -> str:
        """Strong: a stored file is written once (renamed into place) and never changed, so
        size and nanosecond mtime name its bytes."""
        return f'"{self.size:x}-{self.mtime_ns:x}"'

    @property
    def modified_at(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns // 1_000_000_000, UTC)

    @property
    def last_modified(self) -> str:
        return format_datetime(self.modified_at, usegmt=True)


@dataclass(frozen=True)
class Answer:
    """What to send: a status, and for 206 the inclusive byte range."""

    status: int
    first: int = 0
    last: int = -1
    detail: str = ""

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def _position(digits: str) -> int:
    """A byte position; one with more than MAX_DIGITS digits is beyond every file."""
    return int(digits) if len(digits) <= MAX_DIGITS else 10**MAX_DIGITS


def _spec(spec: str, size: int) -> tuple[int, int] | Answer | None:
    """One range spec: its satisfiable (first, last), None when it lies outside the file, or
    the 416 for a spec that does not parse."""
    match = _SPEC.fullmatch(spec)
    if match is None or spec == "-":
        return Answer(416, detail=f"Range: {spec[:40]!r} is not a byte range")
    first, last = match.groups()
    if not first:  # suffix: the last N bytes
        n = _position(last)
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    start = _position(first)
    end = _position(last) if last else size - 1
    if end < start:
        return Answer(416, detail=f"Range: {spec[:40]!r} ends before it starts")
    return (start, min(end, size - 1)) if start < size else None


def parse_range(header: str, size: int) -> Answer | None:
    """The answer to `Range: header` for a file of `size` bytes; None means ignore it (200)."""
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None  # another unit (or none): the RFC says ignore
    parts = specs.split(",")
    if len(parts) > MAX_RANGES:
        return Answer(416, detail=f"Range: more than {MAX_RANGES} ranges")
    ranges: list[tuple[int, int]] = []
    for part in parts:
        found = _spec(part.strip(" \t"), size)
        if isinstance(found, Answer):
            return found
        if found is not None:
            ranges.append(found)
    if not ranges:
        return Answer(416, detail=f"Range: nothing in {header[:60]!r} lies within {size} bytes")
    if len(parts) > 1:
        return None  # several ranges: ignored (see the module's decisions)
    return Answer(206, *ranges[0])


def etags_of(header: str) -> list[tuple[bool, str]] | None:
    """(weak, opaque tag) of each entity tag in a list; None for `*`."""
    if header.strip() == "*":
        return None
    tags: list[tuple[bool, str]] = []
    for item in header.split(","):
        match = _ETAG.fullmatch(item)
        if match:
            tags.append((match.group(1) is not None, match.group(2)))
    return tags


def _date(header: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _matches(header: str, etag: str, *, weak: bool) -> bool:
    tags = etags_of(header)
    if tags is None:
        return True
    return any(tag == etag and (weak or not is_weak) for is_weak, tag in tags)


def _conditions(headers: dict[str, str], v: Validators) -> Answer | None:
    """412 or 304 from the preconditions, in RFC 9110 §13.2.2's order; None to go on."""
    if_match = headers.get("if-match")
    if if_match is not None and not _matches(if_match, v.etag, weak=False):
        return Answer(412, detail="If-Match: the file has changed")
    since = None if if_match is not None else _date(headers.get("if-unmodified-since", ""))
    if since is not None and v.modified_at > since:
        return Answer(412, detail="If-Unmodified-Since: the file has changed")
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return Answer(304) if _matches(if_none_match, v.etag, weak=True) else None
    since = _date(headers.get("if-modified-since", ""))
    return Answer(304) if since is not None and v.modified_at <= since else None


def decide(method: str, headers: dict[str, str], v: Validators) -> Answer:
    """The answer for GET/HEAD with these (lower-cased) headers."""
    if (early := _conditions(headers, v)) is not None:
        return early
    full = Answer(200, 0, v.size - 1)
    range_header = headers.get("range")
    if method != "GET" or range_header is None:
        return full
    if_range = headers.get("if-range")
    if if_range is not None and not _if_range_holds(if_range.strip(), v):
        return full
    return parse_range(range_header, v.size) or full


def _if_range_holds(value: str, v: Validators) -> bool:
    """If-Range: an ETag compared strongly, or exactly our Last-Modified date."""
    if value.startswith(('"', "W/")):
        return _matches(value, v.etag, weak=False) and not value.startswith("W/")
    return _date(value) == v.modified_at
