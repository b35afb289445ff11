"""An export checked by several processes, each a stretch of lines, finds what the serial
check finds: the same result, or the same first bad line. (Each case starts 3 processes.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from formats.event_chain import ChainError, Verified, verify_export
from tests.unit.test_event_chain_export import export, stored_log
from verity.chain_verify import verify_file

pytestmark = pytest.mark.unit

LINES = export(stored_log(60))


def quiet(_total: int | None) -> Any:
    return lambda _n: None


def outcome(check: Any) -> Verified | tuple[int, int | None]:
    try:
        result: Verified = check()
    except ChainError as err:
        return err.found.line, err.found.verified_up_to
    return result


def tampered(kind: str, at: int) -> list[bytes]:
    lines = list(LINES)
    if kind == "flip":
        text = bytearray(lines[at])
        text[len(text) // 2] ^= 0x04
        lines[at] = bytes(text)
    elif kind == "delete":
        del lines[at]
    elif kind == "insert":
        lines.insert(at, lines[at - 1])
    elif kind == "swap":
        lines[at], lines[at + 1] = lines[at + 1], lines[at]
    return lines


@pytest.mark.parametrize(
    ("kind", "at"),
    [  # the two cuts fall near lines 21 and 41; 61 is the trailer
        ("none", 0),
        ("flip", 21),
        ("delete", 21),
        ("insert", 41),
        ("swap", 40),
        ("delete", 61),
        ("insert", 62),
    ],
)
def test_stretches_side_by_side_find_what_the_serial_check_finds(
    tmp_path: Path, kind: str, at: int
) -> None:
    lines = tampered(kind, at)
    path = tmp_path / "export.ndjson"
    path.write_bytes(b"".join(lines))
    serial = outcome(lambda: verify_export(lines))
    parallel = outcome(lambda: verify_file(path, 3, quiet, min_bytes=0))
    assert parallel == serial
    assert (kind == "none") == isinstance(serial, Verified)
