"""When the ingest consumer counts as stalled: a large backlog and no recent ack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.ingest_consumer import BACKLOG_LIMIT, STALL_AFTER, IngestConsumer, stalled

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def state(pending: int, ack_pending: int = 0, acked_ago: float | None = None) -> IngestConsumer:
    acked = None if acked_ago is None else NOW - timedelta(seconds=acked_ago)
    return IngestConsumer(
        durable="verity-ingest",
        exists=True,
        pending=pending,
        ack_pending=ack_pending,
        last_acked=acked,
    )


def test_a_backlog_being_worked_through_is_healthy() -> None:
    assert stalled(state(50_000, 1000, acked_ago=0.5), NOW) is None


def test_a_small_backlog_is_healthy_however_old_the_last_ack() -> None:
    assert stalled(state(BACKLOG_LIMIT - 1, acked_ago=3600), NOW) is None


def test_a_large_backlog_without_acks_is_a_stall_and_says_so() -> None:
    problem = stalled(state(BACKLOG_LIMIT, 200, acked_ago=STALL_AFTER + 5), NOW)
    assert problem is not None
    assert f"{BACKLOG_LIMIT + 200} frames waiting" in problem
    assert "no ack for 35s" in problem


def test_a_large_backlog_never_acked_is_a_stall() -> None:
    problem = stalled(state(BACKLOG_LIMIT), NOW)
    assert problem is not None
    assert "never acked" in problem
