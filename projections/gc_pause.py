"""Fewer garbage collections while a build decodes millions of events.

A rebuild allocates container objects (decoded events, their frame tuples, rows) far faster
than it frees them, so CPython's collector ran its young generations every 700 allocations
and, as the pages of decoded events grew the heap, full collections over everything the
process holds: about a sixth of a rebuild's Python time. During a build the collector runs
after 50 times as many allocations, and what the process held before the build is frozen
(left out of collections) until it ends. Nothing is leaked: cycles made meanwhile are still
collected, later; the settings are the process's, restored when the last build ends. A
process that had frozen its heap already (`verity serve` settles its start-up heap) keeps it
frozen: unfreezing would hand its whole start-up heap back to every full collection.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLD = 35_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""

_lock = threading.Lock()
_active = 0
_saved: tuple[int, ...] = ()
_was_frozen = False


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect less often inside; builds of several threads may nest and overlap."""
    global _active, _saved, _was_frozen  # noqa: PLW0603 - the collector's settings are global too
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            _was_frozen = gc.get_freeze_count() > 0
            gc.freeze()
            gc.set_threshold(THRESHOLD, *_saved[1:])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.set_threshold(*_saved)
                if not _was_frozen:
                    gc.unfreeze()
