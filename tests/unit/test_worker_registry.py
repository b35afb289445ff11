"""The worker registry: one entry per worker, run alike by `serve` and `verity worker NAME`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from verity import worker_registry
from verity.cli import main
from verity.settings import Settings
from verity.worker_registry import WORKERS, RunningWorkers, Worker, WorkerEntry, serve_workers

pytestmark = pytest.mark.unit


def test_serve_runs_the_workers_its_settings_enable() -> None:
    everything = ["relay", "ingest", "evaluator", "video", "detector"]
    assert serve_workers(Settings()) == everything
    alone = Settings(serve_ingest=False, serve_relay=False, serve_video=False, serve_detector=False)
    assert serve_workers(alone) == ["evaluator"]
    assert serve_workers(Settings(serve_evaluator=False)) == [
        w for w in everything if w != "evaluator"
    ]


def test_the_cli_offers_every_registered_worker_and_no_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    out = capsys.readouterr().out
    for name, entry in WORKERS.items():
        assert f"{name}: {entry.help}" in out
    with pytest.raises(SystemExit):
        main(["worker", "no-such-worker"])
    assert "invalid choice" in capsys.readouterr().err


class Fake:
    def __init__(self, stuck: bool = False) -> None:
        self.stuck = stuck
        self.runs = 0
        self.finished = False

    async def build(self, ctx: Any) -> Worker:
        async def run(stop: asyncio.Event) -> None:
            self.runs += 1
            if self.runs == 1:
                raise RuntimeError("server went away")  # started again by keep_running
            if self.stuck:
                await asyncio.sleep(3600)  # ignores stop: cancelled after the grace period
            await stop.wait()
            self.finished = True

        return Worker(run=run, problem=lambda: "lagging", summary=lambda: f"{self.runs} runs")


async def test_started_workers_restart_after_failure_and_stop_promptly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("verity.waiting.FIRST_DELAY", 0.01)
    monkeypatch.setattr(worker_registry, "STOP_GRACE", 0.2)
    polite, stuck = Fake(), Fake(stuck=True)
    entries = {
        "polite": WorkerEntry("polite", "", polite.build, lambda s: True),
        "stuck": WorkerEntry("stuck", "", stuck.build, lambda s: True),
        "idle": WorkerEntry("idle", "", Fake().build, lambda s: False),
    }
    monkeypatch.setattr(worker_registry, "WORKERS", entries)
    workers = RunningWorkers(asyncio.Event())
    await workers.start(None, ["polite", "stuck"])  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while (polite.runs, stuck.runs) != (2, 2):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    checks = {name: await check() for name, check in workers.health_checks()}
    assert checks == {"polite": "lagging", "stuck": "lagging", "idle": None}
    started = time.monotonic()
    await workers.close()
    assert time.monotonic() - started < 1.0
    assert polite.finished and not stuck.finished
    assert all(task.done() for task in workers.tasks)
