"""Projections on real PostgreSQL: batched, replayable, equal whether live or rebuilt."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import ConnectionPool

from commands.application import Verity
from domain.projects import CENTRAL_STORE_ID, CameraView, Project, ProjectChanges, SignalType
from domain.videos import Video, VideoMetadata
from projections.runner import ProjectionRunner
from storage.migrate import migrate
from verity.bootstrap import open_application, projection_runners

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=2)
    yield application
    application.close()


@pytest.fixture(scope="module")
def pool(database_url: str) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(database_url, min_size=1, max_size=2) as p:
        yield p


def snapshot(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(database_url) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("rm_projects", "rm_videos")
        }


# One step of a random history: (operation, which aggregate, a value)
steps = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "new_project",
                "rename",
                "describe",
                "delete_project",
                "new_video",
                "metadata",
                "link",
                "unlink",
                "delete_video",
            ]
        ),
        st.integers(0, 5),
        # what the edge accepts (domain.limits): no control characters, no lone surrogates
        st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8),
    ),
    min_size=1,
    max_size=40,
)


def apply_step(
    app: Verity, projects: list[UUID], videos: list[UUID], op: str, pick: int, text: str
) -> None:
    """Apply one operation if it is legal now; illegal ones are skipped, as the API would 4xx."""
    if op == "new_project":
        p = Project(
            name=text or "p",
            camera_model="m",
            camera_view=CameraView.MULTI_ANGLE,
            signal_type=SignalType.SERIAL,
        )
        projects.append(p.id)
        app.commit(p)
    elif op == "new_video":
        v = Video(
            project_id=CENTRAL_STORE_ID,
            filename=f"{uuid4()}.mp4",
            original_name=text,
            size_bytes=len(text) + 1,
            sha256="00",
        )
        videos.append(v.id)
        app.commit(v)
    elif op in ("rename", "describe", "delete_project") and projects:
        p = app.load(Project, projects[pick % len(projects)])
        if p.deleted:
            return
        if op == "delete_project":
            p.delete()
        else:
            p.update(
                ProjectChanges(name=text or "n")
                if op == "rename"
                else ProjectChanges(description=text or None)
            )
        app.commit(p)
    elif videos:
        v = app.load(Video, videos[pick % len(videos)])
        if v.deleted:
            return
        if op == "metadata":
            v.record_metadata(
                VideoMetadata(fps=25.0, frame_count=pick, duration=pick / 25, width=640, height=480)
            )
        elif op == "link" and projects and v.in_central_store:
            target = app.load(Project, projects[pick % len(projects)])
            if target.deleted:
                return
            v.link_to(target.id)
        elif op == "unlink" and not v.in_central_store:
            v.unlink_from(v.project_id)
        elif op == "delete_video":
            v.delete()
        app.commit(v)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=steps, batch_size=st.integers(1, 7), every=st.integers(1, 6))
def test_incremental_projection_equals_one_rebuild(
    app: Verity,
    pool: ConnectionPool[Any],
    database_url: str,
    history: list[tuple[str, int, str]],
    batch_size: int,
    every: int,
) -> None:
    runners = projection_runners(app, pool, batch_size)
    for runner in runners:
        runner.catch_up()
    projects: list[UUID] = []
    videos: list[UUID] = []
    for i, (op, pick, text) in enumerate(history):
        apply_step(app, projects, videos, op, pick, text)
        if i % every == 0:
            for runner in runners:
                runner.catch_up()
    for runner in runners:
        runner.catch_up()
    live = snapshot(database_url)

    rebuilt_runners = projection_runners(app, pool, 10_000)
    for runner in rebuilt_runners:
        runner.reset()
        runner.catch_up()
    assert snapshot(database_url) == live


def test_dropped_read_models_are_rebuilt_identically(
    app: Verity, pool: ConnectionPool[Any], database_url: str
) -> None:
    projects: list[UUID] = []
    videos: list[UUID] = []
    for i, op in enumerate(
        [
            "new_project",
            "new_project",
            "new_video",
            "new_video",
            "link",
            "metadata",
            "rename",
            "describe",
            "delete_video",
            "new_video",
        ]
    ):
        apply_step(app, projects, videos, op, i, f"v{i}")
    for runner in projection_runners(app, pool, 1000):
        runner.catch_up()
    before = snapshot(database_url)
    assert before["rm_projects"] and before["rm_videos"]

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE rm_projects, rm_videos")
        conn.execute("DELETE FROM tracking WHERE name IN ('projects_v1', 'videos_v1')")
    migrate(database_url)  # what every start does: re-creates the read-model tables
    runners: list[ProjectionRunner] = [
        r for r in projection_runners(app, pool, 1000) if r.name in ("projects_v1", "videos_v1")
    ]
    assert len(runners) == 2
    assert all(r.position == 0 for r in runners)
    for runner in runners:
        runner.catch_up()
    assert snapshot(database_url) == before


def test_a_restart_takes_no_lock_on_read_models_another_process_writes(database_url: str) -> None:
    """The CI deadlock of 2026-12-06: every start re-ran the repeatable DDL (ALTER TABLE ...
    IF NOT EXISTS still takes an exclusive lock), so a second process starting while the first
    projected could deadlock with it. With every table present, a start runs none of it."""
    migrate(database_url)
    with psycopg.connect(database_url) as writer:
        writer.execute("UPDATE rm_videos SET status = status")  # holds ROW EXCLUSIVE, open
        impatient = f"{database_url} options='-c lock_timeout=2000'"
        assert migrate(impatient) == []  # would wait on the writer, then fail, were DDL run
        writer.rollback()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP INDEX rm_videos_project_idx")
    migrate(database_url)  # something missing: the repeatable files run again
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('rm_videos_project_idx')").fetchone()
    assert row is not None and row[0] is not None


def test_pages_cut_short_by_bytes_skip_no_event(
    app: Verity, pool: ConnectionPool[Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page stops after MAX_PAGE_BYTES of state and says so: a rebuild through one-event
    pages must equal a rebuild through whole ones, not jump to the head after the first."""
    import projections.notifications as log

    projects: list[UUID] = []
    videos: list[UUID] = []
    for i, op in enumerate(["new_project", "new_project", "new_video", "rename", "link"] * 3):
        apply_step(app, projects, videos, op, i, f"p{i}")
    head = app.head()
    reader = log.NotificationLog(pool)
    whole = reader.select_notifications(0, 1000, stop=head)
    assert whole[-1].id == head and len(whole) >= 15 and not whole.truncated

    monkeypatch.setattr(log, "MAX_PAGE_BYTES", 1)
    first = reader.select_notifications(0, 1000, stop=head)
    assert [n.id for n in first] == [whole[0].id] and first.truncated

    runners = [r for r in projection_runners(app, pool, 1000) if r.name == "projects_v1"]
    for runner in runners:
        runner.reset()
        runner.catch_up()
    one_by_one = snapshot(database_url)
    monkeypatch.undo()
    for runner in runners:
        runner.reset()
        runner.catch_up()
    assert snapshot(database_url) == one_by_one and one_by_one["rm_projects"]


def test_two_runners_on_one_projection_never_apply_a_batch_twice(
    app: Verity, pool: ConnectionPool[Any], database_url: str
) -> None:
    """A second process running the same projection loses the race and re-reads; no double rows."""
    first, second = (projection_runners(app, pool, 3)[0] for _ in range(2))
    first.catch_up()
    second.catch_up()
    app.commit(
        *[
            Project(
                name=f"race{i}",
                camera_model="m",
                camera_view=CameraView.MULTI_ANGLE,
                signal_type=SignalType.GPIO,
            )
            for i in range(5)
        ]
    )
    head = app.head()
    first.step(head)
    assert second.step(head) == 0  # lost the race: its position was stale
    second.catch_up()
    first.catch_up()
    assert first.position == second.position == head
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM rm_projects WHERE name LIKE 'race%'").fetchone()
    assert row is not None and row[0] == 5
