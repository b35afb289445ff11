"""Live messages from a command-line process: a NATS client on an event loop of its own, so
`verity rebuild`'s threads can publish `projection_rebuild_progress` like the API's do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

import nats

from verity.waiting import close_nats

log = logging.getLogger(__name__)

Send = Callable[[str, bytes], None]


@contextlib.contextmanager
def live_publisher(nats_url: str, timeout: float = 3.0) -> Iterator[Send | None]:
    """`send(subject, message)` from any thread, or None when NATS does not answer (the
    command then shows its progress bars only)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="live-publish", daemon=True)
    thread.start()
    try:
        nc = asyncio.run_coroutine_threadsafe(
            nats.connect(nats_url, connect_timeout=timeout, max_reconnect_attempts=0), loop
        ).result(timeout + 1)
    except Exception as err:  # progress over WebSocket is a nicety here, not the work
        log.warning("no live progress messages: NATS at %s: %s", nats_url, err)
        nc = None
    try:
        if nc is None:
            yield None
        else:

            def send(subject: str, message: bytes) -> None:
                asyncio.run_coroutine_threadsafe(nc.publish(subject, message), loop)

            yield send
    finally:
        if nc is not None:
            asyncio.run_coroutine_threadsafe(close_nats(nc), loop).result(timeout + 1)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()
