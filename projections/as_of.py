"""Every read model as it was at a point of the log, in a schema of its own (`verity replay`).

Built by the same DDL and the same projection code as the live read models, bounded by a
position (projections/schema_build.py), so an auditor can ask what the dashboard, a session's
results or a video's ground truth said then, with the live API's own queries pointed at the
schema (`SET search_path TO <schema>`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import Connection

from projections.base import topics_of
from projections.notifications import event_count, notification_from
from projections.runner import AnyProjection, NotificationReader
from projections.schema_build import Progress, SchemaBuild, build_in_processes, schema_pool
from storage.read_model_schema import (
    BadSchemaName,
    check_schema_name,
    comment_schema,
    create_read_model_schema,
    schema_kind,
)

REBUILD_PREFIX = "verity_rebuild_"
"""Shadow schemas of blue-green rebuilds (projections/blue_green.py): never a replay target."""


def check_target(conn: Connection[Any], schema: str, *, replace: bool) -> None:
    """BadSchemaName unless `schema` may receive a replay: a valid new name, or one an earlier
    replay made when `replace` is given. Another application's schema is never dropped."""
    check_schema_name(schema)
    if schema.startswith(REBUILD_PREFIX):
        msg = f"schema: {REBUILD_PREFIX}* names are kept for blue-green rebuilds"
        raise BadSchemaName(msg)
    kind = schema_kind(conn, schema)
    if kind == "foreign":
        msg = f"schema: {schema} exists and was not made by verity replay; choose another name"
        raise BadSchemaName(msg)
    if kind == "verity" and not replace:
        msg = f"schema: {schema} holds an earlier replay; pass --replace to overwrite it"
        raise BadSchemaName(msg)


def position_at(
    conn: Connection[Any], decode: Callable[[Any], Any], when: datetime, head: int
) -> int:
    """The last position whose event was recorded at or before `when` (0: none was).

    Bisection on the events' own timestamps, which follow the log's order up to the moments
    between an event's creation and its commit: ~log2(events) events are read and decoded."""
    low, high = 0, head
    while low < high:
        middle = (low + high + 1) // 2
        stored = notification_from(conn, middle)
        if stored is not None and decode(stored).timestamp <= when:
            low = stored.id
        else:
            high = middle - 1
    return low


def replay_into(
    database_url: str,
    schema: str,
    projections: Sequence[AnyProjection],
    reader: NotificationReader,
    decode: Callable[[Any], Any],
    until: int,
    batch_size: int,
    progress: Callable[[Progress], None] | None = None,
    note: str = "",
    processes: int = 1,
) -> int:
    """Build every read model in `schema` (made anew) from the events up to `until`; returns
    the events applied. The schema's comment says up to where. With `processes` > 1 the
    read models are split over that many processes (`build_in_processes`; `decode` must
    pickle)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_read_model_schema(conn, schema, f"replay up to position {until} (in progress)")
        total = event_count(conn, sorted({t for p in projections for t in topics_of(p)}), until)
        if processes > 1:
            applied = build_in_processes(
                database_url,
                schema,
                projections,
                decode,
                until,
                batch_size,
                processes,
                progress,
                total,
            )
        else:
            with schema_pool(database_url, schema, 5) as pool:
                build = SchemaBuild(projections, pool, reader, decode, batch_size)
                applied = build.fill(until, progress, total)
        comment_schema(conn, schema, f"replay up to position {until}{note}")
    return applied
