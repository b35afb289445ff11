"""Evaluations on PostgreSQL: stored, projected in small batches, equal to one rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from commands.application import Verity
from commands.criteria import ConfigureCriteria, configure_criteria
from commands.evaluations import (
    EvaluateSession,
    GroundTruthChoice,
    RerunEvaluation,
    evaluate_session,
    rerun_evaluation,
)
from domain.criteria import CriteriaValues
from tests.unit.test_evaluations_commands import scene
from verity.bootstrap import open_application, projection_runners

pytestmark = pytest.mark.integration
OURS = ("criteria_v1", "evaluations_v1")
TABLES = {
    "rm_project_criteria": "project_id",
    "rm_evaluations": "id",
    "rm_evaluation_comparisons": "evaluation_id, seq",
}


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=2)
    yield application
    application.close()


@pytest.fixture(scope="module")
def pool(database_url: str) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(database_url, min_size=1, max_size=2) as p:
        yield p


def snapshot(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(database_url) as conn:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall()
            for t, key in TABLES.items()
        }


def test_evaluations_project_incrementally_as_a_rebuild_would(
    app: Verity, pool: ConnectionPool[Any], database_url: str
) -> None:
    src, session, anns = scene(app)
    configure_criteria(
        ConfigureCriteria(project_id=session.project_id, values=CriteriaValues(min_recall=0.2)),
        app,
    )
    runners = [r for r in projection_runners(app, pool, 2) if r.name in OURS]
    first = evaluate_session(EvaluateSession(session_id=session.id), app, src)
    for runner in runners:
        runner.catch_up()
    src.edit(anns[0], deleted=True)
    rerun_evaluation(
        RerunEvaluation(evaluation_id=first.evaluation_id, ground_truth=GroundTruthChoice.LATEST),
        app,
        src,
    )
    for runner in runners:
        runner.catch_up()
    live = snapshot(database_url)
    evaluations = {row[0]: row for row in live["rm_evaluations"]}
    assert first.evaluation_id in evaluations
    assert len(live["rm_evaluation_comparisons"]) >= 8
    criteria = {row[0]: row for row in live["rm_project_criteria"]}
    assert criteria[session.project_id][3] == 0.2  # min_recall

    for runner in runners:
        runner.reset()
        runner.catch_up()
    assert snapshot(database_url) == live
