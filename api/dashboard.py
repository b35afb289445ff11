"""Dashboard (contract D1, D2): counts and accuracy from real evaluations, both casings.

Accuracy here is a percentage (contract decision 3) of TP / (TP + FP + FN), averaged over the
newest recorded evaluation of every evaluated session; 0 with `evaluatedSessions` 0 when
nothing has been evaluated yet. Never a stand-in constant.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from litestar import get
from litestar.datastructures import State

from api.casing import both_casings
from api.services import services_of
from domain.evaluation import FrameCounts, Interval, bootstrap_f1, wilson_interval
from projections import dashboard as read
from projections.evaluations import EvaluationRow, latest_recorded

STABLE_BAND = 1.0
"""Percentage points within which a trend counts as stable."""


def _pct_pair(interval: Interval) -> list[float | None]:
    return [None if v is None else round(100 * v, 4) for v in (interval.low, interval.high)]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _trend(rows: list[EvaluationRow]) -> dict[str, Any]:
    """Newer half of the evaluations against the older half, in percentage points."""
    if len(rows) < 2:
        return {"accuracy": 0.0, "detectionRate": 0.0, "performance": "stable", "basis": len(rows)}
    half = len(rows) // 2
    old, new = rows[:half], rows[half:]

    def delta(attr: str) -> float:
        a = _mean([v for r in old if (v := getattr(r, attr)) is not None])
        b = _mean([v for r in new if (v := getattr(r, attr)) is not None])
        return 0.0 if a is None or b is None else round(100 * (b - a), 4)

    acc = delta("accuracy")
    performance = "stable"
    if acc > STABLE_BAND:
        performance = "improving"
    elif acc < -STABLE_BAND:
        performance = "declining"
    return {
        "accuracy": acc,
        "detectionRate": delta("recall"),
        "performance": performance,
        "basis": len(rows),
    }


def _intervals(rows: list[EvaluationRow]) -> dict[str, Any]:
    """Pooled over sessions: Wilson on summed counts; F1 bootstrapped with sessions as units."""
    tp = [r.tp or 0 for r in rows]
    fp = [r.fp or 0 for r in rows]
    fn = [r.fn or 0 for r in rows]
    t, p, n = sum(tp), sum(fp), sum(fn)
    units = FrameCounts(frames=tuple(range(len(rows))), tp=tuple(tp), fp=tuple(fp), fn=tuple(fn))
    return {
        "precision": _pct_pair(wilson_interval(t, t + p)),
        "recall": _pct_pair(wilson_interval(t, t + n)),
        "f1_score": _pct_pair(bootstrap_f1(units, n_resamples=1000)),
        "confidence_level": 0.95,
        "scale": "percent",
    }


@get(
    "/api/dashboard/stats",
    operation_id="getDashboardStats",
    summary="Dashboard figures (D1), camelCase and snake_case keys",
    description=(
        "`averageAccuracy` is a percentage of TP/(TP+FP+FN), averaged over the newest "
        "recorded evaluation of each evaluated session (0 when none: see `evaluatedSessions`). "
        "`confidence_intervals` (percent, 95%): pooled Wilson for precision/recall, session "
        "bootstrap for F1. `trend_analysis`: newer half of evaluations minus older half, in "
        "percentage points."
    ),
    tags=["dashboard"],
)
async def dashboard_stats(state: State) -> dict[str, Any]:
    services = services_of(state)
    async with services.read_pool.connection() as conn:
        c = await read.counts(conn)
        rows = await latest_recorded(conn)
    accuracies = [r.accuracy for r in rows if r.accuracy is not None]
    average = _mean(accuracies)
    body = {
        "project_count": c.projects,
        "video_count": c.videos,
        "test_count": c.sessions,
        "test_session_count": c.sessions,
        "total_detections": c.detections,
        "detection_event_count": c.detections,
        "average_accuracy": 0.0 if average is None else round(100 * average, 4),
        "active_tests": c.active_sessions,
        "evaluated_sessions": len(rows),
        "confidence_intervals": _intervals(rows) if rows else None,
        "trend_analysis": _trend(rows),
        "signal_processing_metrics": {
            "totalSignals": 0,
            "successRate": 0.0,
            "avgProcessingTime": 0.0,
            "detail": "no signals have been processed",
        },
    }
    return both_casings(body)


@get(
    "/api/dashboard/charts",
    operation_id="getDashboardCharts",
    summary="Dashboard charts (D2): accuracy per day, detections per class, recent activity",
    tags=["dashboard"],
)
async def dashboard_charts(state: State) -> dict[str, Any]:
    services = services_of(state)
    async with services.read_pool.connection() as conn:
        rows = await latest_recorded(conn)
        by_class = await read.detections_by_class(conn)
        activity = await read.daily_activity(conn)
    per_day: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.accuracy is not None and r.recorded_at is not None:
            per_day[r.recorded_at.date().isoformat()].append(r.accuracy)
    return {
        "accuracyTrend": [
            {"date": day, "accuracy": round(100 * sum(v) / len(v), 4), "sessions": len(v)}
            for day, v in sorted(per_day.items())
        ],
        "detectionsByType": [{"type": k, "count": n} for k, n in by_class],
        "recentActivity": [
            {"date": d.isoformat(), "activity": a, "count": n} for d, a, n in activity
        ],
    }
