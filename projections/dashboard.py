"""Dashboard figures (contract D1, D2): counts and accuracy across the read models."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
from psycopg import AsyncConnection

from domain.projects import CENTRAL_STORE_ID


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    projects: int
    videos: int
    sessions: int
    active_sessions: int
    detections: int


async def counts(conn: AsyncConnection[Any]) -> Counts:
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM rm_projects WHERE id <> %s),"
        " (SELECT count(*) FROM rm_videos),"
        " (SELECT count(*) FROM rm_test_sessions),"
        " (SELECT count(*) FROM rm_test_sessions WHERE status = 'running'),"
        " (SELECT coalesce(sum(detection_count), 0) FROM rm_test_sessions)",
        (CENTRAL_STORE_ID,),
    )
    row = await cur.fetchone()
    assert row is not None
    return Counts(
        projects=int(row[0]),
        videos=int(row[1]),
        sessions=int(row[2]),
        active_sessions=int(row[3]),
        detections=int(row[4]),
    )


async def detections_by_class(conn: AsyncConnection[Any]) -> list[tuple[str, int]]:
    cur = await conn.execute(
        "SELECT c.key, sum(c.value::bigint) FROM rm_test_sessions,"
        " jsonb_each_text(class_counts) AS c GROUP BY c.key ORDER BY 2 DESC, 1"
    )
    return [(str(k), int(n)) for k, n in await cur.fetchall()]


async def daily_activity(conn: AsyncConnection[Any], days: int = 30) -> list[tuple[date, str, int]]:
    """(day, what, how many) over the last `days` days, newest first."""
    cur = await conn.execute(
        "SELECT day, activity, count(*) FROM ("
        " SELECT created_at::date AS day, 'videos uploaded' AS activity FROM rm_videos"
        " UNION ALL SELECT created_at::date, 'test sessions created' FROM rm_test_sessions"
        " UNION ALL SELECT recorded_at::date, 'evaluations recorded' FROM rm_evaluations"
        "  WHERE status = 'recorded'"
        ") a WHERE day >= current_date - %s::int GROUP BY day, activity"
        " ORDER BY day DESC, activity",
        (days,),
    )
    return [(d, str(a), int(n)) for d, a, n in await cur.fetchall()]
