"""The audit log's queries on a few thousand real events: which index each filter uses
(EXPLAIN), and that a page reads only what its bounds allow."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import AsyncConnection

from commands.application import Verity
from domain.events import EventMeta, recorded_as
from domain.projects import CameraView, Project, ProjectChanges, SignalType
from projections.audit_filters import AsOf, parse_log_query
from projections.audit_log import (
    history,
    last_position_before,
    page_statement,
    read_page,
    state_as_of,
)
from tests.audit_aggregates import SAMPLES
from verity.bootstrap import open_application

pytestmark = pytest.mark.integration

EVENTS = 4000


def _project(i: int) -> Project:
    return Project(
        name=f"p{i}",
        camera_model="cam",
        camera_view=CameraView.FRONT_FACING_VRU,
        signal_type=SignalType.GPIO,
    )


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    """A log of EVENTS events, mostly projects, with one of every other aggregate type."""
    application = open_application(database_url, pool_size=2)
    with recorded_as(EventMeta(actor="bulk")):
        for start in range(0, EVENTS, 500):
            projects = [_project(i) for i in range(start, start + 500)]
            for p in projects[::10]:
                p.update(ProjectChanges(name=f"{p.name}!"))
            application.commit(*projects)
    with recorded_as(EventMeta(actor="rare")):
        application.commit(*(build() for build, _ in SAMPLES.values()))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE verity_events")
    yield application
    application.close()


def _plan(database_url: str, sql: str, params: list[Any]) -> str:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(f"EXPLAIN {sql}", params).fetchall()
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "verity_events_notification_id_idx"),
        ({"aggregate_type": "video"}, "verity_events_notification_id_idx"),
        ({"event_type": "project.updated"}, "verity_events_notification_id_idx"),
        ({"aggregate_id": str(uuid4())}, "verity_events_pkey"),
    ],
)
def test_each_filter_reads_through_an_index(
    app: Verity, database_url: str, filters: dict[str, str], index: str
) -> None:
    """A page's range is MAX_AUDIT_SCAN positions of a log that is usually far longer; here a
    range of an eighth of the log (over the whole of a small log a sequential scan is what
    PostgreSQL rightly picks)."""
    query = parse_log_query(**filters)
    sql, params = page_statement(query.filter)
    params[0], params[1] = EVENTS // 4, EVENTS // 4 + EVENTS // 8
    plan = _plan(database_url, sql, [*params, 100])
    assert index in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_page_with_a_rare_filter_scans_a_bounded_range(app: Verity, database_url: str) -> None:
    async def pages() -> list[Any]:
        async with await AsyncConnection.connect(database_url) as conn:
            query = parse_log_query(actor="rare", limit="1000")
            first = await read_page(conn, app.mapper, query)
            typed = parse_log_query(aggregate_type="evaluation")
            second = await read_page(conn, app.mapper, typed)
            return [first, second]

    rare, evaluation = asyncio.run(pages())
    assert len({e.aggregate_id for e in rare.events}) == len(SAMPLES)
    assert {e.actor for e in rare.events} == {"rare"}
    assert not rare.has_more and rare.next_after == rare.head
    assert [e.aggregate_type for e in evaluation.events] == ["evaluation", "evaluation"]


def test_time_bounds_come_from_a_binary_search(app: Verity, database_url: str) -> None:
    async def probe() -> tuple[int, int, int]:
        async with await AsyncConnection.connect(database_url) as conn:
            head = app.head()
            past = await last_position_before(conn, datetime.now(UTC) - timedelta(days=1), head)
            future = await last_position_before(conn, datetime.now(UTC) + timedelta(days=1), head)
            return past, future, head

    past, future, head = asyncio.run(probe())
    assert past == 0 and future == head
    plan = _plan(
        database_url,
        "SELECT notification_id, state FROM verity_events WHERE notification_id >= %s"
        " ORDER BY notification_id LIMIT 1",
        [head // 2],
    )
    assert "verity_events_notification_id_idx" in plan, plan


def test_a_long_history_pages_through_every_version(app: Verity, database_url: str) -> None:
    project = _project(-7)
    for i in range(250):
        project.update(ProjectChanges(name=f"name {i}"))
    app.commit(project)

    async def read() -> tuple[list[int], Any, Any]:
        versions: list[int] = []
        async with await AsyncConnection.connect(database_url) as conn:
            after = 0
            while True:
                page = await history(conn, app.mapper, project.id, after, 100)
                versions.extend(e.version for e in page.entries)
                if not page.has_more:
                    break
                after = page.next_after
            middle = await state_as_of(conn, app.mapper, project.id, AsOf(version=151))
            now = await state_as_of(conn, app.mapper, project.id, None)
        return versions, middle, now

    versions, middle, now = asyncio.run(read())
    assert versions == list(range(1, 252))
    assert middle.version == 151 and middle.state["name"] == "name 149"
    assert now.version == now.latest_version == 251 and now.state["name"] == "name 249"
