"""Schemathesis over the whole OpenAPI document, against the real app: no request may get a 5xx.

Every operation gets a few seeded (derandomized) examples, valid and invalid by its schema.
Path ids are swapped for objects that exist (fresh ones per operation, so a DELETE leaves the
next operation something to act on), so the handlers behind the 404 are reached too.
`VERITY_SCHEMATHESIS_EXAMPLES` raises the examples per operation (default 4);
`VERITY_SCHEMATHESIS_COVERAGE=1` adds schemathesis's coverage phase (boundary values).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import schemathesis
from litestar.testing import TestClient
from schemathesis.config import SchemathesisConfig

from api.app import create_app
from tests.conftest import delete_streams, settings_for
from tests.e2e.helpers import api_client, write_video

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("VERITY_SCHEMATHESIS_EXAMPLES", "4"))
COVERAGE = os.environ.get("VERITY_SCHEMATHESIS_COVERAGE", "") == "1"
CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"coverage": {"enabled": COVERAGE}, "stateful": {"enabled": False}},
    }
)
PROJECT = {
    "name": "fuzz",
    "cameraModel": "cam",
    "cameraView": "Front-facing VRU",
    "signalType": "GPIO",
}
TRACK = "DET_FUZZ"


class Seeds:
    """Real objects for path ids: created once per operation, on its first case."""

    def __init__(self, client: TestClient[Any], video_file: Path) -> None:
        self.client = client
        self.video_file = video_file
        self.by_operation: dict[str, dict[str, str]] = {}

    def ids_for(self, operation: str) -> dict[str, str]:
        if operation not in self.by_operation:
            self.by_operation[operation] = self._create()
        return self.by_operation[operation]

    def _create(self) -> dict[str, str]:
        c = self.client
        project = c.post("/api/projects", json=PROJECT).json()["id"]
        with self.video_file.open("rb") as f:
            files = {"file": ("clip.mp4", f, "video/mp4")}
            video = c.post(f"/api/projects/{project}/videos", files=files).json()["id"]
        box = {"x": 1, "y": 1, "width": 10, "height": 10}
        body = {"frame_number": 1, "vru_type": "pedestrian", "bounding_box": box}
        annotation = c.post(
            f"/api/videos/{video}/annotations", json={**body, "detection_id": TRACK}
        ).json()["id"]
        marking = c.post("/api/annotation-sessions", json={"videoId": video}).json()["id"]
        session_body = {"name": "s", "projectId": project, "videoId": video}
        session = c.post("/api/test-sessions", json=session_body).json()["id"]
        return {
            "project_id": project,
            "video_id": video,
            "annotation_id": annotation,
            "annotation_session_id": marking,
            "session_id": session,
        }


def _document() -> dict[str, Any]:
    """The app's OpenAPI document, built without servers (schemathesis collects one test per
    operation at import); `test_the_fuzzed_document_is_the_served_one` checks the routes."""
    with tempfile.TemporaryDirectory() as uploads:
        app = create_app(_no_services, Path(uploads))
        return app.openapi_schema.to_schema()


def _no_services() -> Any:
    raise AssertionError("only the OpenAPI document is read from this app")


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def client(
    database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient[Any]]:
    """One app for every operation (a start per operation would cost more than the cases)."""
    prefix = f"t{uuid4().hex[:12]}"
    settings = settings_for(database_url, nats_url, tmp_path_factory.mktemp("schemathesis"), prefix)
    with api_client(settings) as c:
        yield c
    cleanup = threading.Thread(target=asyncio.run, args=(delete_streams(nats_url, prefix),))
    cleanup.start()
    cleanup.join(30)


@pytest.fixture(scope="module")
def seeds(client: TestClient[Any], tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    video = write_video(tmp_path_factory.mktemp("seed") / "clip.mp4", size=(320, 240))
    return Seeds(client, video)


def _operations(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (method, path, op.get("operationId", ""))
        for path, item in document["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op
    }


def test_the_fuzzed_document_is_the_served_one(client: TestClient[Any]) -> None:
    """Same routes (examples and component names differ between builds of the document)."""
    served = client.get("/schema/openapi.json").json()
    assert _operations(served) == _operations(DOCUMENT)
    assert len(_operations(DOCUMENT)) > 50


def _is_uuid(value: Any) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


def _use_seeds(case: Any, seeds: Seeds) -> None:
    """Swap well-formed path ids for real ones; malformed ones stay, to test the 4xx."""
    params = case.path_parameters or {}
    ids = seeds.ids_for(case.operation.label)
    for name, value in params.items():
        key = name
        if name == "session_id" and case.path.startswith("/api/annotation-sessions"):
            key = "annotation_session_id"
        if key in ids and _is_uuid(value):
            params[name] = ids[key]
        elif name == "detection_id" and len(str(value)) % 2 == 0:
            params[name] = TRACK


@schema.parametrize()
def test_no_request_gets_a_server_error(case: Any, client: TestClient[Any], seeds: Seeds) -> None:
    _use_seeds(case, seeds)
    kwargs = case.as_transport_kwargs(base_url="")
    kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), bytes | str):  # a raw body: httpx calls it content
        kwargs["content"] = kwargs.pop("data")
    response = client.request(**kwargs)
    assert response.status_code < 500, (
        f"{response.status_code} {response.text[:500]}\n{case.as_curl_command()}"
    )
