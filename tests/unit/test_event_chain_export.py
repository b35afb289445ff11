"""An export of the hash chain: any single-byte change, deleted, inserted or swapped line is
caught, at the first line that differs from the original export."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from formats.event_chain import (
    GENESIS,
    ChainError,
    chain_hash,
    export_lines,
    header_for,
    record,
    verify_export,
)

pytestmark = pytest.mark.unit

STORE = UUID("00000000-0000-4000-8000-000000000001")


def stored_log(
    count: int, start: int = 1, previous: bytes = GENESIS
) -> list[tuple[int, bytes, bytes]]:
    """(position, record, hash) rows as the store holds them, with a gap now and then."""
    rows = []
    position = start
    for i in range(count):
        topic = None if i % 11 == 5 else f"domain.things:Thing.Changed{i % 3}"
        state = None if i % 13 == 7 else bytes((i * 7 + k) % 256 for k in range(i % 40))
        data = record(position, uuid4(), i + 1, topic, state)
        previous = chain_hash(previous, data)
        rows.append((position, data, previous))
        position += 1 + (i % 5 == 4)
    return rows


def export(
    rows: list[tuple[int, bytes, bytes]], previous: tuple[int | None, bytes] = (None, GENESIS)
) -> list[bytes]:
    header = header_for(STORE, *previous)
    return list(export_lines(header, ((p, memoryview(d), h) for p, d, h in rows)))


ORIGINAL = export(stored_log(24))


def first_difference(original: list[bytes], tampered: list[bytes]) -> int:
    """1-based line of the first difference (a missing line counts as different)."""
    for i, (a, b) in enumerate(zip(original, tampered, strict=False)):
        if a != b:
            return i + 1
    return min(len(original), len(tampered)) + 1


def broken_line(lines: list[bytes]) -> int:
    with pytest.raises(ChainError) as caught:
        verify_export(lines)
    return caught.value.found.line


def test_an_untouched_export_verifies_with_its_count_and_head() -> None:
    rows = stored_log(24)
    found = verify_export(export(rows))
    assert (found.count, found.last_position, found.head_hash) == (24, rows[-1][0], rows[-1][2])


def test_a_range_export_starts_from_the_hash_before_it() -> None:
    rows = stored_log(30)
    part = export(rows[10:20], previous=(rows[9][0], rows[9][2]))
    assert verify_export(part).head_hash == rows[19][2]
    wrong_start = export(rows[10:20], previous=(rows[8][0], rows[8][2]))
    with pytest.raises(ChainError) as caught:
        verify_export(wrong_start)
    assert (caught.value.found.line, caught.value.found.position) == (2, rows[10][0])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_byte_change_is_caught_at_its_line(data: st.DataObject) -> None:
    text = b"".join(ORIGINAL)
    at = data.draw(st.integers(0, len(text) - 1), label="byte")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = bytearray(text)
    changed[at] ^= flip
    tampered = bytes(changed).splitlines(keepends=True)
    expected = text[:at].count(b"\n") + 1
    assert broken_line(tampered) == expected


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_deleted_inserted_or_swapped_line_is_caught_at_the_first_difference(
    data: st.DataObject,
) -> None:
    lines = list(ORIGINAL)
    kind = data.draw(st.sampled_from(["delete", "insert", "swap"]), label="kind")
    i = data.draw(st.integers(0, len(lines) - 1), label="at")
    if kind == "delete":
        del lines[i]
    elif kind == "insert":
        lines.insert(i, lines[data.draw(st.integers(0, len(lines) - 1), label="copy of")])
    else:
        j = data.draw(st.integers(0, len(lines) - 1).filter(lambda j: j != i), label="with")
        lines[i], lines[j] = lines[j], lines[i]
    assert broken_line(lines) == first_difference(ORIGINAL, lines)


def test_a_signed_export_verifies_only_with_its_key_and_untouched() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    rows = stored_log(8)
    header = header_for(STORE, None, GENESIS)
    signed = list(
        export_lines(
            header,
            ((p, memoryview(d), h) for p, d, h in rows),
            lambda statement: (public, key.sign(statement)),
        )
    )
    assert verify_export(signed, public_key=public).signed_by == public.hex()
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    with pytest.raises(ChainError, match="another key"):
        verify_export(signed, public_key=other)
    with pytest.raises(ChainError, match="not signed"):
        verify_export(export(rows), public_key=public)
    # A forger who rewrites the events and the chain from genesis cannot sign the new head.
    forged_rows = stored_log(8)
    forged = [*export(forged_rows)[:-1], signed[-1]]
    with pytest.raises(ChainError):
        verify_export(forged, public_key=public)
