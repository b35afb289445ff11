"""Whole-tree checks started when the suite is collected, collected by their tests later.

mypy over the tree takes most of a minute of one core. Started at collection with the lowest
CPU priority, it runs in the gaps while the suite waits on servers and subprocesses, and its
test only collects the result; a run that does not select the test never starts it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600
MYPY = [sys.executable, "-m", "mypy"]


class _Job:
    def __init__(self, argv: list[str]) -> None:
        self.output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in result()
        nice = shutil.which("nice")
        prefix = [nice, "-n", "19"] if nice else []
        self.process = subprocess.Popen(
            [*prefix, *argv], cwd=REPO, stdout=self.output, stderr=subprocess.STDOUT
        )

    def result(self) -> tuple[int, str]:
        code = self.process.wait(timeout=TIMEOUT_S)
        self.output.seek(0)
        text = self.output.read().decode(errors="replace")
        self.output.close()
        return code, text


_jobs: dict[tuple[str, ...], _Job] = {}


def start(argv: list[str]) -> None:
    """Begin `argv` in the background (once)."""
    if tuple(argv) not in _jobs:
        _jobs[tuple(argv)] = _Job(argv)


def result(argv: list[str]) -> tuple[int, str]:
    """Exit code and output of `argv`: the background run's if one was started, else run now."""
    start(argv)
    return _jobs.pop(tuple(argv)).result()
