"""Each stored event is decoded once for all readers in the process, within a bound."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from projections.shared_decoding import SharedDecoding

pytestmark = pytest.mark.unit


class Note(NamedTuple):
    id: int


def test_readers_share_one_decoding_and_old_events_are_evicted() -> None:
    calls: list[int] = []

    def decode(n: Any) -> object:
        calls.append(n.id)
        return object()

    shared = SharedDecoding(decode, capacity=2)
    first = shared(Note(1))
    assert shared(Note(1)) is first  # the second reader gets the same event, not a re-decode
    shared(Note(2))
    shared(Note(3))  # evicts 1, the oldest
    assert shared(Note(3)) is shared(Note(3))
    assert shared(Note(1)) is not first
    assert calls == [1, 2, 3, 1]
