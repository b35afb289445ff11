"""Hypothesis over every HTTP command DTO: a hostile body is refused, or it projects (issue 14).

An accepted write that a read model cannot hold would be stored forever and jam the read side.
So for every generated body: no 5xx; a refusal is a 4xx with a `detail`; an acceptance is
answered after the read side caught up (never "Stored at position ..." 202) and /health stays
healthy. `VERITY_FUZZ_EXAMPLES` raises the examples per route (default 6).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from api.annotation_dtos import AnnotationIn, AnnotationPatch, RevertIn, ValidateIn
from api.annotation_sessions import SessionIn, SessionPatch
from api.criteria import CriteriaIn
from api.detections import DetectionEventIn
from api.projects import ProjectIn, ProjectPatch
from api.results import EvaluateIn
from api.session_lifecycle import FailIn
from api.test_sessions import ExecuteTestIn, TestSessionIn
from api.validation import BatchIn, StatisticalRunIn
from api.videos import LinkIn
from tests.conftest import delete_streams, settings_for
from tests.e2e.fuzz_values import body_of, encode
from tests.e2e.helpers import api_client, write_video

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("VERITY_FUZZ_EXAMPLES", "6"))
WORDS = ["pedestrian", "cyclist", "Front-facing VRU", "GPIO", "active", "in_progress", "cam-1"]
BOX = {"x": 10, "y": 10, "width": 40, "height": 80}

ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/api/projects", ProjectIn),
    ("PUT", "/api/projects/{project}", ProjectPatch),
    ("POST", "/api/projects/{project}/videos/link", LinkIn),
    ("POST", "/api/projects/{project}/criteria/configure", CriteriaIn),
    ("POST", "/api/videos/{video}/annotations", AnnotationIn),
    ("POST", "/api/videos/{video}/annotations/bulk", list[AnnotationIn]),
    ("PUT", "/api/annotations/{annotation}", AnnotationPatch),
    ("PATCH", "/api/annotations/{annotation}/validate", ValidateIn),
    ("POST", "/api/annotations/{annotation}/revert", RevertIn),
    ("POST", "/api/annotation-sessions", SessionIn),
    ("PUT", "/api/annotation-sessions/{marking}", SessionPatch),
    ("POST", "/api/test-sessions", TestSessionIn),
    ("POST", "/api/projects/{project}/execute-test", ExecuteTestIn),
    ("POST", "/api/test-sessions/{session}/fail", FailIn),
    ("POST", "/api/detection-events", DetectionEventIn),
    ("POST", "/api/test-sessions/{session}/evaluate", EvaluateIn),
    ("POST", "/api/validation/statistical/run", StatisticalRunIn),
    ("POST", "/api/results/batch-analysis", BatchIn),
]


@pytest.fixture(scope="module")
def client(
    database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient[Any]]:
    prefix = f"t{uuid4().hex[:12]}"
    settings_ = settings_for(database_url, nats_url, tmp_path_factory.mktemp("fuzz"), prefix)
    with api_client(settings_) as c:
        yield c
    cleanup = threading.Thread(target=asyncio.run, args=(delete_streams(nats_url, prefix),))
    cleanup.start()
    cleanup.join(30)


@pytest.fixture(scope="module")
def ids(client: TestClient[Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One of everything a command may name, so generated ids can hit real objects."""
    body = {"name": "f", "cameraModel": "c", "cameraView": "Front-facing VRU", "signalType": "GPIO"}
    project = client.post("/api/projects", json=body).json()["id"]
    path: Path = write_video(tmp_path_factory.mktemp("v") / "clip.mp4", size=(320, 240))
    with path.open("rb") as f:
        files = {"file": ("clip.mp4", f, "video/mp4")}
        video = client.post(f"/api/projects/{project}/videos", files=files).json()["id"]
    first = {"frame_number": 1, "vru_type": "pedestrian", "bounding_box": BOX}
    annotation = client.post(f"/api/videos/{video}/annotations", json=first).json()["id"]
    marking = client.post("/api/annotation-sessions", json={"videoId": video}).json()["id"]
    run = {"name": "s", "projectId": project, "videoId": video}
    session = client.post("/api/test-sessions", json=run).json()["id"]
    client.post(f"/api/test-sessions/{session}/start")  # so detections can be accepted
    return {
        "project": project,
        "video": video,
        "annotation": annotation,
        "marking": marking,
        "session": session,
    }


def _strategy(dto: Any, ids: dict[str, str]) -> st.SearchStrategy[Any]:
    known = list(ids.values())
    if getattr(dto, "__origin__", None) is list:
        return st.lists(body_of(dto.__args__[0], known, WORDS), max_size=3)
    assert issubclass(dto, msgspec.Struct)
    return body_of(dto, known, WORDS)


@pytest.mark.parametrize(("method", "path", "dto"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_a_hostile_body_is_refused_or_projects(
    client: TestClient[Any],
    ids: dict[str, str],
    method: str,
    path: str,
    dto: Any,
    data: st.DataObject,
) -> None:
    body = data.draw(_strategy(dto, ids), label="body")
    response = client.request(
        method,
        path.format(**ids),
        content=encode(body),
        headers={"content-type": "application/json"},
    )
    assert response.status_code < 500, response.text[:500]
    assert "Stored at position" not in response.text, "the read side did not catch up"
    if response.status_code >= 400:
        assert response.json()["detail"], response.text[:500]
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy", health.text


def test_after_the_fuzzing_a_normal_write_is_visible_at_once(
    client: TestClient[Any], ids: dict[str, str]
) -> None:
    url = f"/api/videos/{ids['video']}/annotations"
    body = {"frame_number": 2, "vru_type": "cyclist", "bounding_box": BOX}
    created = client.post(url, json=body)
    assert created.status_code == 200, created.text
    assert created.json()["id"] in {a["id"] for a in client.get(url).json()}
