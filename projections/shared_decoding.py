"""One decoding of each stored event for every reader in the process.

The runners of the read models and the relay each read the same new events moments apart; a
batch of frames takes ~2 ms to decode, and decoding it once per reader was the largest single
cost of ingest. Events never change once stored, so the decoded event can be shared, keyed by
its position in the log. Readers must treat the events as read-only (they do: projections
fold them into rows, the relay encodes them).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

CAPACITY = 128
"""Events kept: a few ingest batches' worth (~30 MB of decoded frames at most); a reader that
falls further behind than this simply decodes for itself."""


class SharedDecoding:
    """No lock: each OrderedDict operation here is one call into C, atomic under the GIL. Two
    readers may both decode an event that neither found yet; either result serves. (A lock
    taken twice per event per reader cost ~10 % of a rebuild's Python time, in convoys.)"""

    def __init__(self, decode: Callable[[Any], Any], capacity: int = CAPACITY) -> None:
        self._decode = decode
        self._capacity = capacity
        self._events: OrderedDict[int, Any] = OrderedDict()

    def __call__(self, notification: Any) -> Any:
        key: int = notification.id
        event = self._events.get(key)
        if event is None:
            event = self._decode(notification)
            self._events[key] = event
            if len(self._events) > self._capacity:
                with contextlib.suppress(KeyError):  # another reader evicted it first
                    self._events.popitem(last=False)
        return event
