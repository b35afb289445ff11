"""Which event store this database is, and which store feeds an events stream.

Two Verity databases on one NATS with one prefix would otherwise publish into the same stream:
their events interleave, and before message ids carried the store they were even dropped as
each other's duplicates. The relay records its store in the stream's description and refuses
a stream another store feeds, unless told to adopt it.
"""

from __future__ import annotations

import re
from uuid import UUID

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from workers.envelopes import MSG_ID

_DESCRIPTION = "Verity events of store {store}"
_STORE_IN_DESCRIPTION = re.compile(r"\bof store ([0-9a-fA-F-]{36})\b")
_STORE_IN_MSG_ID = re.compile(r"^([0-9a-fA-F-]{36}):\d+$")


class ForeignStream(RuntimeError):
    """The events stream is fed by another store; publishing would mix two histories."""

    def __init__(self, stream: str, owner: UUID, store: UUID) -> None:
        super().__init__(
            f"stream {stream} is fed by event store {owner}, this database is store {store};"
            " not relaying (use another VERITY_NATS_PREFIX, or set VERITY_RELAY_ADOPT_STREAM=true"
            " to take the stream over)"
        )
        self.stream = stream
        self.owner = owner
        self.store = store


def description(store: UUID) -> str:
    return _DESCRIPTION.format(store=store)


def owner_of(stream_description: str | None, newest_msg_id: str | None) -> UUID | None:
    """The feeding store named by a stream's description, else by its newest message's id;
    None where neither names one (a new stream, one fed before ids named their store)."""
    named = _STORE_IN_DESCRIPTION.search(stream_description or "")
    named = named or _STORE_IN_MSG_ID.match(newest_msg_id or "")
    return UUID(named.group(1)) if named else None


async def feeding_store(js: JetStreamContext, stream: str) -> UUID | None:
    """The store that feeds `stream`, if any (None also when there is no such stream)."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return None
    described = owner_of(info.config.description, None)
    if described is not None or not info.state.last_seq:
        return described
    try:
        msg = await js.get_msg(stream, seq=info.state.last_seq)
    except NotFoundError:
        return None
    return owner_of(None, (msg.headers or {}).get(MSG_ID))
