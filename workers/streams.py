"""JetStream streams Verity owns, created or updated idempotently at start."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError


async def ensure_stream(
    js: JetStreamContext, name: str, subjects: list[str], description: str | None = None
) -> None:
    config = StreamConfig(
        name=name,
        subjects=subjects,
        storage=StorageType.FILE,
        duplicate_window=120.0,
        description=description,
    )
    try:
        await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)
