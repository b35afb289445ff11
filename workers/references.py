"""An event the broker will not carry travels as a reference; consumers read it from the store.

A stored event is forever, but NATS refuses a message over the server's `max_payload` (and a
stream may refuse others). The relay then publishes, under the same subject and message id, the
envelope's reference variant (everything but `data`, `"reference": true`,
projections/envelopes.py); a consumer that needs the body (the WebSocket fan-out, the
evaluator) reads the event at `position` from the store and builds the very envelope the relay
would have sent.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec

from commands.application import Verity
from projections.envelopes import stored_envelope

REFERENCE_HEADER = "Verity-Reference"
"""Set on a reference, so a consumer knows without decoding the payload."""


class _Position(msgspec.Struct):
    position: int


_position_decoder = msgspec.json.Decoder(_Position)


async def resolve(app: Verity, position: int) -> bytes:
    """`stored_envelope` off the event loop."""
    return await anyio.to_thread.run_sync(stored_envelope, app, position)


async def body_of(msg: Any, app: Verity) -> bytes:
    """A relayed message's full envelope: its payload, or the stored event its reference names."""
    payload: bytes = msg.data
    if not (msg.headers or {}).get(REFERENCE_HEADER):
        return payload
    return await resolve(app, _position_decoder.decode(payload).position)
