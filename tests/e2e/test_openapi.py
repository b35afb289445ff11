"""The OpenAPI document builds for every route, so /schema and its docs UI work."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import api_client
from verity.settings import Settings

pytestmark = pytest.mark.e2e

METHODS = {"get", "post", "put", "patch", "delete"}


def test_openapi_document_covers_every_route_with_an_operation_id(settings: Settings) -> None:
    with api_client(settings) as client:
        response = client.get("/schema/openapi.json")
        assert response.status_code == 200, response.text
        document = response.json()
        docs_ui = client.get("/schema/swagger")
    assert docs_ui.status_code == 200
    paths = document["paths"]
    operations = [op for item in paths.values() for m, op in item.items() if m in METHODS]
    assert {"/api/projects", "/api/projects/{project_id}", "/health"} <= set(paths)
    missing = [op.get("summary") for op in operations if not op.get("operationId")]
    assert not missing, f"routes without operationId: {missing}"
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))


def test_constraints_checked_by_hand_still_name_the_field(settings: Settings) -> None:
    body = {
        "name": "p",
        "cameraModel": "m",
        "cameraView": "Front-facing VRU",
        "signalType": "GPIO",
    }
    with api_client(settings) as client:
        zero = client.post("/api/projects", json={**body, "frameRate": 0})
        long_name = client.post("/api/projects", json={**body, "name": "x" * 501})
        created = client.post("/api/projects", json=body).json()
        patch = client.put(f"/api/projects/{created['id']}", json={"frame_rate": 10_001})
        blank = client.put(f"/api/projects/{created['id']}", json={"cameraModel": "  "})
    assert zero.status_code in (400, 422) and "frameRate" in zero.json()["detail"]
    assert long_name.status_code in (400, 422) and "name" in long_name.json()["detail"]
    assert patch.status_code in (400, 422) and "frameRate" in patch.json()["detail"]
    assert blank.status_code in (400, 422) and "cameraModel" in blank.json()["detail"]
