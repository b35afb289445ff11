"""Streamed video uploads: never held in memory, size-capped, checked by OpenCV before keeping."""

from __future__ import annotations

import contextlib
import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from uuid import UUID

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
from domain.videos import ALLOWED_EXTENSIONS, VideoMetadata


@dataclass(frozen=True)
class ReceivedFile:
    path: Path
    original_name: str
    size: int
    sha256: str
    metadata: VideoMetadata


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


class _Sink:
    """Where one file part's bytes go while they arrive."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.digest = hashlib.sha256()
        self.handle = path.open("wb")

    def write(self, chunk: bytes | bytearray) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise _too_large(self.limit)
        self.digest.update(chunk)
        self.handle.write(chunk)


async def receive_video(
    request: Request[Any, Any, Any], uploads_dir: Path, video_id: UUID, limit: int
) -> ReceivedFile:
    """Stream the multipart `file` field to `uploads_dir/<video_id><ext>` and probe it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise _too_large(limit)
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != "multipart/form-data" or not options.get("boundary"):
        raise InputError(
            "file: expected a multipart/form-data body with a 'file' field", "file", 400
        )
    uploads_dir.mkdir(parents=True, exist_ok=True)
    incoming = uploads_dir / f".incoming-{video_id}"
    sink: _Sink | None = None
    original = ""
    try:
        with PushMultipartParser(options["boundary"], max_segment_count=16) as parser:
            current: MultipartSegment | None = None
            async for chunk in request.stream():
                for item in parser.parse(chunk):
                    if isinstance(item, MultipartSegment):
                        current = item
                        if item.name == "file" and sink is None:
                            original = safe_display_name(item.filename or "")
                            if extension_of(original) not in ALLOWED_EXTENSIONS:
                                raise InputError(
                                    "Invalid file format: file must be one of "
                                    + ", ".join(ALLOWED_EXTENSIONS),
                                    "file",
                                    400,
                                )
                            sink = _Sink(incoming, limit)
                    elif item is None:
                        current = None
                    elif current is not None and current.name == "file" and sink is not None:
                        sink.write(item)
            for _ in parser.parse(b""):
                pass
        if sink is None:
            raise InputError("file: field is required (multipart field named 'file')", "file")
        sink.handle.close()
        if sink.size == 0:
            raise InputError("file: the uploaded file is empty", "file", 400)
        metadata = await anyio.to_thread.run_sync(probe_video, incoming)
        if metadata is None:
            raise InputError(
                "file: not a readable video (OpenCV could not decode a frame)", "file", 400
            )
        final = uploads_dir / f"{video_id}{extension_of(original)}"
        incoming.rename(final)
        return ReceivedFile(final, original, sink.size, sink.digest.hexdigest(), metadata)
    except MultipartError as err:
        raise InputError(f"file: malformed multipart body ({err})", "file", 400) from None
    finally:
        if sink is not None and not sink.handle.closed:
            sink.handle.close()
        with contextlib.suppress(FileNotFoundError):
            incoming.unlink()
