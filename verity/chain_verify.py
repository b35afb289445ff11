"""`verity audit verify` (of the database, or of an export) over several processes.

Each event's hash depends only on its own bytes and the stored hash of the event before it, so
the log splits into position ranges that processes check side by side, each from the stored
hash just before its range; together they check every link. They all read one snapshot (the
coordinator's, exported), so the ranges meet exactly. The first break of the lowest range is
the first in the log. An export splits the same way, at line starts, each stretch from the
hash stated on the line before it.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

from formats.event_chain import (
    Break,
    ChainError,
    Stretch,
    Verified,
    event_line,
    finish,
    header_line,
    verify_events,
    verify_export,
)
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
    context = _context()
    counter: Synchronized[int] = context.Value("q", 0)
    with ProcessPoolExecutor(
        len(parts), mp_context=context, initializer=_share, initargs=(counter,)
    ) as pool:
        futures = [pool.submit(_verify_range, url, snapshot, lo, hi) for lo, hi in parts]
        _follow(futures, counter, progress)
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


def verify_file(
    path: Path,
    jobs: int,
    start: Callable[[int | None], Any],
    public_key: bytes | None = None,
    min_bytes: int = 2**22,
) -> Verified:
    """Check an export with `jobs` processes, each a stretch of lines from the hash stated on
    the line before it (every link is then checked once); one process when the file is
    small or a cut falls after a line that is not an event (damage: the serial check names
    it)."""
    progress = start(None)
    with path.open("rb") as file:
        header_text = file.readline()
        header = header_line(header_text)
        cuts = _cuts(
            file,
            len(header_text),
            path.stat().st_size,
            jobs if path.stat().st_size >= min_bytes else 1,
        )
    if cuts is None:
        with path.open("rb", buffering=2**20) as lines:
            return verify_export(lines, public_key=public_key, progress=progress)
    context = _context()
    counter: Synchronized[int] = context.Value("q", 0)
    starts = [(bytes.fromhex(header.previous_hash), header.previous_position), *cuts.values()]
    bounds = [len(header_text), *cuts, path.stat().st_size]
    with ProcessPoolExecutor(
        len(starts), mp_context=context, initializer=_share, initargs=(counter,)
    ) as pool:
        futures = [
            pool.submit(_verify_stretch, str(path), lo, hi, *begin)
            for lo, hi, begin in zip(bounds, bounds[1:], starts, strict=False)
        ]
        _follow(futures, counter, progress)
        results = [f.result() for f in futures]
    stretches: list[Stretch] = []
    offset = 1
    for result in results:
        if isinstance(result, Break):
            before = result.verified_up_to
            if before is None:
                before = next((s.last_position for s in reversed(stretches) if s.count), None)
            raise ChainError(Break(result.line + offset, result.position, result.reason, before))
        stretches.append(_shifted(result, offset))
        offset += result.lines
    return finish(header, stretches, public_key)


def _cuts(file: BinaryIO, body: int, size: int, jobs: int) -> dict[int, tuple[bytes, int]] | None:
    """Offsets that start a line, each with the hash and position of the event line before
    it; None for one process."""
    if jobs <= 1:
        return None
    cuts: dict[int, tuple[bytes, int]] = {}
    for k in range(1, jobs):
        file.seek(max(body, size * k // jobs))
        file.readline()
        at = file.tell()
        if at >= size or at in cuts:
            continue
        before = _line_before(file, at, body)
        event = event_line(before) if before is not None else None
        if event is None:
            return None
        cuts[at] = (bytes.fromhex(event.hash), event.position)
    return cuts or None


def _line_before(file: BinaryIO, at: int, body: int) -> bytes | None:
    """The line that ends just before offset `at` (not the header)."""
    span = 2**16
    while True:
        lo = max(body, at - span)
        file.seek(lo)
        text = file.read(at - lo)
        newline = text.rfind(b"\n", 0, len(text) - 1)
        if newline >= 0:
            return text[newline + 1 :]
        if lo == body:
            return text
        if span > 2**26:
            return None
        span *= 4


def _verify_stretch(
    path: str, lo: int, hi: int, previous: bytes, last: int | None
) -> Stretch | Break:
    def lines() -> Iterator[bytes]:
        with open(path, "rb", buffering=2**20) as file:
            file.seek(lo)
            at = lo
            while at < hi:
                text = file.readline()
                if not text:
                    return
                at += len(text)
                yield text

    try:
        return verify_events(enumerate(lines(), start=1), previous, last, _count)
    except ChainError as err:
        return err.found


def _shifted(stretch: Stretch, offset: int) -> Stretch:
    if stretch.trailer is None:
        return stretch
    number, text = stretch.trailer
    after = stretch.after_trailer
    return dataclasses.replace(
        stretch,
        trailer=(number + offset, text),
        after_trailer=None if after is None else after + offset,
    )


def _follow(
    futures: list[Any], counter: Synchronized[int], progress: Callable[[int], object]
) -> None:
    shown = 0
    while True:
        done, pending = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
        progress(counter.value - shown)
        shown = counter.value
        if not pending or any(f.exception() for f in done):
            return


def _context() -> Any:
    """fork where there is one: a worker starts in milliseconds, where a spawned one spent
    seconds importing on a loaded host, longer than its share of a million events. The
    children only open their own connections and leave through os._exit, so the
    coordinator's open connection (it holds the snapshot) is never touched by them."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")
