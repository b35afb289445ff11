"""JetStream streams Verity owns, created or updated idempotently at start."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError


async def ensure_stream(js: JetStreamContext, name: str, subjects: list[str]) -> None:
    config = StreamConfig(
        name=name, subjects=subjects, storage=StorageType.FILE, duplicate_window=120.0
    )
    try:
        await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


async def last_msg_id(js: JetStreamContext, stream: str) -> str | None:
    """The Nats-Msg-Id header of the stream's newest message, if any."""
    info = await js.stream_info(stream)
    if not info.state.last_seq:
        return None
    try:
        msg = await js.get_msg(stream, seq=info.state.last_seq)
    except NotFoundError:
        return None
    return (msg.headers or {}).get("Nats-Msg-Id")
