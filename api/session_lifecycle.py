"""The moves of a test session (domain.test_sessions.TRANSITIONS) over HTTP.

`change_session` is what every door calls: these routes, and the Socket.IO door's
start/stop/pause/resume events; it needs no HTTP request, only who asks (`EventMeta`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, delete, post
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from api.operation_ids import per_path
from api.services import Services, caught_up, execute_as, meta_of, services_of
from api.test_sessions import TestSessionOut, load_session, session_out
from commands.test_sessions import HANDLERS, ChangeSessionStatus
from domain.events import EventMeta
from domain.limits import Text
from domain.test_sessions import Move


class FailIn(msgspec.Struct, kw_only=True):
    reason: Text = ""


async def change_session(
    services: Services, meta: EventMeta, session_id: UUID, move: Move, reason: str = ""
) -> TestSessionOut:
    """Make the move (Conflict naming the current status when the table forbids it), wait for
    the sessions read model to include it and answer the session as GET shows it."""
    cmd = ChangeSessionStatus(id=session_id, reason=reason)
    position = await execute_as(services, meta, HANDLERS[move], cmd)
    await caught_up(services, position, "test_sessions_v1")
    return session_out(await load_session(services, session_id))


async def _move(
    state: State, request: Request[Any, Any, Any], session_id: UUID, move: Move, reason: str = ""
) -> TestSessionOut:
    return await change_session(services_of(state), meta_of(request), session_id, move, reason)


_TS = "/api/test-sessions/{session_id:uuid}/"
_FRONTEND = "/api/sessions/{session_id:uuid}/"
"""EnhancedTestExecution.tsx's spelling of the start, stop and delete routes."""


def _route(move: Move, operation_id: str, summary: str, frontend_id: str = "") -> HTTPRouteHandler:
    """`POST .../{move}`, also at the frontend's spelling when it has an id there."""
    paths = [_TS + move.value] + ([_FRONTEND + move.value] if frontend_id else [])
    ids = per_path({"": operation_id, "sessions": frontend_id})

    @post(
        paths,
        operation_id=ids,
        name=f"{move.value}_session",
        summary=summary,
        status_code=200,
        tags=["test sessions"],
    )
    async def route(
        state: State, request: Request[Any, Any, Any], session_id: FromPath[UUID]
    ) -> TestSessionOut:
        return await _move(state, request, session_id, move)

    return route


@post(
    _TS + Move.FAIL.value,
    operation_id="failTestSession",
    summary="Mark a test session failed (device broke, run invalid) with an optional `reason`;"
    " it is kept, not evaluated; 409 naming the current status",
    status_code=200,
    tags=["test sessions"],
)
async def fail_session(
    state: State,
    request: Request[Any, Any, Any],
    session_id: FromPath[UUID],
    data: JSONBody[FailIn | None] = None,
) -> TestSessionOut:
    reason = data.reason if data is not None else ""
    return await _move(state, request, session_id, Move.FAIL, reason)


@delete(
    [_TS.rstrip("/"), _FRONTEND.rstrip("/")],
    operation_id=per_path({"": "deleteTestSession", "sessions": "deleteSession"}),
    summary="Delete a test session: `TestSession.Deleted` is stored (nothing is erased); it"
    " leaves the lists, takes no more detections, and stays readable by id (status `deleted`)",
    status_code=200,
    tags=["test sessions"],
)
async def delete_session(
    state: State, request: Request[Any, Any, Any], session_id: FromPath[UUID]
) -> TestSessionOut:
    return await _move(state, request, session_id, Move.DELETE)


_CONFLICT = "; 409 naming the current status"
LIFECYCLE_ROUTES = [
    _route(
        Move.START,
        "startTestSession",
        "Start a pending test session (T10)" + _CONFLICT,
        frontend_id="startSession",
    ),
    _route(
        Move.STOP,
        "stopTestSession",
        "Stop: the run is over; the session completes and is evaluated (the frontend's Stop)"
        + _CONFLICT,
        frontend_id="stopSession",
    ),
    _route(
        Move.PAUSE,
        "pauseTestSession",
        "Pause a running test session (detections are still accepted)" + _CONFLICT,
    ),
    _route(Move.RESUME, "resumeTestSession", "Resume a paused test session" + _CONFLICT),
    _route(
        Move.COMPLETE,
        "completeTestSession",
        "Complete a test session: no more detections; the evaluation runs" + _CONFLICT,
    ),
    fail_session,
    delete_session,
]
"""The routes of every move in domain.test_sessions.TRANSITIONS."""
