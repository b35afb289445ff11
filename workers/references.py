"""An event the broker will not carry travels as a reference; consumers read it from the store.

A stored event is forever, but NATS refuses a message over the server's `max_payload` (and a
stream may refuse others). The relay then publishes, under the same subject and message id, a
small envelope with everything but `data` and `"reference": true`; a consumer that needs the
body (the WebSocket fan-out, the evaluator) reads the event at `position` from the store and
builds the very envelope the relay would have sent.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec

from commands.application import Verity
from workers.envelopes import Envelope, encode, envelope

REFERENCE_HEADER = "Verity-Reference"
"""Set on a reference, so a consumer knows without decoding the payload."""


class Reference(msgspec.Struct, kw_only=True, rename="camel"):
    position: int
    id: str
    aggregate: str
    aggregate_id: str
    version: int
    type: str
    occurred_at: str
    actor: str
    correlation_id: str | None
    causation_id: str | None
    reference: bool = True
    truncated: bool = True
    """`data` is left out; read the event at `position` from the store."""
    size: int
    """Bytes of the full envelope."""
    reason: str


class _Position(msgspec.Struct):
    position: int


_position_decoder = msgspec.json.Decoder(_Position)


def reference_of(env: Envelope, size: int, reason: str) -> bytes:
    fields = msgspec.structs.asdict(env)
    del fields["data"]
    return encode_reference(Reference(**fields, size=size, reason=reason))


def encode_reference(ref: Reference) -> bytes:
    return msgspec.json.encode(ref)


class NotStored(LookupError):
    """A reference names a position the store does not hold (another store's message)."""


def stored_envelope(app: Verity, position: int) -> bytes:
    """The full envelope of the event stored at `position`, exactly as the relay builds it."""
    found = app.recorder.select_notifications(start=position, limit=1)
    if not found or found[0].id != position:
        msg = f"no stored event at position {position}"
        raise NotStored(msg)
    return encode(envelope(app.mapper.to_domain_event(found[0]), position))


async def resolve(app: Verity, position: int) -> bytes:
    """`stored_envelope` off the event loop."""
    return await anyio.to_thread.run_sync(stored_envelope, app, position)


async def body_of(msg: Any, app: Verity) -> bytes:
    """A relayed message's full envelope: its payload, or the stored event its reference names."""
    payload: bytes = msg.data
    if not (msg.headers or {}).get(REFERENCE_HEADER):
        return payload
    return await resolve(app, _position_decoder.decode(payload).position)
