"""A large bootstrap runs in a worker thread: the API keeps answering while it computes."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import httpx
import numpy as np
import pytest
import uvicorn
from litestar import Litestar, get

import api.validation as validation
from domain.evaluation import FrameCounts

pytestmark = pytest.mark.unit

FRAMES = 10_000


def evaluated(video: UUID) -> validation.Evaluated:
    rng = np.random.default_rng(0)
    frames = FrameCounts(
        frames=tuple(range(FRAMES)),
        tp=tuple(rng.integers(0, 3, FRAMES).tolist()),
        fp=tuple(rng.integers(0, 2, FRAMES).tolist()),
        fn=tuple(rng.integers(0, 2, FRAMES).tolist()),
    )
    session = SimpleNamespace(id=uuid4(), video_id=video)
    row = SimpleNamespace(
        id=uuid4(), tp=10, fp=2, fn=3, precision=0.8, recall=0.7, f1=0.75, accuracy=0.6
    )
    return validation.Evaluated(session=session, row=row, frames=frames)  # type: ignore[arg-type]


@get("/ping", operation_id="ping", sync_to_thread=False)
def ping() -> str:
    return "pong"


async def test_a_large_bootstrap_leaves_the_event_loop_free(monkeypatch: Any) -> None:
    video = uuid4()
    current, baseline = evaluated(video), evaluated(video)

    async def fake_evaluated(*_: Any) -> validation.Evaluated:
        return current

    async def fake_baseline(*_: Any) -> validation.Evaluated:
        return baseline

    monkeypatch.setattr(validation, "services_of", lambda _: None)
    monkeypatch.setattr(validation, "_evaluated", fake_evaluated)
    monkeypatch.setattr(validation, "_baseline", fake_baseline)
    app = Litestar([validation.ValidationController, ping])
    # a real server on this loop: Litestar's test clients answer one request at a time
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            response, took, gaps = await _run_while_pinging(client, str(current.session.id))
    finally:
        server.should_exit = True
        await serving
    assert response.status_code == 200, response.text
    assert response.json()["trend_analysis"]["resamples"] == 4000
    assert took > 0.5, "the bootstrap must take long enough for the check to mean anything"
    assert len(gaps) > 5 and max(gaps) < took / 4, (took, len(gaps), max(gaps, default=0))


async def _run_while_pinging(
    client: httpx.AsyncClient, session: str
) -> tuple[httpx.Response, float, list[float]]:
    """The statistical run, and how long each ping took while it ran."""
    started = time.monotonic()
    run = asyncio.create_task(
        client.post(
            "/api/validation/statistical/run",
            json={"testSessionId": session, "nResamples": 4000},
        )
    )
    gaps: list[float] = []
    while not run.done():
        asked = time.monotonic()
        assert (await client.get("/ping")).text == "pong"
        gaps.append(time.monotonic() - asked)
        await asyncio.sleep(0.01)
    response = await run
    return response, time.monotonic() - started, gaps
