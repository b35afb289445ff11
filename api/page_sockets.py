"""The plain sockets the frontend's pages open, as second doors onto the feed of `/ws`.

`/ws/test-execution/{sessionId}` (TestExecution.tsx) and `/ws/test/{sessionId}`
(EnhancedTestExecution.tsx) join the session's room on the same hub as `/ws`, so they hear
what any process published, and translate each message into what their page reads
(projections/page_messages.py). On connecting, the session as it stands is sent first (a
client that comes late, or after the evaluation, still gets its figures). An id that names no
session gets an error message, then the socket closes (1008). `/ws/test` alone is the
page's connection check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol
from uuid import UUID

from litestar import WebSocket, websocket
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect

from api.services import Services, services_of
from api.ws import Client, RoomHub
from domain.evaluation import Counts
from projections.evaluations import latest_evaluation
from projections.live_messages import (
    completion_message,
    encode,
    evaluation_failed_message,
    progress_message,
    session_room,
)
from projections.page_messages import (
    EnhancedTestFeed,
    SessionInfo,
    TestExecutionFeed,
    page_message,
    reply_to,
    unknown_session,
)
from projections.test_sessions import TestSessionRow, get_test_session, session_progress
from projections.videos import get_video

CLOSE_UNKNOWN = 1008


class Feed(Protocol):
    def translate(self, raw: bytes) -> list[bytes]: ...


async def _session(services: Services, raw_id: str) -> tuple[SessionInfo, TestSessionRow] | None:
    try:
        session_id = UUID(raw_id)
    except ValueError:
        return None
    row = await get_test_session(services.read_pool, session_id)
    if row is None:
        return None
    async with services.read_pool.connection() as conn:
        video = await get_video(conn, row.video_id)
    info = SessionInfo(
        session_id=row.id,
        video_id=row.video_id,
        video_name=video.original_name if video else None,
        device_id=row.device_id,
        started_at=row.started_at.isoformat() if row.started_at else None,
    )
    return info, row


async def _as_it_stands(services: Services, row: TestSessionRow) -> list[bytes]:
    """Live-feed messages (as the hub carries them) that tell the session's state now."""
    room = session_room(row.id)
    counts = await session_progress(services.read_pool, [row.id])
    messages = [progress_message(row.id, counts.get(row.id))]
    if row.status in ("failed", "deleted"):
        update = {"status": row.status, "error": row.error}
        messages.append(encode("test_session_update", room, update))
    elif row.status == "completed":
        async with services.read_pool.connection() as conn:
            evaluation = await latest_evaluation(conn, row.id, with_report=False)
        if evaluation is not None and evaluation.status == "recorded":
            figures = Counts(
                tp=evaluation.tp or 0,
                fp=evaluation.fp or 0,
                fn=evaluation.fn or 0,
                precision=evaluation.precision,
                recall=evaluation.recall,
                f1=evaluation.f1,
                accuracy=evaluation.accuracy,
            )
            messages.append(
                completion_message(row.id, evaluation.id, figures, evaluation.outcome, room)
            )
        elif evaluation is not None and evaluation.status == "failed":
            reason = evaluation.failure or ""
            messages.append(evaluation_failed_message(row.id, evaluation.id, reason, room))
    return messages


async def _send(socket: WebSocket[Any, Any, Any], messages: list[bytes]) -> None:
    for message in messages:
        await socket.send_data(message.decode(), mode="text")


async def _pump(client: Client, socket: WebSocket[Any, Any, Any], feed: Feed) -> None:
    while (message := await client.queue.get()) is not None:
        await _send(socket, feed.translate(message))
    await socket.close(code=1013, reason="client too slow; reconnect")


async def _answer(socket: WebSocket[Any, Any, Any]) -> None:
    """Answer what the client sends (a ping, or an error) until it goes."""
    while True:
        raw = await socket.receive_data(mode="text")
        await _send(socket, [reply_to(raw)])


async def _serve(
    socket: WebSocket[Any, Any, Any],
    state: State,
    raw_id: str,
    feed_of: Callable[[SessionInfo], Feed],
    unknown_kind: str,
) -> None:
    services = services_of(state)
    await socket.accept()
    found = await _session(services, raw_id)
    if found is None:
        await _send(socket, [unknown_session(raw_id, unknown_kind)])
        await socket.close(code=CLOSE_UNKNOWN, reason="unknown test session")
        return
    info, row = found
    feed = feed_of(info)
    hub: RoomHub = services.hub
    client = Client()
    hub.join(client, session_room(info.session_id))  # before the snapshot: nothing is missed
    sender: asyncio.Task[None] | None = None
    try:
        for message in await _as_it_stands(services, row):
            await _send(socket, feed.translate(message))
        sender = asyncio.create_task(_pump(client, socket, feed))
        await _answer(socket)
    except WebSocketDisconnect:
        pass
    finally:
        hub.drop(client)
        if sender is not None:
            sender.cancel()


@websocket(
    "/ws/test-execution/{session_id:str}",
    name="test_execution_socket",
    opt={"operation_id": "testExecutionSocket"},
)
async def test_execution_socket(
    socket: WebSocket[Any, Any, Any], state: State, session_id: str
) -> None:
    """TestExecution.tsx: `{type: test_progress|test_result|test_completed|test_error}`."""
    await _serve(socket, state, session_id, TestExecutionFeed, "test_error")


@websocket(
    "/ws/test/{session_id:str}",
    name="enhanced_test_socket",
    opt={"operation_id": "enhancedTestSocket"},
)
async def enhanced_test_socket(
    socket: WebSocket[Any, Any, Any], state: State, session_id: str
) -> None:
    """EnhancedTestExecution.tsx: `{type: test_result|session_complete|test_progress}`."""
    await _serve(socket, state, session_id, EnhancedTestFeed, "error")


@websocket("/ws/test", name="enhanced_test_check", opt={"operation_id": "enhancedTestCheck"})
async def enhanced_test_check(socket: WebSocket[Any, Any, Any]) -> None:
    """EnhancedTestExecution.tsx's connection check: it opens, then closes."""
    await socket.accept()
    hello = page_message(
        "connection_established", message="Open /ws/test/{sessionId} to follow a session"
    )
    try:
        await _send(socket, [hello])
        await _answer(socket)
    except WebSocketDisconnect:
        pass
