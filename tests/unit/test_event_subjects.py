"""Relayed events' subjects, and which of them the WebSocket fan-out subscribes to."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from domain.test_sessions import TestSession
from projections.envelopes import aggregate_names, names_of
from projections.live_messages import NAMES, SILENT

pytestmark = pytest.mark.unit

AGGREGATES = [
    "account",
    "annotation",
    "annotation_import",
    "annotation_session",
    "api_token",
    "detection_run",
    "detector_model",
    "device",
    "device_frame",
    "evaluation",
    "frame_batch",
    "project",
    "project_criteria",
    "test_session",
    "video",
]


def test_every_aggregate_is_listed_even_where_no_domain_module_was_imported() -> None:
    """In a fresh interpreter only projections.envelopes is imported: the listing must import
    the domain modules itself, or a process would miss aggregates it never loaded."""
    code = (
        "import json; from projections.envelopes import aggregate_names as a;"
        " print(json.dumps(a()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == AGGREGATES
    # here other tests may have defined aggregates of their own besides the domain's
    assert set(AGGREGATES) <= set(aggregate_names())


def test_the_fan_out_hears_every_room_event_and_no_frame() -> None:
    heard = set(aggregate_names()) - SILENT
    assert {aggregate for aggregate, _ in NAMES} <= heard
    assert {"test_session", "project", "video"} <= heard
    assert not {"device_frame", "frame_batch"} & heard


def test_an_event_subject_starts_with_its_aggregate_token() -> None:
    event = TestSession.Started  # the class is enough: names come from its qualified name
    assert names_of(object.__new__(event)) == ("test_session", "started")
