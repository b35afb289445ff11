"""The dashboard page's figures: trend directions as words, percentages to two decimals."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from api.dashboard import _intervals, _trend

pytestmark = pytest.mark.unit


def rows(*accuracy_recall: tuple[float, float]) -> list[Any]:
    """Evaluations, oldest first, with the counts the intervals pool."""
    return [SimpleNamespace(accuracy=a, recall=r, tp=7, fp=2, fn=3) for a, r in accuracy_recall]


def test_the_trend_names_its_direction_and_keeps_the_change_in_points() -> None:
    trend = _trend(rows((0.50, 0.90), (0.52, 0.80), (0.61234, 0.805), (0.65, 0.80)))
    assert (trend.accuracy, trend.performance, trend.detection_rate) == (
        "improving",
        "improving",
        "declining",
    )
    assert trend.accuracy_change == 12.12  # 0.63117 - 0.51, in points to two decimals
    assert trend.detection_rate_change == -4.75  # 0.8025 - 0.85
    steady = _trend(rows((0.5, 0.5), (0.505, 0.495)))
    assert (steady.accuracy, steady.detection_rate, steady.accuracy_change) == (
        "stable",
        "stable",
        0.5,
    )
    assert _trend(rows((0.7, 0.7))).accuracy == "stable"  # one evaluation: nothing to compare


def test_interval_percentages_have_two_decimals_at_most() -> None:
    intervals = _intervals(rows((0.5, 0.7), (0.6, 0.7), (0.55, 0.7)))
    shown = [*intervals.precision, *intervals.recall, *intervals.f1_score]
    assert all(v is not None and 0 <= v <= 100 and round(v, 2) == v for v in shown), shown
    assert any(round(v, 1) != v for v in shown if v is not None), shown
