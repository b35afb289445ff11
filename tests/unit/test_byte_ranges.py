"""Range and conditional requests decided without a server: RFC 9110's cases and attacks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.byte_ranges import MAX_RANGES, Answer, Validators, decide, etags_of, parse_range
from api.uploads import served_name

pytestmark = pytest.mark.unit

SIZE = 1000
V = Validators(size=SIZE, mtime_ns=1_700_000_000_123_456_789)


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=100-199", 100, 199),
        ("bytes=0-0", 0, 0),
        ("bytes=-500", 500, 999),
        ("bytes=-5000", 0, 999),  # longer than the file: all of it
        ("bytes=100-", 100, 999),
        ("bytes=990-5000", 990, 999),  # last beyond the end is cut
        ("BYTES = 5-9", 5, 9),
        ("bytes=0-999999999999999999999", 0, 999),
        ("bytes= 7-8 ", 7, 8),
    ],
)
def test_satisfiable_ranges_are_206_with_exact_bounds(header: str, first: int, last: int) -> None:
    assert parse_range(header, SIZE) == Answer(206, first, last)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",  # starts at the end
        "bytes=999999999999999999999-",
        "bytes=" + "9" * 5000 + "-",  # beyond Python's int-from-string limit: no crash
        "bytes=-0",
        "bytes=5-4",  # ends before it starts
        "bytes=-5-10",
        "bytes=--5",
        "bytes=-",
        "bytes=",
        "bytes=abc",
        "bytes=1-2-3",
        "bytes=0x10-20",
        "bytes=+1-2",
        "bytes=1.5-2",
        "bytes=１-２",  # noqa: RUF001 - full-width digits are not ASCII digits
        "bytes=0-1,junk",
        "bytes=2000-3000,4000-5000",
        "bytes=" + ",".join(["0-1"] * (MAX_RANGES + 1)),
    ],
)
def test_impossible_or_malformed_byte_ranges_are_416(header: str) -> None:
    answer = parse_range(header, SIZE)
    assert answer is not None and answer.status == 416 and answer.detail.startswith("Range:")


@pytest.mark.parametrize("header", ["items=0-5", "0-5", "bytes 0-5", "", "=0-1"])
def test_other_units_are_ignored(header: str) -> None:
    assert parse_range(header, SIZE) is None


def test_several_ranges_are_ignored_and_the_whole_file_is_sent() -> None:
    assert parse_range("bytes=0-1,5-6", SIZE) is None
    assert parse_range("bytes=0-1,2000-3000", SIZE) is None  # one satisfiable is enough
    assert decide("GET", {"range": "bytes=0-1,5-6"}, V) == Answer(200, 0, SIZE - 1)
    assert parse_range(",".join(["bytes=0-0"] + ["1-1"] * (MAX_RANGES - 1)), SIZE) is None


def test_an_empty_file_has_no_satisfiable_range() -> None:
    empty = parse_range("bytes=-5", 0)
    assert empty is not None and empty.status == 416
    assert decide("GET", {}, Validators(0, 1)).length == 0


@given(st.text(max_size=80))
def test_any_header_gives_an_answer_within_the_file(text: str) -> None:
    answer = parse_range("bytes=" + text, SIZE)
    if answer is not None and answer.status == 206:
        assert 0 <= answer.first <= answer.last < SIZE
    else:
        assert answer is None or answer.status == 416


@given(st.integers(0, 2000), st.integers(0, 2000))
def test_ranges_agree_with_slicing(first: int, last: int) -> None:
    answer = parse_range(f"bytes={first}-{last}", SIZE)
    data = bytes(range(256)) * 4
    if last < first or first >= SIZE:
        assert answer is not None and answer.status == 416
    else:
        assert answer is not None and answer.status == 206
        assert data[answer.first : answer.last + 1] == data[first : last + 1][: SIZE - first]


def test_etag_is_strong_and_names_size_and_time() -> None:
    assert V.etag.startswith('"') and V.etag.endswith('"') and not V.etag.startswith("W/")
    assert Validators(SIZE, V.mtime_ns + 1).etag != V.etag
    assert Validators(SIZE + 1, V.mtime_ns).etag != V.etag
    assert V.last_modified.endswith(" GMT")
    assert etags_of(f' W/"x" , {V.etag}, junk') == [(True, '"x"'), (False, V.etag)]
    assert etags_of("*") is None


def test_conditional_requests() -> None:
    assert decide("GET", {"if-none-match": V.etag}, V).status == 304
    assert decide("HEAD", {"if-none-match": f'"other", W/{V.etag}'}, V).status == 304
    assert decide("GET", {"if-none-match": "*"}, V).status == 304
    assert decide("GET", {"if-none-match": '"other"'}, V).status == 200
    later, earlier = "Sun, 06 Dec 2099 08:00:00 GMT", "Sat, 01 Jan 2000 00:00:00 GMT"
    assert decide("GET", {"if-modified-since": V.last_modified}, V).status == 304
    assert decide("GET", {"if-modified-since": later}, V).status == 304
    assert decide("GET", {"if-modified-since": earlier}, V).status == 200
    assert decide("GET", {"if-modified-since": "not a date"}, V).status == 200
    # If-None-Match wins over If-Modified-Since
    assert decide("GET", {"if-none-match": '"x"', "if-modified-since": later}, V).status == 200
    assert decide("GET", {"if-match": '"x"'}, V).status == 412
    assert decide("GET", {"if-match": f"W/{V.etag}"}, V).status == 412  # strong comparison
    assert decide("GET", {"if-match": V.etag, "range": "bytes=1-2"}, V).status == 206
    assert decide("GET", {"if-unmodified-since": earlier}, V).status == 412


def test_if_range_sends_the_range_only_for_the_same_file() -> None:
    ranged = {"range": "bytes=10-19"}
    assert decide("GET", {**ranged, "if-range": V.etag}, V) == Answer(206, 10, 19)
    assert decide("GET", {**ranged, "if-range": V.last_modified}, V) == Answer(206, 10, 19)
    assert decide("GET", {**ranged, "if-range": '"old"'}, V).status == 200
    assert decide("GET", {**ranged, "if-range": f"W/{V.etag}"}, V).status == 200
    assert decide("GET", {**ranged, "if-range": "Sat, 01 Jan 2000 00:00:00 GMT"}, V).status == 200
    assert decide("GET", {"if-range": '"old"'}, V).status == 200  # no Range: nothing to do


def test_head_ignores_range() -> None:
    assert decide("HEAD", {"range": "bytes=0-1"}, V) == Answer(200, 0, SIZE - 1)
    assert decide("HEAD", {"range": "bytes=5000-"}, V).status == 200


@pytest.mark.parametrize(
    "name",
    [
        "../secret.mp4",
        "..%2fsecret",
        "0b0bcd66-1c53-4f36-9bb4-4fcb0d6e16a8.txt",
        "0B0BCD66-1C53-4F36-9BB4-4FCB0D6E16A8.mp4",
        ".incoming-0b0bcd66-1c53-4f36-9bb4-4fcb0d6e16a8",
        ".rendition-0b0bcd66-1c53-4f36-9bb4-4fcb0d6e16a8-ab.mp4",
        "0b0bcd66-1c53-4f36-9bb4-4fcb0d6e16a8.mp4\x00.png",
        "0b0bcd66-1c53-4f36-9bb4-4fcb0d6e16a8.web.avi",
        "x" * 300,
        "",
    ],
)
def test_only_stored_names_are_served(name: str) -> None:
    assert served_name(name) is None


def test_uploads_and_renditions_are_served() -> None:
    vid = "0b0bcd66-1c53-4f36-9bb4-4fcb0d6e16a8"
    for name in (f"{vid}.mp4", f"{vid}.avi", f"{vid}.mov", f"{vid}.mkv", f"{vid}.web.mp4"):
        assert served_name(name) == name
