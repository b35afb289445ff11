"""The audit reads of the event store: the global log, one aggregate's history, its state as of
a version or a time. Straight from `verity_events`, never a read model: the answer is the
stored facts, decoded by the application's mapper (so upcasters apply).

Which filters use an index (checked with EXPLAIN in tests/integration/test_audit_log.py):
- the cursor (`after`) and every page: the unique index on `notification_id`;
- `aggregateId`: the primary key (originator_id, originator_version);
- aggregate type, event type: `topic = ANY(...)` checked on the rows of a position range read
  through the `notification_id` index, at most MAX_AUDIT_SCAN positions per page (`topic` is
  stored inline, so rows that do not match are rejected without reading their state);
- actor and time: read from each candidate's stored state (a small typed decode that skips the
  rest), within the same bounded range; a time range first narrows the positions by a binary
  search over the log (times follow positions, within AUDIT_CLOCK_SLACK_SECONDS).
No index was added to the event table: the append path is unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import anyio.to_thread
import msgspec
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import TopicError
from psycopg import AsyncConnection

from domain.errors import NotFound
from domain.events import EventMeta, VerityAggregate
from domain.limits import (
    AUDIT_CLOCK_SLACK_SECONDS,
    MAX_AUDIT_PAGE,
    MAX_AUDIT_SCAN,
    MAX_AUDIT_SCAN_BYTES,
)
from projections.audit_decoding import (
    AuditEvent,
    FieldChange,
    aggregate_state,
    aggregate_type_of,
    audit_event,
    field_changes,
)
from projections.audit_filters import AsOf, LogFilter, LogQuery

EVENTS_TABLE = "verity_events"
CHUNK = 100
"""Rows fetched per round trip: ~13 MB of frame batches at most in memory at once."""
_COLUMNS = "notification_id, originator_id, originator_version, topic, state"

Row = tuple[int, UUID, int, str, bytes]
Connect = Callable[[], Any]
"""An async context manager giving an AsyncConnection (a pool's `connection`)."""


class _Header(msgspec.Struct):
    """What the actor and time filters read of a stored event; the decoder skips the rest."""

    timestamp: datetime
    meta: EventMeta = EventMeta()


_header = msgspec.json.Decoder(_Header)


class LogPage(msgspec.Struct, kw_only=True, rename="camel"):
    events: list[AuditEvent]
    next_after: int
    """The cursor of the next page: pass it as `after`."""
    has_more: bool
    """False once the scan reached the newest event (or the `to` bound): a later page is
    empty until new events are stored."""
    head: int
    """The newest position when this page was read."""


def _decode(mapper: Mapper[UUID], row: Row) -> Any:
    _position, originator_id, version, topic, state = row
    return mapper.to_domain_event(
        StoredEvent(
            originator_id=originator_id, originator_version=version, topic=topic, state=state
        )
    )


async def head_position(conn: AsyncConnection[Any]) -> int:
    cur = await conn.execute(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _time_at_or_after(conn: AsyncConnection[Any], position: int) -> tuple[int, datetime]:
    cur = await conn.execute(
        f"SELECT notification_id, state FROM {EVENTS_TABLE} WHERE notification_id >= %s"
        " ORDER BY notification_id LIMIT 1",
        (position,),
    )
    row = await cur.fetchone()
    assert row is not None  # callers probe within [1, head]
    return int(row[0]), _header.decode(row[1]).timestamp


async def last_position_before(conn: AsyncConnection[Any], when: datetime, head: int) -> int:
    """The largest position whose event is older than `when` (0 if none), by binary search:
    about log2(head) single-row reads. Assumes times follow positions; callers add slack."""
    low, high, found = 1, head, 0
    while low <= high:
        middle = (low + high) // 2
        position, at = await _time_at_or_after(conn, middle)
        if at < when:
            found, low = position, position + 1
        else:
            high = middle - 1
    return found


def _wanted(log_filter: LogFilter, state: bytes) -> bool:
    if log_filter.actor is None and log_filter.since is None and log_filter.until is None:
        return True
    try:
        header = _header.decode(state)
    except msgspec.MsgspecError:
        return False  # no actor or time to match: listed only where those filters are off
    if log_filter.actor is not None and header.meta.actor != log_filter.actor:
        return False
    if log_filter.since is not None and header.timestamp < log_filter.since:
        return False
    return not (log_filter.until is not None and header.timestamp > log_filter.until)


async def _bounds(
    conn: AsyncConnection[Any], log_filter: LogFilter, after: int, head: int
) -> tuple[int, int]:
    """(first position to examine, exclusive; last position this query may ever reach)."""
    end = head
    slack = timedelta(seconds=AUDIT_CLOCK_SLACK_SECONDS)
    if log_filter.since is not None and log_filter.since > datetime.min.replace(tzinfo=UTC) + slack:
        after = max(after, await last_position_before(conn, log_filter.since - slack, head))
    if log_filter.until is not None and log_filter.until < datetime.max.replace(tzinfo=UTC) - slack:
        end = min(end, await last_position_before(conn, log_filter.until + slack, head))
    return after, end


def page_statement(log_filter: LogFilter) -> tuple[str, list[Any]]:
    """The page query (first two parameters: the exclusive start and the last position)."""
    where = ["notification_id > %s", "notification_id <= %s"]
    params: list[Any] = [0, 0]
    if log_filter.topics is not None:
        where.append("topic = ANY(%s)")
        params.append(list(log_filter.topics))
    if log_filter.aggregate_id is not None:
        where.append("originator_id = %s")
        params.append(log_filter.aggregate_id)
    # One aggregate's events: its primary key, in version order (which is position order).
    order = "originator_version" if log_filter.aggregate_id is not None else "notification_id"
    sql = (
        f"SELECT {_COLUMNS} FROM {EVENTS_TABLE} WHERE {' AND '.join(where)}"
        f" ORDER BY {order} LIMIT %s"
    )
    return sql, params


async def read_page(
    conn: AsyncConnection[Any],
    mapper: Mapper[UUID],
    query: LogQuery,
    *,
    until_position: int | None = None,
) -> LogPage:
    """One page of the log after `query.after`, oldest first.

    Examines at most MAX_AUDIT_SCAN positions and MAX_AUDIT_SCAN_BYTES of stored state unless
    the aggregate id narrows the search to its own index. Positions are committed in order
    (the store takes a table lock to append), so a cursor never skips an event committed
    later: every later one has a larger position than the head this page read.
    """
    log_filter = query.filter
    head = await head_position(conn)
    if until_position is not None:
        head = min(head, until_position)
    start, end = await _bounds(conn, log_filter, query.after, head)
    narrow = log_filter.aggregate_id is not None
    upper = end if narrow else min(end, start + MAX_AUDIT_SCAN)
    sql, params = page_statement(log_filter)
    params[1] = upper
    events: list[AuditEvent] = []
    cursor, examined = start, 0
    while True:
        params[0] = cursor
        cur = await conn.execute(sql, (*params, CHUNK), binary=True)
        rows: list[Row] = await cur.fetchall()
        taken = [r for r in rows if _wanted(log_filter, r[4])][: query.limit - len(events)]
        events.extend(await _described(mapper, taken))
        if len(events) >= query.limit:
            cursor = events[-1].position
            return LogPage(events=events, next_after=cursor, has_more=True, head=head)
        if len(rows) < CHUNK:
            return LogPage(events=events, next_after=upper, has_more=upper < end, head=head)
        cursor = rows[-1][0]
        examined += sum(len(r[4]) for r in rows)
        if examined > MAX_AUDIT_SCAN_BYTES and not narrow:
            return LogPage(events=events, next_after=cursor, has_more=True, head=head)


def _describe(mapper: Mapper[UUID], row: Row) -> AuditEvent:
    """The event decoded; one this build cannot decode (a topic from a newer build, a state
    no upcaster explains) is listed with what the row itself says, never stops the log."""
    try:
        return audit_event(_decode(mapper, row), row[0])
    except (MapperDeserialisationError, TopicError, msgspec.MsgspecError) as err:
        position, originator_id, version, topic, state = row
        try:
            header: _Header | None = _header.decode(state)
        except msgspec.MsgspecError:
            header = None
        meta = header.meta if header else EventMeta()
        return AuditEvent(
            position=position,
            topic=topic,
            aggregate_type="",
            type="",
            aggregate_id=str(originator_id),
            version=version,
            time=header.timestamp.isoformat() if header else "",
            actor=meta.actor,
            correlation_id=str(meta.correlation_id) if meta.correlation_id else None,
            causation_id=str(meta.causation_id) if meta.causation_id else None,
            payload={"undecodable": str(err)[:500], "bytes": len(state)},
            summarised=True,
        )


async def _described(mapper: Mapper[UUID], rows: list[Row]) -> list[AuditEvent]:
    """Decoded off the event loop: a chunk of frame batches is megabytes of JSON."""

    def work() -> list[AuditEvent]:
        return [_describe(mapper, r) for r in rows]

    return await anyio.to_thread.run_sync(work) if rows else []


async def stream_log(
    connect: Connect,
    mapper: Mapper[UUID],
    query: LogQuery,
) -> AsyncIterator[AuditEvent]:
    """Every event the query matches from its cursor up to the head as it was at the start,
    read page by page (a connection per page, one page in memory)."""
    async with connect() as conn:
        until = await head_position(conn)
    after = query.after
    while True:
        page_query = msgspec.structs.replace(query, after=after, limit=MAX_AUDIT_PAGE)
        async with connect() as conn:
            page = await read_page(conn, mapper, page_query, until_position=until)
        for event in page.events:
            yield event
        if not page.has_more:
            return
        after = page.next_after


# --- one aggregate ---------------------------------------------------------------------------


class HistoryEntry(msgspec.Struct, kw_only=True, rename="camel"):
    version: int
    event: AuditEvent
    changes: list[FieldChange]
    """Field by field (nested values as paths), the aggregate's state before and after."""


class History(msgspec.Struct, kw_only=True, rename="camel"):
    aggregate_id: str
    aggregate_type: str
    entries: list[HistoryEntry]
    next_after: int
    """The version to pass as `after` for the next page."""
    has_more: bool


class StateAsOf(msgspec.Struct, kw_only=True, rename="camel"):
    aggregate_id: str
    aggregate_type: str
    version: int
    time: str
    """When that version was stored."""
    latest_version: int
    state: dict[str, Any]


async def _aggregate_rows(
    conn: AsyncConnection[Any], ident: UUID, after_version: int, limit: int
) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM {EVENTS_TABLE} WHERE originator_id = %s"
        " AND originator_version > %s ORDER BY originator_version LIMIT %s",
        (ident, after_version, limit),
    )
    return await cur.fetchall()


async def _replay(
    conn: AsyncConnection[Any],
    mapper: Mapper[UUID],
    ident: UUID,
    visit: Callable[[Any, int, dict[str, Any] | None, dict[str, Any]], bool],
) -> None:
    """Fold the aggregate's events in version order, a chunk at a time; `visit(event,
    position, state before, state after)` returns False to stop."""
    aggregate: VerityAggregate | None = None
    before: dict[str, Any] | None = None
    version = 0
    while True:
        rows = await _aggregate_rows(conn, ident, version, CHUNK)
        if not rows and version == 0:
            raise NotFound("Aggregate", ident, f"No aggregate has the id {ident}")
        for row in rows:
            event = _decode(mapper, row)
            aggregate = event.mutate(aggregate)
            assert aggregate is not None
            after = aggregate_state(aggregate)
            if not visit(event, row[0], before, after):
                return
            before = after
        if len(rows) < CHUNK:
            return
        version = rows[-1][2]


async def latest_version(conn: AsyncConnection[Any], ident: UUID) -> int:
    cur = await conn.execute(
        f"SELECT coalesce(max(originator_version), 0) FROM {EVENTS_TABLE} WHERE originator_id = %s",
        (ident,),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def history(
    conn: AsyncConnection[Any],
    mapper: Mapper[UUID],
    ident: UUID,
    after_version: int = 0,
    limit: int = MAX_AUDIT_PAGE,
) -> History:
    """Versions after `after_version` (at most `limit`), each with its event and the changes
    it made. The fold starts at version 1 every time: a diff needs the state before."""
    entries: list[HistoryEntry] = []
    kind = ""

    def visit(event: Any, position: int, before: dict[str, Any] | None, after: Any) -> bool:
        nonlocal kind
        kind = aggregate_type_of(event)
        if event.originator_version > after_version:
            entries.append(
                HistoryEntry(
                    version=event.originator_version,
                    event=audit_event(event, position),
                    changes=field_changes(before, after),
                )
            )
        return len(entries) < limit

    await _replay(conn, mapper, ident, visit)
    last = entries[-1].version if entries else after_version
    more = bool(entries) and len(entries) >= limit and last < await latest_version(conn, ident)
    return History(
        aggregate_id=str(ident),
        aggregate_type=kind,
        entries=entries,
        next_after=last,
        has_more=more,
    )


async def state_as_of(
    conn: AsyncConnection[Any], mapper: Mapper[UUID], ident: UUID, as_of: AsOf | None
) -> StateAsOf:
    """The aggregate's state after the version `as_of` names, or the last one stored at or
    before its time; the current state without `as_of`."""
    found: list[tuple[Any, dict[str, Any]]] = []

    def visit(event: Any, _position: int, _before: Any, after: dict[str, Any]) -> bool:
        if (
            as_of is not None
            and as_of.version is not None
            and (event.originator_version > as_of.version)
        ):
            return False
        if as_of is not None and as_of.time is not None and event.timestamp > as_of.time:
            return False
        found[:] = [(event, after)]
        return True

    await _replay(conn, mapper, ident, visit)
    latest = await latest_version(conn, ident)
    if not found:
        when = as_of.time.isoformat() if as_of and as_of.time else "then"
        raise NotFound("Aggregate", ident, f"Aggregate {ident} did not exist yet at {when}")
    event, state = found[0]
    if as_of is not None and as_of.version is not None and as_of.version > latest:
        msg = f"Aggregate {ident} has no version {as_of.version} (latest is {latest})"
        raise NotFound("Aggregate", ident, msg)
    return StateAsOf(
        aggregate_id=str(ident),
        aggregate_type=aggregate_type_of(event),
        version=event.originator_version,
        time=event.timestamp.isoformat(),
        latest_version=latest,
        state=state,
    )
