"""One decoding of each stored event for every reader in the process.

The runners of the read models and the relay each read the same new events moments apart; a
batch of frames takes ~2 ms to decode, and decoding it once per reader was the largest single
cost of ingest. Events never change once stored, so the decoded event can be shared, keyed by
its position in the log. Readers must treat the events as read-only (they do: projections
fold them into rows, the relay encodes them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

CAPACITY = 128
"""Events kept: a few ingest batches' worth (~30 MB of decoded frames at most); a reader that
falls further behind than this simply decodes for itself."""


class SharedDecoding:
    def __init__(self, decode: Callable[[Any], Any], capacity: int = CAPACITY) -> None:
        self._decode = decode
        self._capacity = capacity
        self._events: OrderedDict[int, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, notification: Any) -> Any:
        key: int = notification.id
        with self._lock:
            event = self._events.get(key)
            if event is not None:
                return event
        event = self._decode(notification)  # outside the lock: readers decode in parallel
        with self._lock:
            self._events[key] = event
            while len(self._events) > self._capacity:
                self._events.popitem(last=False)
        return event
