"""Dashboard (contract D1, D2): counts and accuracy from real evaluations, both casings.

Accuracy here is a percentage (contract decision 3) of TP / (TP + FP + FN), averaged over the
newest recorded evaluation of every evaluated session; 0 with `evaluatedSessions` 0 when
nothing has been evaluated yet. Never a stand-in constant.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

import anyio.to_thread
import msgspec
from litestar import get
from litestar.datastructures import State

from api.services import services_of
from domain.casing import with_snake_twins
from domain.evaluation import FrameCounts, Interval, bootstrap_f1, wilson_interval
from projections import dashboard as read
from projections.evaluations import EvaluationRow, latest_recorded

STABLE_BAND = 1.0
"""Percentage points within which a trend counts as stable."""

Pair = list[float | None]
Direction = Literal["improving", "declining", "stable"]


class DashboardIntervals(msgspec.Struct, kw_only=True):
    """Percent, 95%; snake_case keys, as the dashboard page reads them."""

    precision: Pair
    recall: Pair
    f1_score: Pair
    confidence_level: float
    scale: str


class Trend(msgspec.Struct, kw_only=True, rename="camel"):
    """Newer half of the evaluations against the older half. The page reads `accuracy`,
    `detectionRate` and `performance` as directions; the changes are in percentage points."""

    accuracy: Direction
    detection_rate: Direction
    """Of recall."""
    performance: Direction
    """Of accuracy, as `accuracy`."""
    accuracy_change: float
    detection_rate_change: float
    basis: int


class SignalMetrics(msgspec.Struct, kw_only=True, rename="camel"):
    total_signals: int
    success_rate: float
    avg_processing_time: float
    detail: str


@with_snake_twins
class DashboardStats(msgspec.Struct, kw_only=True, rename="camel"):
    """D1: camelCase and snake_case keys (the dashboard page reads snake_case)."""

    project_count: int
    video_count: int
    test_count: int
    test_session_count: int
    total_detections: int
    detection_event_count: int
    average_accuracy: float
    active_tests: int
    evaluated_sessions: int
    confidence_intervals: DashboardIntervals | None
    trend_analysis: Trend
    signal_processing_metrics: SignalMetrics


class AccuracyPoint(msgspec.Struct, kw_only=True):
    date: str
    accuracy: float
    sessions: int


class ClassCount(msgspec.Struct, kw_only=True):
    type: str
    count: int


class Activity(msgspec.Struct, kw_only=True):
    date: str
    activity: str
    count: int


class DashboardCharts(msgspec.Struct, kw_only=True, rename="camel"):
    accuracy_trend: list[AccuracyPoint]
    detections_by_type: list[ClassCount]
    recent_activity: list[Activity]


def _pct_pair(interval: Interval) -> Pair:
    return [None if v is None else round(100 * v, 2) for v in (interval.low, interval.high)]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _direction(change: float) -> Direction:
    if change > STABLE_BAND:
        return "improving"
    if change < -STABLE_BAND:
        return "declining"
    return "stable"


def _trend(rows: list[EvaluationRow]) -> Trend:
    """Newer half of the evaluations against the older half, in percentage points."""
    half = len(rows) // 2
    old, new = rows[:half], rows[half:]

    def delta(attr: str) -> float:
        a = _mean([v for r in old if (v := getattr(r, attr)) is not None])
        b = _mean([v for r in new if (v := getattr(r, attr)) is not None])
        return 0.0 if a is None or b is None else round(100 * (b - a), 2)

    accuracy, recall = delta("accuracy"), delta("recall")
    return Trend(
        accuracy=_direction(accuracy),
        detection_rate=_direction(recall),
        performance=_direction(accuracy),
        accuracy_change=accuracy,
        detection_rate_change=recall,
        basis=len(rows),
    )


def _intervals(rows: list[EvaluationRow]) -> DashboardIntervals:
    """Pooled over sessions: Wilson on summed counts; F1 bootstrapped with sessions as units.
    CPU-bound: called off the event loop."""
    tp = [r.tp or 0 for r in rows]
    fp = [r.fp or 0 for r in rows]
    fn = [r.fn or 0 for r in rows]
    t, p, n = sum(tp), sum(fp), sum(fn)
    units = FrameCounts(frames=tuple(range(len(rows))), tp=tuple(tp), fp=tuple(fp), fn=tuple(fn))
    return DashboardIntervals(
        precision=_pct_pair(wilson_interval(t, t + p)),
        recall=_pct_pair(wilson_interval(t, t + n)),
        f1_score=_pct_pair(bootstrap_f1(units, n_resamples=1000)),
        confidence_level=0.95,
        scale="percent",
    )


@get(
    "/api/dashboard/stats",
    operation_id="getDashboardStats",
    summary="Dashboard figures (D1), camelCase and snake_case keys",
    description=(
        "`averageAccuracy` is a percentage of TP/(TP+FP+FN), averaged over the newest "
        "recorded evaluation of each evaluated session (0 when none: see `evaluatedSessions`). "
        "`confidence_intervals` (percent, 95%): pooled Wilson for precision/recall, session "
        "bootstrap for F1. `trend_analysis`: newer half of evaluations against older half: "
        "`accuracy`, `detectionRate`, `performance` are improving|declining|stable (beyond "
        "1 point), `accuracyChange` and `detectionRateChange` the differences in percentage "
        "points."
    ),
    tags=["dashboard"],
)
async def dashboard_stats(state: State) -> DashboardStats:
    services = services_of(state)
    async with services.read_pool.connection() as conn:
        c = await read.counts(conn)
        rows = await latest_recorded(conn)
    accuracies = [r.accuracy for r in rows if r.accuracy is not None]
    average = _mean(accuracies)
    intervals = await anyio.to_thread.run_sync(_intervals, rows) if rows else None
    return DashboardStats(
        project_count=c.projects,
        video_count=c.videos,
        test_count=c.sessions,
        test_session_count=c.sessions,
        total_detections=c.detections,
        detection_event_count=c.detections,
        average_accuracy=0.0 if average is None else round(100 * average, 2),
        active_tests=c.active_sessions,
        evaluated_sessions=len(rows),
        confidence_intervals=intervals,
        trend_analysis=_trend(rows),
        signal_processing_metrics=SignalMetrics(
            total_signals=0,
            success_rate=0.0,
            avg_processing_time=0.0,
            detail="no signals have been processed",
        ),
    )


@get(
    "/api/dashboard/charts",
    operation_id="getDashboardCharts",
    summary="Dashboard charts (D2): accuracy per day, detections per class, recent activity",
    tags=["dashboard"],
)
async def dashboard_charts(state: State) -> DashboardCharts:
    services = services_of(state)
    async with services.read_pool.connection() as conn:
        rows = await latest_recorded(conn)
        by_class = await read.detections_by_class(conn)
        activity = await read.daily_activity(conn)
    per_day: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.accuracy is not None and r.recorded_at is not None:
            per_day[r.recorded_at.date().isoformat()].append(r.accuracy)
    return DashboardCharts(
        accuracy_trend=[
            AccuracyPoint(date=day, accuracy=round(100 * sum(v) / len(v), 2), sessions=len(v))
            for day, v in sorted(per_day.items())
        ],
        detections_by_type=[ClassCount(type=k, count=n) for k, n in by_class],
        recent_activity=[Activity(date=d.isoformat(), activity=a, count=n) for d, a, n in activity],
    )
