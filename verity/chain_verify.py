"""`verity audit verify --database` over several processes.

Each event's hash depends only on its own bytes and the stored hash of the event before it, so
the log splits into position ranges that processes check side by side, each from the stored
hash just before its range; together they check every link. They all read one snapshot (the
coordinator's, exported), so the ranges meet exactly. The first break of the lowest range is
the first in the log.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import psycopg

from formats.event_chain import Break, ChainError, Verified
from storage.event_chain import (
    chain_head,
    export_snapshot,
    hash_at,
    position_bounds,
    use_snapshot,
    verify_stored,
)

_checked: Synchronized[int] | None = None
"""Events checked so far by every worker (shared memory), for the coordinator's bar."""


def _share(counter: Synchronized[int]) -> None:
    global _checked  # noqa: PLW0603 - a worker process's one shared counter
    _checked = counter


def _count(n: int) -> None:
    assert _checked is not None
    with _checked.get_lock():
        _checked.value += n


def _verify_range(url: str, snapshot: str, first: int, last: int) -> Verified | Break:
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        use_snapshot(conn, snapshot)
        try:
            return verify_stored(conn, _count, first, last)
        except ChainError as err:
            return err.found


def ranges(first: int, last: int, parts: int) -> list[tuple[int, int]]:
    """[first, last] cut into `parts` consecutive ranges (fewer when it is short)."""
    size = max(1, -(-(last - first + 1) // parts))
    return [(lo, min(lo + size - 1, last)) for lo in range(first, last + 1, size)]


def verify_database(
    url: str,
    jobs: int,
    start: Callable[[int], Any],
    expected: tuple[int, bytes] | None = None,
) -> Verified:
    """Check the stored chain with `jobs` processes; `start(total)` gives a progress callback.
    ChainError at the first bad position, or when the `expected` head is not in the log."""
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot
        progress = start(chain_head(conn).count)
        bounds = position_bounds(conn)
        if bounds is None or jobs <= 1:
            found = verify_stored(conn, progress)
        else:
            found = _in_parallel(url, export_snapshot(conn), ranges(*bounds, jobs), progress)
        if expected is not None and hash_at(conn, expected[0]) != expected[1]:
            position, digest = expected
            reason = f"the noted head {digest.hex()} is gone (events cut off or rewritten)"
            raise ChainError(Break(0, position, reason, found.last_position))
    return found


def _in_parallel(
    url: str, snapshot: str, parts: list[tuple[int, int]], progress: Callable[[int], object]
) -> Verified:
    context = multiprocessing.get_context("spawn")  # no inherited connections or threads
    counter: Synchronized[int] = context.Value("q", 0)
    shown = 0
    with ProcessPoolExecutor(
        len(parts), mp_context=context, initializer=_share, initargs=(counter,)
    ) as pool:
        futures = [pool.submit(_verify_range, url, snapshot, lo, hi) for lo, hi in parts]
        while True:
            done, pending = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
            progress(counter.value - shown)
            shown = counter.value
            if not pending or any(f.exception() for f in done):
                break
            time.sleep(0)
        results = [f.result() for f in futures]
    count, last, head = 0, None, b""
    for result in results:
        if isinstance(result, Break):
            before = result.verified_up_to if result.verified_up_to is not None else last
            raise ChainError(Break(0, result.position, result.reason, before))
        count += result.count
        if result.count:
            last, head = result.last_position, result.head_hash
    return Verified(count, last, head)
