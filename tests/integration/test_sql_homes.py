"""The queries that controllers, workers and the command line used to run themselves, now query
functions in projections/ and storage/, on real PostgreSQL: same answers as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from commands.annotations import (
    CreateAnnotation,
    DeleteAnnotation,
    create_annotation,
    delete_annotation,
)
from commands.application import Verity
from commands.projects import CreateProject, create_project
from commands.test_sessions import (
    ChangeSessionStatus,
    CreateTestSession,
    complete_test_session,
    create_test_session,
)
from commands.videos import RegisterUpload, register_upload
from domain.annotations import AnnotationDraft, BoundingBox, VruType
from domain.projects import CameraView, SignalType
from domain.videos import VideoMetadata
from projections.evaluations import completed_unevaluated
from projections.failures import Failure, failure_count, record_failures
from projections.notifications import NotificationLog, event_count
from projections.runner import ProjectionRunner, ensure_tracking
from projections.videos import VideoGroundTruth, ground_truth_of_project
from storage.server import ping, probe
from storage.tracking import save_position, tracked_positions
from verity.bootstrap import open_application, projection_runners
from workers.device_simulator import TruthBox, load_ground_truth

pytestmark = pytest.mark.integration


class Scene:
    """A project with three videos: none annotated, one with a box, one whose box was deleted;
    a completed session on the annotated one and a new session on the bare one."""

    def __init__(self, app: Verity) -> None:
        project = CreateProject(
            name="queries",
            camera_model="m",
            camera_view=CameraView.FRONT_FACING_VRU,
            signal_type=SignalType.GPIO,
        )
        create_project(project, app)
        self.project = project.id
        self.bare, self.annotated, self.emptied = (self._video(app) for _ in range(3))
        self.box = BoundingBox(10, 20, 30, 40)
        create_annotation(CreateAnnotation(video_id=self.annotated, draft=self._draft(7)), app)
        gone = CreateAnnotation(video_id=self.emptied, draft=self._draft(8))
        create_annotation(gone, app)
        delete_annotation(DeleteAnnotation(id=gone.id), app)
        done = self._session(app, self.annotated)
        complete_test_session(ChangeSessionStatus(id=done), app)
        self.completed = done
        self.fresh = self._session(app, self.bare)

    def _video(self, app: Verity) -> UUID:
        vid = uuid4()
        register_upload(
            RegisterUpload(
                id=vid,
                project_id=self.project,
                filename=f"{vid}.mp4",
                original_name="v.mp4",
                size=1,
                sha256="0",
                metadata=VideoMetadata(fps=10, frame_count=100, duration=10, width=640, height=480),
            ),
            app,
        )
        return vid

    def _draft(self, frame: int) -> AnnotationDraft:
        return AnnotationDraft(
            frame_number=frame,
            timestamp=frame / 10,
            vru_type=VruType.CYCLIST,
            box=self.box,
            detection_id="track-1",
        )

    def _session(self, app: Verity, video: UUID) -> UUID:
        cmd = CreateTestSession(name="s", project_id=self.project, video_id=video, start=True)
        create_test_session(cmd, app)
        return cmd.id


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=2)
    yield application
    application.close()


@pytest.fixture(scope="module")
def pool(database_url: str) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(database_url, min_size=1, max_size=2) as p:
        yield p


@pytest.fixture(scope="module")
def runners(app: Verity, pool: ConnectionPool[Any]) -> list[ProjectionRunner]:
    return projection_runners(app, pool, 100)


@pytest.fixture(scope="module")
def scene(app: Verity, runners: list[ProjectionRunner]) -> Scene:
    built = Scene(app)
    for runner in runners:
        runner.catch_up()
    return built


async def test_execute_test_finds_ground_truth_of_every_project_video_in_one_query(
    scene: Scene, database_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        found = await ground_truth_of_project(conn, scene.project)
        assert await ground_truth_of_project(conn, uuid4()) == []
    assert found == [
        VideoGroundTruth(scene.bare, False),
        VideoGroundTruth(scene.annotated, True),
        VideoGroundTruth(scene.emptied, False),
    ]


def test_the_simulated_camera_reads_the_boxes_of_its_sessions_video(
    scene: Scene, database_url: str
) -> None:
    box = (scene.box.x, scene.box.y, scene.box.width, scene.box.height)
    assert load_ground_truth(database_url, scene.completed) == [
        TruthBox(0.7, "cyclist", box, "track-1")
    ]
    assert load_ground_truth(database_url, scene.fresh) == []
    assert load_ground_truth(database_url, uuid4()) == []


async def test_the_evaluator_sweeps_completed_sessions_and_reads_tracked_positions(
    scene: Scene, database_url: str, runners: list[ProjectionRunner]
) -> None:
    by_name = {r.name: r.position for r in runners}
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        assert await completed_unevaluated(conn) == [scene.completed]
        positions = await tracked_positions(conn, ["test_sessions_v1", "no_such_v1"])
    assert positions == {"test_sessions_v1": by_name["test_sessions_v1"]}
    assert positions["test_sessions_v1"] > 0


def test_the_relay_saves_its_position(pool: ConnectionPool[Any]) -> None:
    with pool.connection() as conn:
        assert ensure_tracking(conn, "relay:queries") == 0
        save_position(conn, "relay:queries", 42)
        assert ensure_tracking(conn, "relay:queries") == 42


def test_rebuild_counts_events_and_failures(
    scene: Scene, pool: ConnectionPool[Any], runners: list[ProjectionRunner]
) -> None:
    sessions = next(r for r in runners if r.name == "test_sessions_v1")
    stored = NotificationLog(pool).select_notifications(0, 1000, topics=sessions.topics)
    with pool.connection() as conn:
        assert event_count(conn, sessions.topics) == len(stored) > 0
        assert event_count(conn, []) == 0
        assert failure_count(conn, "test_sessions_v1") == 0
        first = stored[0]
        failed = Failure(first.id, first.topic, first.originator_id, 1, first.originator_id, "x")
        record_failures(conn, "test_sessions_v1", [failed])
        assert failure_count(conn, "test_sessions_v1") == 1
        assert failure_count(conn, "videos_v1") == 0
        conn.rollback()


async def test_the_server_probes_answer(database_url: str) -> None:
    await probe(database_url, 3)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
        await ping(pool)
    with pytest.raises(psycopg.OperationalError):
        await probe("postgresql://nobody@127.0.0.1:1/none", 3)
