"""The event log's hash chain head, for auditors: note it down (or compare it with a signed
export's) and any later change to the history up to it shows in `verity audit verify`."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.datastructures import State

from api.services import services_of
from formats.event_chain import ALGORITHM, RECORD_LAYOUT
from storage.event_chain import read_chain_head


class ChainHeadDto(msgspec.Struct, kw_only=True, rename="camel"):
    position: int | None
    """The newest stored event's position; null while the log is empty."""
    hash: str
    """Its record hash (hex); the genesis hash (64 zeros) while the log is empty."""
    count: int
    """Events in the log (positions may have gaps: a rolled-back write spends its numbers)."""
    algorithm: str
    record: str
    """What each event's hash covers, after the previous hash (formats/event_chain.py)."""


class AuditChainController(Controller):
    path = "/api/audit/chain"
    tags = ["audit"]

    @get("/head", operation_id="auditChainHead", summary="The newest position and its hash")
    async def head(self, state: State) -> ChainHeadDto:
        async with services_of(state).read_pool.connection() as conn:
            found = await read_chain_head(conn)
        return ChainHeadDto(
            position=found.position,
            hash=found.hash.hex(),
            count=found.count,
            algorithm=ALGORITHM,
            record=RECORD_LAYOUT,
        )
