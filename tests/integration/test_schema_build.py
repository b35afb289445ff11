"""A schema build (blue-green rebuild, `verity replay`) equals the live read models, on real
PostgreSQL: one reader feeds every read model, pages cut anywhere, and the indexes built
after the fill are the live ones, even where the log holds a row twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from commands.application import Verity
from domain.annotations import Annotation, BoundingBox
from domain.detections import Box, Detection, FrameBatch, RecordedFrame
from domain.projects import CENTRAL_STORE_ID
from domain.test_sessions import TestSession
from domain.vru import VruType
from projections import schema_build
from projections.as_of import replay_into
from projections.base import topics_of
from projections.notifications import NotificationLog
from projections.schema_build import Progress
from verity.bootstrap import PROJECTIONS, open_application, projection_runners

pytestmark = pytest.mark.integration

TABLES = sorted({t for cls in PROJECTIONS for t in cls.tables})


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=2)
    yield application
    application.close()


def frame(seq: int) -> RecordedFrame:
    detections = (
        Detection(class_label="pedestrian", confidence=0.9, box=Box(x=1, y=2, width=3, height=4)),
        Detection(class_label="cyclist"),
    )
    return RecordedFrame(
        id=uuid4(), device_id="cam", seq=seq, video_time=seq / 30, detections=detections
    )


def store_history(app: Verity) -> None:
    """Sessions with frame batches (one repeating a frame already stored: the live runner
    records it as a failure), annotations created and edited, in an interleaved log."""
    now = datetime.now(UTC)
    sessions = [TestSession(name=f"s{i}", project_id=uuid4(), video_id=uuid4()) for i in range(2)]
    for s in sessions:
        s.start()
    app.commit(*sessions)
    video = uuid4()
    repeated = frame(0)
    for i in range(12):
        frames = (repeated,) if i == 6 else (frame(2 * i), frame(2 * i + 1))
        if i == 0:
            frames = (repeated, frame(1))
        app.commit(FrameBatch(session_id=sessions[i % 2].id, received_at=now, frames=frames))
        a = Annotation(
            video_id=video,
            frame_number=i,
            seconds=i / 30,
            vru_type=VruType.PEDESTRIAN,
            box=BoundingBox(1 + i, 1, 20, 40),
        )
        if i % 3 == 0:
            a.validate(True)
        app.commit(a)
    sessions[0].complete()
    app.commit(sessions[0])
    assert CENTRAL_STORE_ID  # the central store's events (made at start) are in the log too


def differing(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    out = []
    for t in TABLES:
        a, b = sql.Identifier("public", t), sql.Identifier(schema, t)
        q = sql.SQL(
            "SELECT (SELECT count(*) FROM {a}) = (SELECT count(*) FROM {b})"
            " AND NOT EXISTS (SELECT * FROM {a} EXCEPT SELECT * FROM {b})"
        ).format(a=a, b=b)
        row = conn.execute(q).fetchone()
        if not (row and row[0]):
            out.append(t)
    return out


def indexes(conn: psycopg.Connection[Any], schema: str) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT tablename, replace(indexdef, %s, '') FROM pg_indexes"
        " WHERE schemaname = %s AND tablename = ANY(%s)",
        (f"{schema}.", schema, TABLES),
    ).fetchall()
    return {(str(t), str(d)) for t, d in rows}


def test_a_replay_built_page_by_page_equals_the_live_read_models(
    app: Verity, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store_history(app)
    with ConnectionPool(database_url, min_size=1, max_size=4) as pool:
        for runner in projection_runners(app, pool, 1000):
            runner.catch_up()
        head = app.head()
        applied = replay_into(
            database_url,
            "built_in_pages",
            [cls() for cls in PROJECTIONS],
            NotificationLog(pool),
            app.mapper.to_domain_event,
            head,
            batch_size=3,
        )
    assert applied > 0
    with psycopg.connect(database_url) as conn:
        assert differing(conn, "built_in_pages") == []
        assert indexes(conn, "built_in_pages") == indexes(conn, "public")
        failures = "SELECT projection, position FROM {}.projection_failures ORDER BY 1, 2"
        live = conn.execute(failures.format("public")).fetchall()
        built = conn.execute(failures.format("built_in_pages")).fetchall()
        assert live == built
        assert [p for p, _ in live] == ["detections_v1"]  # the repeated frame, in both
    assert "rebuilding it with the key in place" in caplog.text  # the key's fallback ran


def test_a_build_split_over_processes_equals_the_live_read_models(
    app: Verity, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the test above (same module database): the live read models are current."""
    monkeypatch.setattr(schema_build, "SPLIT_MIN_EVENTS", 0)  # split however small the log
    seen: list[Progress] = []
    with ConnectionPool(database_url, min_size=1, max_size=2) as pool:
        for runner in projection_runners(app, pool, 1000):
            runner.catch_up()
        applied = replay_into(
            database_url,
            "built_in_parts",
            [cls() for cls in PROJECTIONS],
            NotificationLog(pool),
            app.mapper.to_domain_event,
            app.head(),
            batch_size=4,
            progress=seen.append,
            processes=2,
        )
    assert applied > 0
    assert seen and seen[-1].processed == applied
    with psycopg.connect(database_url) as conn:
        assert differing(conn, "built_in_parts") == []
        assert indexes(conn, "built_in_parts") == indexes(conn, "public")


def test_topic_groups_share_no_topic_and_balance_the_events() -> None:
    projections = [cls() for cls in PROJECTIONS]
    counts = {t: 1000 for p in projections for t in topics_of(p)}
    groups = schema_build.topic_groups(projections, counts, 2)
    assert len(groups) == 2
    assert sorted(p.name for g in groups for p in g) == sorted(p.name for p in projections)
    topics = [{t for p in g for t in topics_of(p)} for g in groups]
    assert not topics[0] & topics[1]
    frames = next(g for g in groups if any(p.name == "detections_v1" for p in g))
    assert "test_sessions_v1" in {p.name for p in frames}  # both read the frame batches
