"""A read model never stops for one event, on real PostgreSQL: an event it cannot apply is
recorded and skipped, the events around it apply, a rebuild records it again, and once the
cause is fixed a retry applies it (and the events of its row held back behind it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from commands.application import Verity
from domain.annotations import Annotation, AnnotationChanges, BoundingBox
from domain.projects import CameraView, Project, ProjectChanges, SignalType
from domain.vru import VruType
from projections.failures import failures_of
from projections.projects import ProjectsProjection
from projections.rows import Row
from projections.runner import ProjectionRunner
from verity.bootstrap import open_application, projection_runners

pytestmark = pytest.mark.integration

POISON_FRAME = 2**40
"""Beyond the `integer` column rm_annotations.frame_number (the edges refuse it; stored
here through the aggregate, as an older build or another writer could have)."""


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=2)
    yield application
    application.close()


@pytest.fixture(scope="module")
def pool(database_url: str) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(database_url, min_size=1, max_size=2) as p:
        yield p


def annotation(app: Verity, video: UUID, frame: int) -> Annotation:
    """Through the aggregate's event directly: no edge check between us and the store."""
    a = Annotation(
        video_id=video,
        frame_number=frame,
        seconds=0.0,
        vru_type=VruType.CYCLIST,
        box=BoundingBox(1, 2, 3, 4),
    )
    app.commit(a)
    return a


def annotations_runner(app: Verity, pool: ConnectionPool[Any], batch: int) -> ProjectionRunner:
    (runner,) = (r for r in projection_runners(app, pool, batch) if r.name == "annotations_v1")
    return runner


def frames(url: str, video: UUID) -> dict[UUID, tuple[int, float | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, frame_number, x FROM rm_annotations WHERE video_id = %s", (video,)
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_an_unprojectable_event_is_recorded_skipped_rebuilt_and_retried(
    app: Verity, pool: ConnectionPool[Any], database_url: str
) -> None:
    video = uuid4()
    before = [annotation(app, video, i) for i in range(3)]
    poison = annotation(app, video, POISON_FRAME)
    poison_position = app.head()
    poison.update(AnnotationChanges(box=BoundingBox(9, 9, 9, 9)), None)  # held behind it
    app.commit(poison)
    moved_position = app.head()
    after = [annotation(app, video, 10 + i) for i in range(3)]

    runner = annotations_runner(app, pool, 1000)
    runner.catch_up()
    assert runner.position == app.head()
    good = {a.id: (a.frame_number, 1.0) for a in before + after}
    assert frames(database_url, video) == good

    with psycopg.connect(database_url) as conn:
        failures = failures_of(conn, "annotations_v1", 10)
    assert [(f.position, f.originator_id, f.held_by) for f in failures] == [
        (poison_position, poison.id, None),
        (moved_position, poison.id, poison_position),
    ]
    assert "NumericValueOutOfRange" in failures[0].error
    assert failures[0].topic.endswith("Annotation.Created")
    assert failures[0].originator_version == 1

    # A later write to the same row is held back too; other rows keep moving.
    poison.update(AnnotationChanges(box=BoundingBox(7, 7, 7, 7)), None)
    app.commit(poison)
    later = annotation(app, video, 20)
    runner.catch_up()
    assert frames(database_url, video) == {**good, later.id: (20, 1.0)}

    # A full rebuild (batches of 2: the bad event shares a batch with good ones) records the
    # same failures again and the same rows.
    rebuilt = annotations_runner(app, pool, 2)
    rebuilt.reset()
    with psycopg.connect(database_url) as conn:
        assert failures_of(conn, "annotations_v1", 10) == []
    rebuilt.catch_up()
    assert frames(database_url, video) == {**good, later.id: (20, 1.0)}
    with psycopg.connect(database_url) as conn:
        again = failures_of(conn, "annotations_v1", 10)
    assert [f.position for f in again][:2] == [poison_position, moved_position]
    assert len(again) == 3

    # Retrying without a fix changes nothing.
    assert rebuilt.retry_failures() == (0, 3)
    # The fix: a column wide enough. The retry applies the row's events in their order.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE rm_annotations ALTER COLUMN frame_number TYPE bigint")
    try:
        assert rebuilt.retry_failures() == (3, 0)
        assert frames(database_url, video)[poison.id] == (POISON_FRAME, 7.0)
        with psycopg.connect(database_url) as conn:
            assert failures_of(conn, "annotations_v1", 10) == []
        poison.update(AnnotationChanges(box=BoundingBox(5, 5, 5, 5)), None)
        app.commit(poison)  # no longer held: applies at once
        rebuilt.catch_up()
        assert frames(database_url, video)[poison.id] == (POISON_FRAME, 5.0)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM rm_annotations WHERE frame_number > 2147483647")
            conn.execute("ALTER TABLE rm_annotations ALTER COLUMN frame_number TYPE integer")


class FussyProjects(ProjectsProjection):
    """The projects read model with a bug for one name: an exception in projection code."""

    name = "projects_fussy_test"

    def fold(self, row: Row | None, event: Any) -> Row | None:
        folded = super().fold(row, event)
        if folded is not None and folded["name"] == "poison":
            raise ValueError("cannot project a project called poison")
        return folded


def project(name: str) -> Project:
    return Project(
        name=name,
        camera_model="m",
        camera_view=CameraView.MULTI_ANGLE,
        signal_type=SignalType.GPIO,
    )


def test_rows_folded_per_batch_hold_exactly_the_good_events(
    app: Verity, pool: ConnectionPool[Any], database_url: str
) -> None:
    """A row projection folds a batch in memory: isolating one event must leave every other
    row as if the bad event had never been in the batch, including rows changed twice."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE rm_projects")
        conn.execute("DELETE FROM tracking WHERE name = 'projects_fussy_test'")
    runner = ProjectionRunner(
        FussyProjects(),
        pool,
        projection_runners(app, pool, 1)[0].reader,
        app.mapper.to_domain_event,
        batch_size=1000,
    )
    runner.catch_up()
    a, b, bad = project("a"), project("b"), project("fine")
    app.commit(a, b, bad)
    a.update(ProjectChanges(name="a2"))
    bad.update(ProjectChanges(name="poison"))
    b.update(ProjectChanges(name="b2"))
    app.commit(a, bad, b)
    bad_position = app.head() - 1
    bad.update(ProjectChanges(name="fine again"))
    a.update(ProjectChanges(name="a3"))
    app.commit(bad, a)
    runner.catch_up()

    with psycopg.connect(database_url) as conn:
        names = dict(conn.execute("SELECT id, name FROM rm_projects").fetchall())
        failures = failures_of(conn, "projects_fussy_test", 10)
    assert names[a.id] == "a3" and names[b.id] == "b2"
    assert names[bad.id] == "fine"  # its row stops before the failure: later edits held
    assert [(f.position, f.held_by) for f in failures] == [
        (bad_position, None),
        (bad_position + 2, bad_position),
    ]
    assert failures[0].error == "ValueError: cannot project a project called poison"


def test_an_outage_is_retried_not_skipped(
    app: Verity, pool: ConnectionPool[Any], database_url: str
) -> None:
    """A missing table is not the event's fault: the batch fails whole and nothing is skipped."""
    runner = annotations_runner(app, pool, 1000)
    runner.catch_up()
    start = runner.position
    annotation(app, uuid4(), 1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE rm_annotations RENAME TO rm_annotations_away")
    try:
        with pytest.raises(psycopg.errors.UndefinedTable):
            runner.catch_up()
        assert runner.position == start
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE rm_annotations_away RENAME TO rm_annotations")
    runner.catch_up()
    assert runner.position == app.head()
    with psycopg.connect(database_url) as conn:
        assert all(f.position <= start for f in failures_of(conn, None, 100))
