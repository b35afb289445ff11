"""Rules of the Project and Video aggregates."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.errors import Conflict, InvalidValue, NotFound
from domain.events import EventMeta, recorded_as
from domain.projects import (
    CENTRAL_STORE_ID,
    CameraView,
    Project,
    ProjectChanges,
    SignalType,
    central_store,
)
from domain.videos import Video

pytestmark = pytest.mark.unit


def new_project(name: str = "Front cam") -> Project:
    return Project(
        name=name,
        camera_model="X1",
        camera_view=CameraView.FRONT_FACING_VRU,
        signal_type=SignalType.GPIO,
    )


def new_video() -> Video:
    return Video(
        project_id=CENTRAL_STORE_ID,
        filename="a.mp4",
        original_name="a.mp4",
        size_bytes=1,
        sha256="0",
    )


def test_update_records_only_the_fields_that_change() -> None:
    project = new_project()
    assert project.update(ProjectChanges(name="Front cam", description="new")) is True
    updated = project.collect_events()[-1]
    assert updated.changes.as_dict() == {"description": "new"}  # type: ignore[attr-defined]
    assert project.update(ProjectChanges(name="Front cam")) is False


def test_nul_characters_are_refused_before_anything_is_stored() -> None:
    from commands.projects import CreateProject, create_project

    cmd = CreateProject(
        name="a\x00b",
        camera_model="m",
        camera_view=CameraView.MULTI_ANGLE,
        signal_type=SignalType.GPIO,
    )
    with pytest.raises(InvalidValue, match="name: must not contain NUL"):
        create_project(cmd, app=None)  # type: ignore[arg-type]  # refused before any I/O


def test_deleted_project_cannot_be_updated_or_deleted_again() -> None:
    project = new_project()
    project.delete()
    with pytest.raises(NotFound, match="was deleted"):
        project.update(ProjectChanges(name="again"))
    with pytest.raises(NotFound):
        project.delete()


def test_a_project_with_test_sessions_is_not_deleted() -> None:
    project = new_project()
    sessions = [uuid4() for _ in range(7)]
    with pytest.raises(Conflict, match=f"7 test session.*{sessions[0]}.* and 2 more.*archived"):
        project.delete(sessions)
    assert not project.deleted and len(project.collect_events()) == 1
    project.delete(())
    assert project.deleted


def test_central_store_is_protected() -> None:
    store = central_store()
    assert store.id == CENTRAL_STORE_ID
    with pytest.raises(Conflict):
        store.delete()
    with pytest.raises(Conflict):
        store.update(ProjectChanges(name="mine"))


def test_events_carry_the_meta_in_force_when_decided() -> None:
    rid = uuid4()
    with recorded_as(EventMeta(actor="ada", correlation_id=rid, causation_id=rid)):
        project = new_project()
    project.update(ProjectChanges(name="later"))
    created, updated = project.collect_events()
    assert created.meta.actor == "ada"  # type: ignore[attr-defined]
    assert created.meta.correlation_id == rid  # type: ignore[attr-defined]
    assert updated.meta.actor == "anonymous"  # type: ignore[attr-defined]


def test_video_links_only_from_the_central_store_and_unlinks_back() -> None:
    video, a, b = new_video(), uuid4(), uuid4()
    assert video.link_to(a) is True
    assert video.link_to(a) is False
    with pytest.raises(Conflict, match="unlink it first"):
        video.link_to(b)
    with pytest.raises(NotFound, match="not linked"):
        video.unlink_from(b)
    video.unlink_from(a)
    assert video.project_id == CENTRAL_STORE_ID


def test_deleted_video_refuses_changes() -> None:
    video = new_video()
    video.delete()
    with pytest.raises(NotFound):
        video.link_to(uuid4())
