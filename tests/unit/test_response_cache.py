"""The GET cache re-renders exactly when the read model it came from moves."""

from __future__ import annotations

from typing import Any

import pytest

from api.cache import ResponseCache

pytestmark = pytest.mark.unit


class FakeReadSide:
    def __init__(self) -> None:
        self.live = True
        self.position = 5
        self.swaps = 0

    def positions(self) -> dict[str, int]:
        return {"projects_v1": self.position}

    def epoch(self, name: str) -> int:
        return self.swaps


def counting_render(calls: list[int]) -> Any:
    async def render() -> bytes:
        calls.append(1)
        return f"body{len(calls)}".encode()

    return render


async def test_body_is_reused_while_the_position_stands_still() -> None:
    side = FakeReadSide()
    cache = ResponseCache(side)  # type: ignore[arg-type]
    calls: list[int] = []
    first = await cache.get("projects_v1", (0, 100), counting_render(calls))
    again = await cache.get("projects_v1", (0, 100), counting_render(calls))
    assert (first, again, len(calls)) == (b"body1", b"body1", 1)
    other_key = await cache.get("projects_v1", (0, 10), counting_render(calls))
    assert other_key == b"body2"


async def test_a_moved_position_renders_again() -> None:
    side = FakeReadSide()
    cache = ResponseCache(side)  # type: ignore[arg-type]
    calls: list[int] = []
    await cache.get("projects_v1", "k", counting_render(calls))
    side.position = 6
    assert await cache.get("projects_v1", "k", counting_render(calls)) == b"body2"


async def test_nothing_is_cached_when_this_process_does_not_project() -> None:
    side = FakeReadSide()
    side.live = False
    cache = ResponseCache(side)  # type: ignore[arg-type]
    calls: list[int] = []
    await cache.get("projects_v1", "k", counting_render(calls))
    await cache.get("projects_v1", "k", counting_render(calls))
    await cache.get("unknown_projection", "k", counting_render(calls))
    assert len(calls) == 3


async def test_a_rebuild_swapped_in_at_the_same_position_renders_again() -> None:
    side = FakeReadSide()
    cache = ResponseCache(side)  # type: ignore[arg-type]
    calls: list[int] = []
    assert await cache.get("projects_v1", "k", counting_render(calls)) == b"body1"
    side.swaps += 1  # the blue-green swap: new rows, same position
    assert await cache.get("projects_v1", "k", counting_render(calls)) == b"body2"
    assert await cache.get("projects_v1", "k", counting_render(calls)) == b"body2"
