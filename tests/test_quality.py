"""ruff and mypy are part of the test command, so a style or type regression fails CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.background_checks import MYPY
from tests.background_checks import result as background_result

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.unit


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_lint_and_format() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    lint = _run(ruff, "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run(ruff, "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict() -> None:
    code, output = background_result(MYPY)
    assert code == 0, output
