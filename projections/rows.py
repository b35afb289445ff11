"""Set-based writes for read models that keep one row per aggregate.

Sending one statement per event costs a round trip's worth of client work per event, whatever
the batching. A row projection instead folds a whole batch in memory: it loads the rows the
batch touches with one SELECT, applies every event to them in order, then replaces those rows
with one DELETE and one COPY. Three statements per batch, whatever its size, and the same
result as applying the events one by one (the equivalence test in
tests/integration/test_projections.py checks exactly that).

A table written this way must be owned by its projection alone: its rows are rewritten whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from psycopg import Connection, sql

Row = dict[str, Any]


@runtime_checkable
class BatchProjection(Protocol):
    """A projection that writes a whole batch itself (e.g. COPY for insert-only tables)."""

    name: str
    event_classes: tuple[type[Any], ...]
    tables: tuple[str, ...]

    def write_batch(self, conn: Connection[Any], events: Sequence[Any]) -> None:
        """Apply `events` (in order) inside the runner's transaction."""
        ...


@runtime_checkable
class RowProjection(Protocol):
    name: str
    event_classes: tuple[type[Any], ...]
    tables: tuple[str, ...]
    table: str
    """The one table it owns; its primary key is the column `id`."""
    columns: tuple[str, ...]
    """Every column of `table`, `id` first, in the order rows are copied."""

    def key(self, event: Any) -> UUID:
        """The id of the row `event` changes."""
        ...

    def fold(self, row: Row | None, event: Any) -> Row | None:
        """The row after `event` (None: no row). May change `row` in place and return it."""
        ...


class OneRowPerAggregate:
    """Mixin for row projections whose row id is the aggregate's id."""

    def key(self, event: Any) -> UUID:
        ident: UUID = event.originator_id
        return ident


def fold_batch(
    projection: RowProjection, existing: dict[UUID, Row], events: Sequence[Any]
) -> dict[UUID, Row | None]:
    """Every touched row's final state (None where the batch deleted it), in memory."""
    state: dict[UUID, Row | None] = {}
    for event in events:
        key = projection.key(event)
        row = state[key] if key in state else existing.get(key)
        state[key] = projection.fold(row, event)
    return state


def apply_rows(conn: Connection[Any], projection: RowProjection, events: Sequence[Any]) -> None:
    """Load the rows `events` touch, fold the events into them, write them back set-wise."""
    if not events:
        return
    keys = list({projection.key(e) for e in events})
    table = sql.Identifier(projection.table)
    columns = sql.SQL(", ").join(map(sql.Identifier, projection.columns))
    cur = conn.execute(
        sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s) FOR UPDATE").format(columns, table), (keys,)
    )
    names = projection.columns
    existing = {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
    final = fold_batch(projection, existing, events)
    if existing:
        conn.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(table), (list(existing),))
    rows = [row for row in final.values() if row is not None]
    if rows:
        with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)) as copy:
            for row in rows:
                copy.write_row([row[c] for c in names])
