"""Hostile imports and upload names over HTTP: 4xx naming the limit or field, nothing stored,
never a 500; a real upload is still served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from formats.import_limits import MAX_IMPORT_BYTES
from tests.e2e.helpers import api_client, write_video
from tests.unit.import_files import lying_zip, zip_bomb
from verity.settings import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(settings: Settings) -> Any:
    with api_client(settings) as c:
        yield c


@pytest.fixture
def video(client: TestClient[Any], tmp_path: Path) -> dict[str, Any]:
    path = write_video(tmp_path / "street.mp4", frames=20, fps=10.0, size=(320, 240))
    with path.open("rb") as f:
        response = client.post("/api/videos", files={"file": ("street.mp4", f, "video/mp4")})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_hostile_imports_are_refused_naming_the_limit_and_store_nothing(
    client: TestClient[Any], video: dict[str, Any]
) -> None:
    url = f"/api/videos/{video['id']}/annotations/import"
    box = [1, 1, 5, 5]
    out_of_range = {
        "images": [{"id": 1, "frame_number": 2**40}, {"id": 2, "frame_number": 1}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": box},
            {"image_id": 2, "category_id": 1, "bbox": box, "attributes": {"track_id": "a\x00"}},
        ],
    }
    cases = [
        ("yolo", zip_bomb(), 413, "MAX_ENTRY_BYTES"),
        ("yolo", lying_zip(), 400, "damaged"),
        ("json", b"[" * 100_000 + b"]" * 100_000, 422, "MAX_NESTING"),
        ("coco", b"[" + b"1," * 3_000_000 + b"1]", 413, "MAX_ITEMS"),
        ("cvat", b"<!DOCTYPE a [<!ENTITY x 'y'>]><annotations>&x;</annotations>", 422, "DTD"),
        ("coco", msgspec.json.encode(out_of_range), 422, "frame_number"),
    ]
    for fmt, content, status, named in cases:
        response = client.post(url, files={"file": ("f", content)}, params={"format": fmt})
        assert response.status_code == status, (fmt, response.text[:300])
        body = response.json()
        assert named in body["detail"], (fmt, body["detail"])
        assert body["imported"] == 0
    fields = [e["field"] for e in body["errors"]]
    assert fields == ["frame_number", "detection_id"]
    assert client.get(f"/api/videos/{video['id']}/annotations").json() == []


def test_an_import_over_the_size_cap_is_413_before_it_is_read(
    client: TestClient[Any], video: dict[str, Any]
) -> None:
    url = f"/api/videos/{video['id']}/annotations/import"
    response = client.post(
        url, files={"file": ("big.json", b" " * (MAX_IMPORT_BYTES + 1))}, params={"format": "json"}
    )
    assert response.status_code == 413, response.text[:300]
    assert "MAX_IMPORT_BYTES" in response.json()["detail"]


def test_upload_names_no_upload_has_are_404_and_a_real_one_is_served(
    client: TestClient[Any], video: dict[str, Any]
) -> None:
    for path in [
        "/uploads/%00",
        "/uploads/a%00.mp4",
        "/uploads/" + "a" * 256,
        "/uploads/" + "a" * 5000 + ".mp4",
        "/uploads/..%2f..%2fetc%2fpasswd",
        "/uploads/%2e%2e/settings.py",
        "/uploads/.incoming-x",
        "/uploads/a%0ab.mp4",
        "/uploads/%c3%a9.mp4",
    ]:
        response = client.get(path)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert "detail" in response.json()
    served = client.get(f"/uploads/{video['storedName']}")
    assert served.status_code == 200 and len(served.content) == video["fileSize"]
