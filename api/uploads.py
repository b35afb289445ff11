"""Streamed video uploads: never held in memory, size-capped, checked by OpenCV before keeping."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO
from uuid import UUID

import anyio
import anyio.to_thread
import cv2
from litestar import Request
from multipart import (  # type: ignore[import-untyped]
    MultipartError,
    MultipartSegment,
    PushMultipartParser,
    parse_options_header,
)

from api.inputs import InputError
from domain.renditions import RENDITION_SUFFIX
from domain.videos import ALLOWED_EXTENSIONS, VideoMetadata


@dataclass(frozen=True)
class ReceivedFile:
    path: Path
    original_name: str
    size: int
    sha256: str
    metadata: VideoMetadata


_EXTENSIONS = "|".join(ext.lstrip(".") for ext in ALLOWED_EXTENSIONS)
_SERVED_NAME = re.compile(
    rf"[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}"
    rf"(?:\.(?:{_EXTENSIONS})|{re.escape(RENDITION_SUFFIX)})"
)
"""The names Verity stores: `<video id><ext>` (an upload) and `<video id>.web.mp4` (its
rendition). Files still being received or transcoded start with a dot and never match."""


def served_name(raw: str) -> str | None:
    """The stored name `raw` asks for, or None for a name no upload or rendition could have
    (NUL, traversal, 256 characters, odd characters, the `.incoming-*` files still being
    received): those are 404 before they reach the file system, whose errors would be 500s."""
    name = PurePosixPath(raw).as_posix().lstrip("/")
    return name if _SERVED_NAME.fullmatch(name) else None


def safe_display_name(raw: str) -> str:
    """The base name a client sent, without directories or control characters (display only)."""
    name = PureWindowsPath(PurePosixPath(raw).name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or "video"


def extension_of(name: str) -> str:
    return PurePosixPath(name.lower()).suffix


def probe_video(path: Path) -> VideoMetadata | None:
    """Open the file with OpenCV and read one frame; None when it is not a decodable video."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return None
        ok, _ = capture.read()
        if not ok:
            return None
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC) or 0)
        codec = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ")
        return VideoMetadata(
            fps=fps,
            frame_count=frames,
            duration=frames / fps if fps > 0 else 0.0,
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            codec=codec if codec.isprintable() else "",
        )
    finally:
        capture.release()


def _too_large(limit: int) -> InputError:
    return InputError(
        f"file: upload exceeds the size limit of {limit} bytes", "file", status_code=413
    )


class _FileField:
    """Collects the multipart field named `file` into `path` while the body streams in."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.digest = hashlib.sha256()
        self.original = ""
        self.handle: BinaryIO | None = None
        self._in_file = False

    def feed(self, item: MultipartSegment | bytes | bytearray | None) -> None:
        if isinstance(item, MultipartSegment):
            self._in_file = item.name == "file" and self.handle is None
            if self._in_file:
                self._open(item.filename or "")
        elif item is None:
            self._in_file = False
        elif self._in_file and self.handle is not None:
            self.size += len(item)
            if self.size > self.limit:
                raise _too_large(self.limit)
            self.digest.update(item)
            self.handle.write(item)

    def _open(self, client_name: str) -> None:
        self.original = safe_display_name(client_name)
        if extension_of(self.original) not in ALLOWED_EXTENSIONS:
            allowed = ", ".join(ALLOWED_EXTENSIONS)
            raise InputError(f"Invalid file format: file must be one of {allowed}", "file", 400)
        self.handle = self.path.open("wb")

    def close(self) -> None:
        if self.handle is not None and not self.handle.closed:
            self.handle.close()


def multipart_boundary(request: Request[Any, Any, Any], limit: int) -> str:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise _too_large(limit)
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get("boundary")
    if content_type != "multipart/form-data" or not boundary:
        raise InputError(
            "file: expected a multipart/form-data body with a 'file' field", "file", 400
        )
    return str(boundary)


async def receive_video(
    request: Request[Any, Any, Any], uploads_dir: Path, video_id: UUID, limit: int
) -> ReceivedFile:
    """Stream the multipart `file` field to `uploads_dir/<video_id><ext>` and probe it."""
    boundary = multipart_boundary(request, limit)
    await anyio.Path(uploads_dir).mkdir(parents=True, exist_ok=True)
    field = _FileField(uploads_dir / f".incoming-{video_id}", limit)
    try:
        with PushMultipartParser(boundary, max_segment_count=16) as parser:
            async for chunk in request.stream():
                for item in parser.parse(chunk):
                    field.feed(item)
            for _ in parser.parse(b""):
                pass
        field.close()
        return await _keep_if_video(
            field, uploads_dir / f"{video_id}{extension_of(field.original)}"
        )
    except MultipartError as err:
        raise InputError(f"file: malformed multipart body ({err})", "file", 400) from None
    finally:
        field.close()
        await anyio.Path(field.path).unlink(missing_ok=True)


async def _keep_if_video(field: _FileField, final: Path) -> ReceivedFile:
    if field.handle is None:
        raise InputError("file: field is required (multipart field named 'file')", "file")
    if field.size == 0:
        raise InputError("file: the uploaded file is empty", "file", 400)
    metadata = await anyio.to_thread.run_sync(probe_video, field.path)
    if metadata is None:
        raise InputError(
            "file: not a readable video (OpenCV could not decode a frame)", "file", 400
        )
    await anyio.Path(field.path).rename(final)
    return ReceivedFile(final, field.original, field.size, field.digest.hexdigest(), metadata)
