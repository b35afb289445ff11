"""Shared pieces of the end-to-end journeys."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from litestar.testing import TestClient, WebSocketTestSession

from api.app import create_app
from verity.bootstrap import Endpoints, running
from verity.settings import Settings


def write_video(
    path: Path, frames: int = 30, fps: float = 10.0, size: tuple[int, int] = (64, 48)
) -> Path:
    """A small real mp4 (OpenCV's mp4v) with a moving square, so decoders have work to do."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[10:20, i % size[0] : i % size[0] + 10] = (0, 255, 0)
        writer.write(frame)
    writer.release()
    return path


def upload_file(client: TestClient[Any], url: str, path: Path, name: str | None = None) -> Any:
    """POST `path` as the multipart field `file` (V2/V3)."""
    with path.open("rb") as f:
        return client.post(url, files={"file": (name or path.name, f, "video/mp4")})


def wait_for_video(
    client: TestClient[Any], video_id: str, statuses: set[str], timeout: float = 60.0
) -> dict[str, Any]:
    """The video once its `status` is one of `statuses`; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/api/videos/{video_id}").json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"video {video_id} still {body['status']} after {timeout}s")
        time.sleep(0.1)


@contextmanager
def api_client(settings: Settings) -> Iterator[TestClient[Any]]:
    assert settings.database_url is not None and settings.nats_url is not None
    endpoints = Endpoints(settings.database_url, settings.nats_url)
    app = create_app(lambda: running(settings, endpoints), settings.uploads_dir)
    with TestClient(app, timeout=30) as client:
        yield client


def next_event(
    ws: WebSocketTestSession, name: str, timeout: float = 5.0, **data: Any
) -> dict[str, Any]:
    """The next message called `name` whose data has the given items; fails after `timeout`."""
    return next_message(ws, ("event", "data"), name, timeout, **data)


def next_message(
    ws: WebSocketTestSession, keys: tuple[str, str], name: str, timeout: float, **data: Any
) -> dict[str, Any]:
    """The next message whose `keys[0]` is `name` and whose `keys[1]` has the given items
    (`("event", "data")` on /ws, `("type", "payload")` on the pages' sockets)."""
    kind, body = keys
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        message: dict[str, Any] = json.loads(ws.receive_text(timeout=left))
        if message[kind] == name and all(message[body].get(k) == v for k, v in data.items()):
            return message
    raise AssertionError(f"no {name} {data} within {timeout}s")


def verity_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `verity` CLI process needs to use the test's servers and prefix."""
    return {
        **os.environ,
        "VERITY_DATABASE_URL": settings.database_url or "",
        "VERITY_NATS_URL": settings.nats_url or "",
        "VERITY_NATS_PREFIX": settings.nats_prefix,
        "VERITY_DATA_DIR": str(settings.data_dir),
        **extra,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(settings: Settings, log: Path, **env: str) -> Iterator[str]:
    """`verity serve` in a process of its own on a free port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "verity.cli", "serve"],
        env=verity_env(settings, VERITY_PORT=str(port), **env),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
