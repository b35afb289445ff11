"""Write side of test sessions: create, and the moves of domain.test_sessions.TRANSITIONS."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import msgspec

from commands.application import Position, Verity
from domain.errors import InvalidValue, check_text
from domain.projects import Project
from domain.test_sessions import (
    DEFAULT_IOU_THRESHOLD,
    DEFAULT_TOLERANCE_MS,
    Move,
    TestSession,
    check_settings,
)
from domain.videos import Video


class CreateTestSession(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    project_id: UUID
    video_id: UUID
    tolerance_ms: int = DEFAULT_TOLERANCE_MS
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    device_id: str | None = None
    description: str | None = None
    start: bool = False
    """Start it in the same transaction (execute-test does)."""
    id: UUID = msgspec.field(default_factory=uuid4)


class ChangeSessionStatus(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    reason: str = ""


def create_test_session(cmd: CreateTestSession, app: Verity) -> Position | None:
    if not cmd.name.strip():
        raise InvalidValue("name", "Test session name is required")
    for field in ("name", "device_id", "description"):
        check_text(field, getattr(cmd, field))
    check_settings(cmd.tolerance_ms, cmd.iou_threshold)
    app.load(Project, cmd.project_id).ensure_exists()
    app.load(Video, cmd.video_id).ensure_exists()
    session = TestSession._create(
        TestSession.Created,
        id=cmd.id,
        name=cmd.name,
        project_id=cmd.project_id,
        video_id=cmd.video_id,
        tolerance_ms=cmd.tolerance_ms,
        iou_threshold=cmd.iou_threshold,
        device_id=cmd.device_id,
        description=cmd.description,
    )
    if cmd.start:
        session.start()
    return app.commit(session)


def _apply(
    cmd: ChangeSessionStatus, app: Verity, move: Callable[[TestSession], None]
) -> Position | None:
    session = app.load(TestSession, cmd.id, "Test session")
    move(session)
    return app.commit(session)


def start_test_session(cmd: ChangeSessionStatus, app: Verity) -> Position | None:
    def start(session: TestSession) -> None:
        app.load(Project, session.project_id).ensure_exists()  # sessions left by old deletions
        session.start()

    return _apply(cmd, app, start)


def pause_test_session(cmd: ChangeSessionStatus, app: Verity) -> Position | None:
    check_text("reason", cmd.reason)
    return _apply(cmd, app, lambda session: session.pause(cmd.reason))


def resume_test_session(cmd: ChangeSessionStatus, app: Verity) -> Position | None:
    return _apply(cmd, app, TestSession.resume)


def stop_test_session(cmd: ChangeSessionStatus, app: Verity) -> Position | None:
    """The run is over: the session completes (and is evaluated), as the frontend's Stop means."""
    return _apply(cmd, app, TestSession.stop)


def complete_test_session(cmd: ChangeSessionStatus, app: Verity) -> Position | None:
    return _apply(cmd, app, TestSession.complete)


def fail_test_session(cmd: ChangeSessionStatus, app: Verity) -> Position | None:
    check_text("reason", cmd.reason)
    return _apply(cmd, app, lambda session: session.fail(cmd.reason))


def delete_test_session(cmd: ChangeSessionStatus, app: Verity) -> Position | None:
    """Recorded as an event like every change: the session leaves the lists and is closed to
    detections; what it recorded stays in the store."""
    return _apply(cmd, app, TestSession.delete)


SessionHandler = Callable[[ChangeSessionStatus, Verity], Position | None]

HANDLERS: dict[Move, SessionHandler] = {
    Move.START: start_test_session,
    Move.PAUSE: pause_test_session,
    Move.RESUME: resume_test_session,
    Move.STOP: stop_test_session,
    Move.COMPLETE: complete_test_session,
    Move.FAIL: fail_test_session,
    Move.DELETE: delete_test_session,
}
"""One command handler per move of the lifecycle (HTTP routes and the Socket.IO door use it)."""
