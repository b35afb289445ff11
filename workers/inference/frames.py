"""Video frames decoded in a reader thread, batched, while the caller runs inference.

OpenCV releases the GIL while it decodes, so the thread overlaps the model's work; a bounded
queue keeps at most `queue_batches` batches decoded ahead. A read that fails before the frame
count the container declares is a decode failure (truncated or corrupt file), not the end.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2

from workers.inference.api import FramePacket, VideoDecodeError

_PUT_WAIT = 0.1
"""Seconds the reader waits on a full queue before it checks whether the consumer left."""
_END = object()


def _open(video: Path) -> Any:
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        capture.release()
        raise VideoDecodeError(0, f"cannot open {video.name} as a video")
    return capture


def video_frame_count(video: Path) -> int:
    """The frame count the container declares."""
    capture = _open(video)
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        capture.release()


def read_frames(
    video: Path, *, start: int = 0, stride: int = 1, batch_size: int = 8, queue_batches: int = 4
) -> Iterator[list[FramePacket]]:
    """Batches of frames start, start + stride, ... in order; the last batch may be short.

    Raises VideoDecodeError(frame_number) where decoding fails before the declared end, after
    yielding every frame read before it.
    Closing the iterator early stops the reader thread.
    """
    if start < 0 or stride < 1 or batch_size < 1 or queue_batches < 1:
        raise ValueError("start >= 0, stride >= 1, batch_size >= 1 and queue_batches >= 1")
    capture = _open(video)  # opened here, so a file that is no video fails at the first next()
    batches: queue.Queue[Any] = queue.Queue(maxsize=queue_batches)
    stop = threading.Event()
    reader = threading.Thread(
        target=_read, args=(capture, start, stride, batch_size, batches, stop),
        name=f"frames-{video.name}", daemon=True,
    )  # fmt: skip
    reader.start()
    try:
        while (item := batches.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():
            try:
                batches.get(timeout=_PUT_WAIT)
            except queue.Empty:
                continue
        reader.join()


def _read(
    capture: Any,
    start: int,
    stride: int,
    batch_size: int,
    batches: queue.Queue[Any],
    stop: threading.Event,
) -> None:
    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                batches.put(item, timeout=_PUT_WAIT)
            except queue.Full:
                continue
            return True
        return False

    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        number = _seek(capture, start)
        batch: list[FramePacket] = []
        while not stop.is_set() and (total <= 0 or number < total):
            wanted = (number - start) % stride == 0
            if wanted:
                ok, image = capture.read()
            else:
                ok, image = capture.grab(), None
            if not ok:
                if total > 0:  # the frames read before the failure still go to the consumer
                    if batch and not put(batch):
                        return
                    raise VideoDecodeError(number)
                break
            if wanted:
                timestamp = number / fps if fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
                batch.append(FramePacket(number, timestamp, image))
                if len(batch) == batch_size:
                    if not put(batch):
                        return
                    batch = []
            number += 1
        if batch and not put(batch):
            return
        put(_END)
    except BaseException as error:  # handed to the consumer, who raises it
        put(error)
    finally:
        capture.release()


def _seek(capture: Any, start: int) -> int:
    """Positions the capture at frame `start` (seek, else read forward); returns `start`."""
    if start == 0:
        return 0
    if (
        capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        and int(capture.get(cv2.CAP_PROP_POS_FRAMES)) == start
    ):
        return start
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    for number in range(start):
        if not capture.grab():
            raise VideoDecodeError(number)
    return start
