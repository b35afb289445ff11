"""Isolating the events of a failed batch, with a fake connection whose savepoints undo
exactly what was written inside them: every good event is applied once and in order, bad
ones are recorded, later events of a bad event's row are held, outages propagate."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid5

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg_pool import PoolTimeout

from projections.failures import is_transient
from projections.isolation import Item, apply_isolated

pytestmark = pytest.mark.unit

NS = UUID(int=1)


def row(n: int) -> UUID:
    return uuid5(NS, str(n))


@dataclass
class FakeConn:
    """Written events survive a `transaction()` block only if it exits without error."""

    applied: list[int] = field(default_factory=list)
    writes: int = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        mark = len(self.applied)
        try:
            yield
        except BaseException:
            del self.applied[mark:]
            raise


@dataclass(frozen=True)
class Ev:
    position: int
    bad: bool = False
    outage: bool = False


def write(conn: Any, events: Sequence[Ev]) -> None:
    """Like a COPY: rows go out one by one, and a bad one fails the statement midway."""
    conn.writes += 1
    for e in events:
        if e.outage:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        if e.bad:
            raise psycopg.errors.NumericValueOutOfRange("integer out of range")
        conn.applied.append(e.position)


def items(events: Sequence[Ev], rows: Sequence[int] | None = None) -> list[Item]:
    keys = rows if rows is not None else [e.position for e in events]
    return [
        Item(e.position, "t", row(k), 1, row(k), event=e) for e, k in zip(events, keys, strict=True)
    ]


def test_one_bad_event_in_a_large_batch_costs_a_few_tries() -> None:
    events = [Ev(i, bad=i == 613) for i in range(1000)]
    conn = FakeConn()
    failures = apply_isolated(conn, items(events), write, {})  # type: ignore[arg-type]
    assert conn.applied == [i for i in range(1000) if i != 613]
    assert [(f.position, f.held_by) for f in failures] == [(613, None)]
    assert "NumericValueOutOfRange: integer out of range" in failures[0].error
    assert conn.writes <= 2 * math.ceil(math.log2(1000)) + 1


def test_a_bad_event_holds_back_the_later_events_of_its_row() -> None:
    events = [Ev(1), Ev(2, bad=True), Ev(3), Ev(4), Ev(5)]
    conn = FakeConn()
    held: dict[UUID, int] = {}
    failures = apply_isolated(conn, items(events, [7, 8, 7, 8, 9]), write, held)  # type: ignore[arg-type]
    assert conn.applied == [1, 3, 5]
    assert [(f.position, f.held_by) for f in failures] == [(2, None), (4, 2)]
    assert held == {row(8): 2}


def test_rows_already_held_and_unreadable_events_are_not_written() -> None:
    unreadable = Item(2, "t", row(2), 1, row(2), error="DecodeError: truncated")
    batch = [*items([Ev(1)]), unreadable, *items([Ev(3), Ev(4)], [2, 5])]
    conn = FakeConn()
    failures = apply_isolated(conn, batch, write, {row(5): 0})  # type: ignore[arg-type]
    assert conn.applied == [1]
    assert [(f.position, f.held_by, f.error[:6]) for f in failures] == [
        (2, None, "Decode"),
        (3, 2, "held b"),
        (4, 0, "held b"),
    ]


def test_an_outage_propagates_and_records_nothing() -> None:
    conn = FakeConn()
    with pytest.raises(psycopg.OperationalError):
        apply_isolated(conn, items([Ev(1), Ev(2, bad=True), Ev(3, outage=True)]), write, {})  # type: ignore[arg-type]
    assert conn.applied == [1]  # the caller's transaction rolls this back


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=1, max_size=60),
)
def test_exactly_the_good_unheld_events_apply_in_order(spec: list[tuple[bool, int]]) -> None:
    events = [Ev(i, bad=bad) for i, (bad, _) in enumerate(spec)]
    rows = [r for _, r in spec]
    conn = FakeConn()
    failures = apply_isolated(conn, items(events, rows), write, {})  # type: ignore[arg-type]
    expected, first_failure = [], {}
    for e, r in zip(events, rows, strict=True):
        if r in first_failure:
            continue
        if e.bad:
            first_failure[r] = e.position
        else:
            expected.append(e.position)
    assert conn.applied == expected
    assert sorted(f.position for f in failures) == sorted(set(range(len(events))) - set(expected))
    assert all(f.held_by == first_failure[rows[f.position]] for f in failures if f.held_by)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (psycopg.errors.NumericValueOutOfRange("integer out of range"), False),
        (psycopg.errors.UniqueViolation("duplicate key"), False),
        (psycopg.errors.NotNullViolation("null value"), False),
        (psycopg.errors.ProgramLimitExceeded("index row size exceeds maximum"), False),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), False),
        (ValueError("the projection's own code"), False),
        (OverflowError("int too big to convert"), False),
        (psycopg.errors.SerializationFailure("could not serialize"), True),
        (psycopg.errors.DeadlockDetected("deadlock"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.UndefinedTable("relation does not exist"), True),
        (psycopg.OperationalError("connection lost"), True),
        (psycopg.InterfaceError("the connection is closed"), True),
        (PoolTimeout("couldn't get a connection"), True),
        (ConnectionResetError(), True),
    ],
)
def test_outages_are_told_apart_from_bad_events(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
