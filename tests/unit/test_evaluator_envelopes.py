"""The evaluator reads the relay's session envelopes (a completion is evaluated at once, not
only by the periodic sweep)."""

from __future__ import annotations

from typing import Any, cast
from uuid import uuid4

import pytest

from projections.envelopes import Envelope, encode
from workers.evaluator import Evaluator

pytestmark = pytest.mark.unit


def _session_event(kind: str, session_id: str) -> bytes:
    return encode(
        Envelope(
            position=42,
            id=str(uuid4()),
            aggregate="test_session",
            aggregate_id=session_id,
            version=3,
            type=kind,
            occurred_at="2026-12-06T10:00:00+00:00",
            actor="anonymous",
            correlation_id=str(uuid4()),
            causation_id=None,
            data={"reason": "", "completedAt": "2026-12-06T10:00:00+00:00"},
        )
    )


def test_a_completed_session_envelope_is_noted_for_evaluation() -> None:
    evaluator = Evaluator(cast(Any, None), cast(Any, None), cast(Any, None), "verity.live")
    session = uuid4()
    evaluator.on_session(_session_event("completed", str(session)))
    assert session in evaluator.completed
    position, meta = evaluator.completed[session]
    assert position == 42
    assert meta.correlation_id is not None
