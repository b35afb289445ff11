"""Find the events of a failed batch that cannot be applied, and apply all the others.

Only runs after a batch failed (the happy path writes the batch in one go). Inside one
transaction, the batch is tried under a savepoint; a failing part is split in halves and each
half tried in order, down to the single events that fail. One bad event in a batch of n costs
about 2·log2(n) tries, and every good event is applied exactly once, in log order, so a
projection that folds rows per batch gets the rows it would get from the good events alone.

An event that fails holds back every later event of the same read-model row (in this batch
and, through the record, in later ones), so that a retry after a fix replays the row's events
in their order instead of applying an edit to a row whose creation is still missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from uuid import UUID

from psycopg import Connection

from projections.failures import Failure, describe, is_transient

Write = Callable[[Connection[Any], Sequence[Any]], None]


class Item(NamedTuple):
    """One event of a batch, where it is in the log, and the read-model row it changes.
    (A tuple: made for every event a runner reads, at a quarter of a frozen dataclass's cost.)"""

    position: int
    topic: str
    originator_id: UUID
    originator_version: int
    row_key: UUID
    event: Any = None
    error: str | None = None
    """Why it could not even be read (then `event` is None)."""

    def failure(self, error: str, held_by: int | None = None) -> Failure:
        return Failure(
            self.position,
            self.topic,
            self.originator_id,
            self.originator_version,
            self.row_key,
            error,
            held_by,
        )


def apply_isolated(
    conn: Connection[Any], items: Sequence[Item], write: Write, held: dict[UUID, int]
) -> list[Failure]:
    """Apply every item that can be applied; the failures of the others, in log order.

    `held` maps row keys already held back to the position of their first failure; rows whose
    events fail here are added to it. Transient errors propagate (the caller retries all)."""
    failures: list[Failure] = []

    def ready(chunk: Sequence[Item]) -> list[Item]:
        out: list[Item] = []
        for item in chunk:
            blocker = held.get(item.row_key)
            if blocker is not None:
                reason = f"held back: an earlier event of its row (position {blocker}) failed"
                failures.append(item.failure(reason, held_by=blocker))
            elif item.error is not None:
                held[item.row_key] = item.position
                failures.append(item.failure(item.error))
            else:
                out.append(item)
        return out

    def attempt(chunk: Sequence[Item]) -> None:
        chunk = ready(chunk)
        if not chunk:
            return
        try:
            with conn.transaction():  # a savepoint: a failure undoes only this part
                write(conn, [item.event for item in chunk])
        except Exception as exc:  # sorted below: transient ones propagate
            if is_transient(exc):
                raise
            if len(chunk) == 1:
                held[chunk[0].row_key] = chunk[0].position
                failures.append(chunk[0].failure(describe(exc)))
                return
        else:
            return
        middle = len(chunk) // 2
        attempt(chunk[:middle])
        attempt(chunk[middle:])

    attempt(items)
    failures.sort(key=lambda f: f.position)
    return failures
