"""GET/HEAD /uploads/{name}: stored videos served the way a player reads them.

Byte ranges (206), validators (ETag, Last-Modified, 304, If-Range), each container's media type,
and the body streamed from the one open file handle in chunks (never read whole); a client that
goes away stops the reading. A player without a token reads through a signed link (a request
that api/auth.py admits as the principal the link was made for: api/media_links.py); every
answer is `Cache-Control: private`. Only names of the shapes Verity stores are opened
(api/uploads.py `served_name`); the decisions are in api/byte_ranges.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
import msgspec
from litestar import HttpMethod, Request, route
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from api.byte_ranges import Answer, Validators, decide
from api.services import services_of
from api.uploads import served_name

CHUNK = 256 * 1024
"""Bytes read and sent at a time: large enough to keep a thread hop per chunk cheap."""

MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".avi": "video/x-msvideo",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
}


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


class FileAnswer:
    """The ASGI response for one opened file: headers from `answer`, then its bytes."""

    def __init__(self, handle: BinaryIO, name: str, v: Validators, answer: Answer, head: bool):
        self.handle = handle
        self.name = name
        self.validators = v
        self.answer = answer
        self.head = head

    def _headers(self) -> list[tuple[bytes, bytes]]:
        a, v = self.answer, self.validators
        headers = {
            "accept-ranges": "bytes",
            "cache-control": "private",  # a signed link or a token's answer: no shared cache
            "etag": v.etag,
            "last-modified": v.last_modified,
        }
        if a.status == 416:
            headers |= {"content-range": f"bytes */{v.size}", "content-type": "application/json"}
        elif a.status == 412:
            headers["content-type"] = "application/json"
        elif a.status != 304:
            headers["content-type"] = media_type(self.name)
            headers["content-length"] = str(a.length)
        if a.status == 206:
            headers["content-range"] = f"bytes {a.first}-{a.last}/{v.size}"
        return [(k.encode(), val.encode()) for k, val in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status = self.answer.status
            body = b""
            if status in (412, 416):
                body = msgspec.json.encode({"detail": self.answer.detail})
            headers = self._headers()
            if body:
                headers.append((b"content-length", str(len(body)).encode()))
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": status,
                "headers": headers,
            }
            await send(start)
            if self.head or status not in (200, 206):
                await send(_last(b"" if self.head else body))
                return
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
                await self._stream(send)
                tg.cancel_scope.cancel()
        finally:
            await anyio.to_thread.run_sync(self.handle.close)

    async def _stream(self, send: Send) -> None:
        left = self.answer.length
        await anyio.to_thread.run_sync(self.handle.seek, self.answer.first)
        while left > 0:
            chunk = await anyio.to_thread.run_sync(self.handle.read, min(CHUNK, left))
            if not chunk:  # cannot happen to a file written once; never send a short body
                raise OSError(f"{self.name} ended {left} bytes early")
            left -= len(chunk)
            body: HTTPResponseBodyEvent = {
                "type": "http.response.body",
                "body": chunk,
                "more_body": left > 0,
            }
            await send(body)
        if self.answer.length == 0:
            await send(_last(b""))


def _last(body: bytes) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": body, "more_body": False}


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _open(path: Path) -> tuple[BinaryIO, Validators] | None:
    """The file and its validators, from the same handle (so they describe the bytes sent)."""
    try:
        handle = path.open("rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    st = os.fstat(handle.fileno())
    return handle, Validators(size=st.st_size, mtime_ns=st.st_mtime_ns)


@route(
    "/uploads/{name:str}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    operation_id="getUploadedFile",
    summary="A stored video (original or rendition), with byte ranges and validators",
    include_in_schema=False,
)
async def uploaded_file(state: State, request: Request[Any, Any, Any], name: str) -> ASGIApp:
    stored = served_name(name)
    if stored is None:
        raise NotFoundException(f"name: no upload is named {name[:64]!r}")
    opened = await anyio.to_thread.run_sync(_open, services_of(state).config.uploads_dir / stored)
    if opened is None:
        raise NotFoundException(f"name: no upload is named {stored!r}")
    handle, validators = opened
    headers = {k.lower(): v for k, v in request.headers.items()}
    answer = decide(request.method, headers, validators)
    return FileAnswer(handle, stored, validators, answer, head=request.method == "HEAD")
