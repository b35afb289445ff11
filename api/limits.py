"""A small in-process rate limiter: at most N hits per key in any sliding minute.

Per process (each API replica counts its own); enough to slow a password-spraying client or a
runaway script, which is what it is for. Keys are bounded so a flood of addresses cannot grow
memory without end."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

WINDOW = 60.0
MAX_KEYS = 10_000


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.hits: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        hits = self.hits.get(key)
        if hits is None:
            hits = self.hits[key] = deque()
            while len(self.hits) > MAX_KEYS:
                self.hits.popitem(last=False)
        while hits and hits[0] <= now - WINDOW:
            hits.popleft()
        return hits

    def blocked_for(self, key: str) -> int:
        """Whole seconds until `key` may act again (0: it may now)."""
        if self.per_minute <= 0:
            return 0
        hits = self._recent(key)
        if len(hits) < self.per_minute:
            return 0
        return max(1, math.ceil(hits[0] + WINDOW - self.clock()))

    def hit(self, key: str) -> None:
        if self.per_minute > 0:
            self._recent(key).append(self.clock())

    def take(self, key: str) -> int:
        """Count one hit unless blocked; the wait when blocked (0: counted, go ahead)."""
        wait = self.blocked_for(key)
        if not wait:
            self.hit(key)
        return wait
