"""Encoded GET responses, reused until the read model they came from moves.

A read model changes only when its projection's position moves, so a response body encoded at
position P stays right for as long as the position is still P. The position is read before the
query, so a stored body is never older than its key. Only used while this process runs the
projection itself; otherwise its position would never move and bodies would go stale.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

from projections.service import ProjectionService

MAX_ENTRIES = 512


class ResponseCache:
    def __init__(self, read_side: ProjectionService) -> None:
        self.read_side = read_side
        self._entries: dict[tuple[str, Hashable], tuple[tuple[int, int], bytes]] = {}

    async def get(
        self, projection: str, key: Hashable, render: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The body for `key`, rendered again only if `projection` moved since it was stored."""
        if not self.read_side.live:
            return await render()
        at = self.read_side.positions().get(projection)
        if at is None:
            return await render()
        position = (at, self.read_side.epoch(projection))  # a rebuild swaps rows at one position
        hit = self._entries.get((projection, key))
        if hit is not None and hit[0] == position:
            return hit[1]
        body = await render()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[(projection, key)] = (position, body)
        return body
