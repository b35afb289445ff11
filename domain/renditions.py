"""Browser-playable renditions: which uploads need one, what one is, and what is too big.

Browsers play H.264, VP8/VP9 and AV1 in MP4 or WebM; Chromium plays neither MPEG-4 Part 2
(`mp4v`, what OpenCV writes) nor MJPEG, and AVI, MOV and Matroska are not containers every
browser opens. Such an upload gets a rendition: H.264 (yuv420p, High profile, `+faststart`)
in MP4, at a constant frame rate so frame n stays at n/fps as Verity's annotations assume.
"""

from __future__ import annotations

from uuid import UUID

import msgspec

from domain.limits import (
    RENDITION_MAX_FRAMES,
    RENDITION_MAX_PIXELS,
    RENDITION_MAX_SECONDS,
    RENDITION_MAX_SIDE,
)

RENDITION_SUFFIX = ".web.mp4"
RENDITION_CODEC = "h264"
PLAYABLE_CODECS = frozenset({"h264", "vp8", "vp9", "av1"})
"""FFmpeg's names of the video codecs every current browser decodes."""
PLAYABLE_CONTAINERS = frozenset({".mp4", ".webm"})
PLAYABLE_PIXELS = frozenset({"yuv420p", "yuvj420p"})
"""8-bit 4:2:0: what every browser decodes (4:4:4 and 10-bit H.264 mostly are not)."""


def rendition_filename(video_id: UUID) -> str:
    return f"{video_id}{RENDITION_SUFFIX}"


def needs_rendition(extension: str, codec: str, pixels: str = "yuv420p") -> bool:
    """An upload whose container, video codec or pixel format (FFmpeg's names) a browser may
    not play."""
    return (
        extension.lower() not in PLAYABLE_CONTAINERS
        or codec.lower() not in PLAYABLE_CODECS
        or pixels.lower() not in PLAYABLE_PIXELS
    )


class Source(msgspec.Struct, frozen=True, kw_only=True):
    """What the container says about the video stream to be transcoded."""

    codec: str
    pixels: str = ""
    """Pixel format (FFmpeg's name), empty when unknown."""
    width: int
    height: int
    frames: int
    """Declared frame count (0 when the container does not say)."""
    fps: float
    duration: float


def refusal(source: Source) -> str | None:
    """Why a rendition of `source` would be absurd (the disk or hours of CPU), or None."""
    w, h = source.width, source.height
    if min(w, h) < 2:
        return f"{w}x{h} is too small to encode"
    if max(w, h) > RENDITION_MAX_SIDE or w * h > RENDITION_MAX_PIXELS:
        return f"{w}x{h} exceeds the rendition limit ({RENDITION_MAX_SIDE} px a side, 4K)"
    if source.duration > RENDITION_MAX_SECONDS:
        return f"{source.duration:.0f} s exceeds the rendition limit of {RENDITION_MAX_SECONDS} s"
    if source.frames > RENDITION_MAX_FRAMES:
        return f"{source.frames} frames exceed the rendition limit of {RENDITION_MAX_FRAMES}"
    return None


class Rendition(msgspec.Struct, frozen=True, kw_only=True):
    """A finished rendition, as probed after it was written."""

    filename: str
    codec: str
    size: int
    duration: float
    frame_count: int
    width: int
    height: int
    seconds: float
    """Wall time the transcode took."""
