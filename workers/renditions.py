"""Transcoding an upload into its browser-playable rendition with PyAV (FFmpeg's libraries).

H.264 by libx264 (preset `veryfast`, CRF 23, yuv420p, High profile) in MP4 with `+faststart`
(the index first, so a player seeks before the whole file arrives), video only, at a constant
frame rate: frame n of the rendition is frame n of the upload, at n/fps. Why H.264 rather than
VP9: on two cores libx264 `veryfast` encodes 720p at ~85 frames/s against libvpx-vp9's ~60 at
its fastest real-time setting, for a third of the size; every browser plays it (VP9 in MP4 is
missing from older Safari). Its licence (GPL, through PyAV's wheels) binds whoever distributes
a build; a deployment that must avoid it switches to VP9/WebM here.

The file appears under its final name only whole: it is written to a dot-file (never served),
flushed to disk, then hard-linked into place, which fails rather than replaces when a second
worker got there first. A final file that exists is therefore complete and is reused.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import cast
from uuid import UUID, uuid4

import av
import av.container
import av.video

from domain.limits import MAX_FRAME_RATE, RENDITION_MAX_BYTES, RENDITION_MAX_FRAMES
from domain.renditions import RENDITION_CODEC, Rendition, Source, refusal, rendition_filename

Progress = Callable[[int, int], None]
ENCODER = "libx264"
ENCODER_OPTIONS = {"preset": "veryfast", "crf": "23", "profile": "high"}
MUXER_OPTIONS = {"movflags": "+faststart"}
DEFAULT_RATE = Fraction(25)
"""Frame rate used when the container names none."""
SIZE_CHECK_EVERY = 64
"""Frames between checks of the rendition's size on disk."""


class RenditionRefused(Exception):
    """No rendition can (or may) be made; the message is the recorded reason."""


class Halted(Exception):
    """The worker is stopping: the transcode was abandoned and nothing is recorded."""


def _rate(stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0 or rate > MAX_FRAME_RATE:
        return DEFAULT_RATE
    return Fraction(rate)


def _duration(container: av.container.InputContainer, stream: av.video.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def source_of(container: av.container.InputContainer) -> tuple[av.video.VideoStream, Source]:
    if not container.streams.video:
        raise RenditionRefused("the file has no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    return stream, Source(
        codec=ctx.name,
        pixels=ctx.format.name if ctx.format is not None else "",
        width=ctx.width,
        height=ctx.height,
        frames=max(stream.frames, 0),
        fps=float(_rate(stream)),
        duration=_duration(container, stream),
    )


def probe(path: Path) -> Source:
    """The video stream of a file, as its container describes it."""
    try:
        with av.open(str(path)) as container:
            return source_of(container)[1]
    except av.FFmpegError as err:
        raise RenditionRefused(f"the file cannot be opened ({err})") from None


def describe(path: Path, seconds: float) -> Rendition:
    """The facts of a written rendition, read back from the file itself."""
    source = probe(path)
    return Rendition(
        filename=path.name,
        codec=source.codec,
        size=path.stat().st_size,
        duration=source.duration,
        frame_count=source.frames,
        width=source.width,
        height=source.height,
        seconds=seconds,
    )


def transcode(
    path: Path,
    uploads_dir: Path,
    video_id: UUID,
    progress: Progress | None = None,
    halt: threading.Event | None = None,
) -> Rendition:
    """Write (or find) the rendition of the upload at `path`; RenditionRefused says why not."""
    final = uploads_dir / rendition_filename(video_id)
    if final.exists():
        return describe(final, 0.0)
    began = time.perf_counter()
    partial = uploads_dir / f".rendition-{video_id}-{uuid4().hex}.mp4"
    try:
        _encode(path, partial, progress, halt)
        with partial.open("rb") as f:
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another worker's whole copy is as good
            os.link(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    rendition = describe(final, time.perf_counter() - began)
    if rendition.codec != RENDITION_CODEC:
        raise RenditionRefused(f"the rendition came out as {rendition.codec!r}")
    return rendition


def _encode(
    path: Path, target: Path, progress: Progress | None, halt: threading.Event | None
) -> None:
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise RenditionRefused(f"the file cannot be opened ({err})") from None
    with container:
        stream, source = source_of(container)
        if (reason := refusal(source)) is not None:
            raise RenditionRefused(reason)
        stream.thread_type = "AUTO"
        rate = _rate(stream)
        total = source.frames or round(source.duration * float(rate))
        width, height = source.width - source.width % 2, source.height - source.height % 2
        with av.open(str(target), "w", format="mp4", options=MUXER_OPTIONS) as out:
            encoder = cast(
                av.video.VideoStream, out.add_stream(ENCODER, rate=rate, options=ENCODER_OPTIONS)
            )
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.codec_context.time_base = 1 / rate
            decoded, failed = 0, 0
            for frame, bad in _frames(container, stream):
                failed += bad
                if frame is None:
                    continue
                if halt is not None and halt.is_set():
                    raise Halted
                picture = frame.reformat(width=width, height=height, format="yuv420p")
                picture.pts, picture.time_base = decoded, encoder.codec_context.time_base
                out.mux(encoder.encode(picture))
                decoded += 1
                _check_bounds(decoded, target)
                if progress is not None:
                    progress(decoded, max(total, decoded))
            out.mux(encoder.encode(None))
    _check_complete(decoded, failed, source.frames)


def _frames(
    container: av.container.InputContainer, stream: av.video.VideoStream
) -> Iterator[tuple[av.VideoFrame | None, int]]:
    """Decoded frames, and a (None, 1) for each packet that would not decode; a container
    that breaks off ends the stream there."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError:
            return  # a broken container: what came before stands, _check_complete judges
        try:
            frames = packet.decode()
        except av.FFmpegError:
            yield None, 1
            continue
        for frame in frames:
            yield frame, 0


def _check_bounds(decoded: int, target: Path) -> None:
    if decoded > RENDITION_MAX_FRAMES:
        raise RenditionRefused(f"more than {RENDITION_MAX_FRAMES} frames (the limit)")
    if decoded % SIZE_CHECK_EVERY == 0 and target.stat().st_size > RENDITION_MAX_BYTES:
        raise RenditionRefused(f"the rendition grew beyond {RENDITION_MAX_BYTES} bytes")


def _check_complete(decoded: int, failed: int, declared: int) -> None:
    """A copy missing most of the video is no rendition of it."""
    if decoded == 0:
        raise RenditionRefused("no frame could be decoded")
    if failed > decoded:
        raise RenditionRefused(f"{failed} of {failed + decoded} frames could not be decoded")
    if declared and decoded < declared / 2:
        raise RenditionRefused(f"the file ends after {decoded} of its {declared} frames")
