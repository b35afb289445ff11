"""Answers given by middleware before any route runs: JSON with `detail`, like every 4xx."""

from __future__ import annotations

import json

from litestar.enums import ScopeType
from litestar.types import HTTPResponseStartEvent, Scope, Send


async def refuse(
    scope: Scope, send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    """A JSON 4xx; a WebSocket is closed with code 4000 + status and `detail` as reason."""
    if scope["type"] == ScopeType.WEBSOCKET:
        await send({"type": "websocket.close", "code": 4000 + status, "reason": detail})
        return
    body = json.dumps({"detail": detail}).encode()
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
