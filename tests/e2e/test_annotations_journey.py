"""Annotations over HTTP and WebSocket on real PostgreSQL + NATS: the frontend's request
shapes, optimistic concurrency, history/revert/asOf, import/export, ground truth, sessions."""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from litestar.testing import TestClient

from api import annotation_transfer
from tests.conftest import fresh_database
from tests.e2e.helpers import api_client, next_event, write_video
from tests.e2e.identity import bearer, cli_token
from verity.settings import Settings

pytestmark = pytest.mark.e2e

FRONTEND_BODY = {  # A2 exactly as the original frontend sends it: snake_case
    "detection_id": "DET_PED_0001",
    "frame_number": 3,
    "timestamp": 0.3,
    "vru_type": "pedestrian",
    "bounding_box": {"x": 10, "y": 20, "width": 40, "height": 80, "label": "pedestrian"},
    "occluded": False,
    "truncated": False,
    "difficult": False,
    "notes": None,
    "annotator": "ana",
    "validated": False,
}


@pytest.fixture
def client(settings: Settings) -> Any:
    with api_client(settings) as c:
        yield c


@pytest.fixture
def video(client: TestClient[Any], tmp_path: Path) -> dict[str, Any]:
    path = write_video(tmp_path / "street.mp4", frames=40, fps=10.0, size=(320, 240))
    with path.open("rb") as f:
        response = client.post("/api/videos", files={"file": ("street.mp4", f, "video/mp4")})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["width"], body["height"]) == (320, 240)
    return body


def create(client: TestClient[Any], video_id: str, **overrides: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/videos/{video_id}/annotations", json={**FRONTEND_BODY, **overrides}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_frontend_shapes_live_updates_and_ground_truth(
    client: TestClient[Any], video: dict[str, Any]
) -> None:
    vid = video["id"]
    with client.websocket_connect("/ws") as ws:
        next_event(ws, "connection_status")
        ws.send_json({"action": "join", "room": f"video:{vid}"})
        next_event(ws, "joined")
        created = create(client, vid, vru_type="wheelchair")
        announced = next_event(ws, "annotation_created", annotationId=created["id"])
        assert announced["data"]["videoId"] == vid
        assert created["vruType"] == "wheelchair_user" and created["source"] == "manual"
        assert created["boundingBox"] == {
            "x": 10.0,
            "y": 20.0,
            "width": 40.0,
            "height": 80.0,
            "label": "wheelchair_user",
            "confidence": None,
        }
        assert created["version"] == 1 and created["detectionId"] == "DET_PED_0001"

        aid = created["id"]
        moved = client.put(
            f"/api/annotations/{aid}",
            json={"bounding_box": {"x": 12, "y": 20, "width": 40, "height": 80}},
        )
        assert moved.status_code == 200, moved.text
        assert moved.headers["etag"] == '"2"' and moved.json()["boundingBox"]["x"] == 12.0
        next_event(ws, "annotation_updated", annotationId=aid)

        by_body = client.patch(f"/api/annotations/{aid}/validate", json={"validated": True})
        assert by_body.status_code == 200 and by_body.json()["validated"] is True
        assert next_event(ws, "annotation_validated", annotationId=aid)["data"]["validated"] is True
        by_query = client.patch(f"/api/annotations/{aid}/validate?validated=false")
        assert by_query.json()["validated"] is False
        client.patch(f"/api/annotations/{aid}/validate", json={"validated": True})

    create(client, vid, detection_id=None, frame_number=5, source="detector", confidence=0.7)
    create(client, vid, detection_id=None, frame_number=6)  # neither validated nor detector
    listed = client.get(f"/api/videos/{vid}/annotations").json()
    assert [a["frameNumber"] for a in listed] == [3, 5, 6]
    for item in listed:  # the list's fast path renders exactly what the single read does
        assert item == client.get(f"/api/annotations/{item['id']}").json()
    assert len(client.get(f"/api/videos/{vid}/annotations?validated_only=true").json()) == 1
    assert len(client.get(f"/api/videos/{vid}/annotations?validatedOnly=true").json()) == 1

    truth = client.get(f"/api/videos/{vid}/ground-truth").json()
    assert truth["video_id"] == vid and truth["total_detections"] == 2
    assert {o["source"] for o in truth["objects"]} == {"manual", "detector"}
    first = truth["objects"][0]
    assert first["class_label"] == first["vruType"] == "wheelchair_user"
    assert first["bounding_box"]["x"] == first["boundingBox"]["x"] == 12.0

    track = client.get("/api/annotations/detection/DET_PED_0001").json()
    assert [a["id"] for a in track] == [aid]
    assert client.delete(f"/api/annotations/{aid}").json() == {
        "message": "Annotation deleted successfully"
    }
    assert client.get(f"/api/annotations/{aid}").status_code == 404
    gone = client.put(f"/api/annotations/{aid}", json={"notes": "x"})
    assert gone.status_code == 404 and "deleted" in gone.json()["detail"]
    assert client.post(f"/api/annotations/{aid}/restore").json()["version"] == 7


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"frame_number": -1}, "frameNumber"),
        ({"frame_number": 40}, "frame_number"),  # the video has frames 0 to 39
        ({"vru_type": "truck"}, "vru_type"),
        ({"bounding_box": {"x": 300, "y": 0, "width": 40, "height": 10}}, "box.width"),
        ({"bounding_box": {"x": 0, "y": 0, "width": 0, "height": 10}}, "box.width"),
        ({"bounding_box": {"x": -5, "y": 0, "width": 4, "height": 10}}, "box.x"),
        ({"frame_number": "three"}, "frameNumber"),
    ],
)
def test_bad_annotations_are_refused_naming_the_field(
    client: TestClient[Any], video: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    response = client.post(f"/api/videos/{video['id']}/annotations", json={**FRONTEND_BODY, **body})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    assert client.get(f"/api/videos/{video['id']}/annotations").json() == []


def history_versions(client: TestClient[Any], aid: str) -> list[int]:
    return [h["version"] for h in client.get(f"/api/annotations/{aid}/history").json()]


def test_concurrent_updates_one_wins_the_other_is_refused_and_not_in_history(
    client: TestClient[Any], video: dict[str, Any]
) -> None:
    aid = create(client, video["id"])["id"]
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def edit(notes: str) -> None:
        barrier.wait()
        results.append(
            client.put(f"/api/annotations/{aid}", json={"notes": notes, "expectedVersion": 1})
        )

    threads = [threading.Thread(target=edit, args=(n,)) for n in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409], [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200).json()["notes"]
    loser = next(r for r in results if r.status_code == 409)
    assert "current version 2" in loser.json()["detail"]
    history = client.get(f"/api/annotations/{aid}/history").json()
    assert len(history) == 2
    assert [c["new"] for c in history[1]["changes"]] == [winner]

    stale = client.put(
        f"/api/annotations/{aid}", json={"notes": "late"}, headers={"If-Match": '"1"'}
    )
    assert stale.status_code == 412 and "current version 2" in stale.json()["detail"]
    fresh = client.put(
        f"/api/annotations/{aid}", json={"notes": "now"}, headers={"If-Match": '"2"'}
    )
    assert fresh.status_code == 200 and fresh.headers["etag"] == '"3"'
    assert history_versions(client, aid) == [1, 2, 3]


def test_revert_to_version_two_after_five_edits_and_as_of(
    client: TestClient[Any], video: dict[str, Any], settings: Settings
) -> None:
    aid = create(client, video["id"])["id"]
    edits = [
        {"bounding_box": {"x": 30, "y": 20, "width": 40, "height": 80}},
        {"vru_type": "cyclist"},
        {"occluded": True},
        {"notes": "behind a van"},
        {"frame_number": 4, "timestamp": 0.4},
    ]
    ana = bearer(cli_token(settings, "--name", "ana", "--role", "annotator"))
    for edit in edits:
        assert client.put(f"/api/annotations/{aid}", json=edit, headers=ana).status_code == 200
    v2 = client.get(f"/api/annotations/{aid}?asOf=2").json()
    reverted = client.post(f"/api/annotations/{aid}/revert", json={"version": 2})
    assert reverted.status_code == 200, reverted.text
    now = reverted.json()
    drop = {"version", "createdAt", "updatedAt"}
    assert {k: v for k, v in now.items() if k not in drop} == {
        k: v for k, v in v2.items() if k not in drop
    }
    assert now["version"] == 7
    history = client.get(f"/api/annotations/{aid}/history").json()
    assert len(history) == 7
    assert [h["eventType"] for h in history] == [
        "created",
        "box_moved",
        "class_changed",
        "flags_changed",
        "changed",
        "changed",
        "reverted",
    ]
    assert history[1]["actor"] == "token:ana"  # who authenticated, never a header's claim
    claimed = client.put(
        f"/api/annotations/{aid}", json={"notes": "claimed"}, headers={"X-Actor": "mallory"}
    )
    assert claimed.status_code == 200, claimed.text
    latest = client.get(f"/api/annotations/{aid}/history").json()[-1]
    assert latest["actor"] == "anonymous"  # the original's X-Actor header is not trusted
    assert {c["field"] for c in history[2]["changes"]} == {"vru_type"}
    assert history[1]["changes"][0] == {
        "field": "box",
        "old": {"x": 10.0, "y": 20.0, "width": 40.0, "height": 80.0},
        "new": {"x": 30.0, "y": 20.0, "width": 40.0, "height": 80.0},
    }
    at_three = client.get(f"/api/annotations/{aid}", params={"asOf": history[2]["at"]}).json()
    assert at_three["vruType"] == "cyclist" and at_three["version"] == 3
    assert client.get(f"/api/annotations/{aid}?asOf=2000-01-01T00:00:00Z").status_code == 404
    assert client.get(f"/api/annotations/{aid}?asOf=yesterday").status_code == 400
    bad = client.post(f"/api/annotations/{aid}/revert", json={"version": 99})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "version"


def test_track_export_interpolates_and_every_format_round_trips_over_http(
    client: TestClient[Any], video: dict[str, Any], settings: Settings
) -> None:
    vid = video["id"]
    create(
        client, vid, frame_number=0, timestamp=0.0, detection_id="DET_CYC_0001", vru_type="cyclist"
    )
    create(
        client,
        vid,
        frame_number=10,
        timestamp=1.0,
        detection_id="DET_CYC_0001",
        vru_type="cyclist",
        bounding_box={"x": 60, "y": 20, "width": 40, "height": 80},
    )
    plain = client.get(f"/api/videos/{vid}/annotations/export?format=json").json()
    assert len(plain["annotations"]) == 2
    full = client.get(f"/api/videos/{vid}/annotations/export?format=json&interpolate=true").json()
    assert [a["frameNumber"] for a in full["annotations"]] == list(range(11))
    assert [a["keyframe"] for a in full["annotations"]].count(True) == 2
    frames = client.get("/api/annotations/detection/DET_CYC_0001/frames").json()
    assert len(frames) == 11 and frames[5]["boundingBox"]["x"] == 35.0

    for fmt in ("json", "coco", "yolo", "pascal", "cvat", "mot"):
        exported = client.get(f"/api/videos/{vid}/annotations/export?format={fmt}")
        assert exported.status_code == 200, exported.text
        target = client.post(
            "/api/videos",
            files={
                "file": (
                    "t.mp4",
                    (Path(settings.uploads_dir) / video["storedName"]).read_bytes(),
                    "video/mp4",
                )
            },
        ).json()["id"]
        imported = client.post(
            f"/api/videos/{target}/annotations/import",
            files={"file": (f"a.{fmt}", exported.content)},
            data={"format": fmt},
        )
        assert imported.status_code == 200, imported.text
        assert imported.json()["imported"] == 2
        again = client.get(f"/api/videos/{target}/annotations/export?format={fmt}")
        assert again.content == exported.content, fmt
        sources = {a["source"] for a in client.get(f"/api/videos/{target}/annotations").json()}
        assert sources == ({"manual"} if fmt == "json" else {"imported"})


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


def test_bad_import_files_store_nothing_unless_partial_is_asked(
    client: TestClient[Any], video: dict[str, Any]
) -> None:
    vid = video["id"]
    url = f"/api/videos/{vid}/annotations/import"
    rows = [
        {
            "frame_number": 1,
            "vru_type": "pedestrian",
            "bounding_box": {"x": 1, "y": 1, "width": 5, "height": 5},
        },
        {
            "frame_number": -2,
            "vru_type": "pedestrian",
            "bounding_box": {"x": 1, "y": 1, "width": 5, "height": 5},
        },
        {
            "frame_number": 2,
            "vru_type": "bus",
            "bounding_box": {"x": 1, "y": 1, "width": 5, "height": 5},
        },
        {
            "frame_number": 3,
            "vru_type": "cyclist",
            "bounding_box": {"x": 319, "y": 1, "width": 5, "height": 5},
        },
        {
            "frame_number": 900,
            "vru_type": "cyclist",
            "bounding_box": {"x": 1, "y": 1, "width": 5, "height": 5},
        },
    ]
    data = msgspec.json.encode({"annotations": rows})
    refused = client.post(url, files={"file": ("a.json", data)}, params={"format": "json"})
    assert refused.status_code == 422
    body = refused.json()
    assert body["imported"] == 0
    assert body["errorCount"] == len(body["errors"])  # all listed: fewer than MAX_LISTED_ERRORS
    assert [(e["row"], e["field"]) for e in body["errors"]] == [
        (1, "frame_number"),
        (2, "vru_type"),
        (3, "box.width"),
        (4, "frame_number"),
    ]
    assert client.get(f"/api/videos/{vid}/annotations").json() == []
    partial = client.post(
        url, files={"file": ("a.json", data)}, params={"format": "json", "partial": "true"}
    )
    assert partial.status_code == 200 and partial.json()["imported"] == 1
    assert len(partial.json()["errors"]) == 4

    for fmt, content, expected in [
        ("json", b"{not json", "JSON"),
        ("cvat", b"<annotations><track>", "XML"),
        ("yolo", zip_bytes({"../x/frame_1.txt": b"0 0.5 0.5 0.1 0.1"}), "escapes"),
        ("pascal_voc", zip_bytes({"Annotations/frame_000001.xml": b"<a/>" * 100})[:60], "zip"),
        ("dicom", b"{}", "format"),
    ]:
        response = client.post(url, files={"file": ("f", content)}, params={"format": fmt})
        assert response.status_code in (400, 422), (fmt, response.text)
        assert expected in response.json()["detail"], (fmt, response.json())
    assert len(client.get(f"/api/videos/{vid}/annotations").json()) == 1


def test_large_import_runs_as_a_job_with_progress(
    postgres_admin_url: str,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On its own database: its events would otherwise be relayed again by every later test."""
    monkeypatch.setattr(annotation_transfer, "JOB_THRESHOLD", 50)
    monkeypatch.setattr(annotation_transfer, "IMPORT_BATCH", 250)
    rows = 1000
    document = {
        "images": [{"id": f + 1, "file_name": f"frame_{f:06d}.jpg"} for f in range(40)],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {"id": i, "image_id": i % 40 + 1, "category_id": 1, "bbox": [i % 200, 10, 20, 30]}
            for i in range(rows)
        ],
    }
    with fresh_database(postgres_admin_url, "verity_import") as url:
        own = msgspec.structs.replace(settings, database_url=url)
        with api_client(own) as client:
            path = write_video(tmp_path / "v.mp4", frames=40, fps=10.0, size=(320, 240))
            vid = client.post("/api/videos", files={"file": ("v.mp4", path.read_bytes())}).json()[
                "id"
            ]
            with client.websocket_connect("/ws") as ws:
                next_event(ws, "connection_status")
                ws.send_json({"action": "join", "room": f"video:{vid}"})
                next_event(ws, "joined")
                started = client.post(
                    f"/api/videos/{vid}/annotations/import?format=coco",
                    files={"file": ("big.json", msgspec.json.encode(document))},
                )
                assert started.status_code == 202, started.text
                job = started.json()["jobId"]
                seen = [
                    next_event(ws, "import_progress", timeout=20, id=job)["data"].get("imported", 0)
                    for _ in range(6)
                ]
            assert seen == [0, 250, 500, 750, 1000, 1000]  # started, 4 batches, completed
            status = client.get(f"/api/annotation-imports/{job}").json()
            while status["status"] == "running":
                status = client.get(f"/api/annotation-imports/{job}").json()
            assert (status["status"], status["imported"], status["progress"]) == (
                "completed",
                rows,
                1.0,
            )
            assert len(client.get(f"/api/videos/{vid}/annotations").json()) == rows
            with psycopg.connect(url) as conn:
                found = conn.execute(
                    "SELECT count(DISTINCT xmin::text) FROM verity_events WHERE topic = %s",
                    ("domain.annotations:Annotation.Created",),
                ).fetchone()
            assert found is not None and found[0] == 4  # one transaction per batch, not per box


def test_annotation_sessions_count_from_annotation_events(
    client: TestClient[Any], video: dict[str, Any]
) -> None:
    vid = video["id"]
    session = client.post(
        "/api/annotation-sessions", json={"video_id": vid, "project_id": video["projectId"]}
    )
    assert session.status_code == 200, session.text
    sid = session.json()["id"]
    assert session.json()["totalDetections"] == 0 and session.json()["totalFrames"] == 40
    a = create(client, vid)
    create(client, vid, frame_number=4)
    client.patch(f"/api/annotations/{a['id']}/validate", json={"validated": True})
    updated = client.put(
        f"/api/annotation-sessions/{sid}",
        json={"status": "paused", "current_frame": 12, "total_detections": 999},
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["status"], body["currentFrame"]) == ("paused", 12)
    assert (body["totalDetections"], body["validatedDetections"]) == (2, 1)
    bad = client.put(f"/api/annotation-sessions/{sid}", json={"current_frame": -1})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "currentFrame"
    for body, field in (
        ({"total_frames": 900, "current_frame": 900}, "total_frames"),
        ({"total_frames": None, "current_frame": 900}, "current_frame"),
    ):
        beyond = client.put(f"/api/annotation-sessions/{sid}", json=body)
        assert beyond.status_code == 422 and beyond.json()["errors"][0]["field"] == field
    assert client.get(f"/api/annotation-sessions/{sid}").json()["totalDetections"] == 2
    assert (
        client.post(
            "/api/annotation-sessions", json={"videoId": "00000000-0000-0000-0000-00000000beef"}
        ).status_code
        == 404
    )


def test_bulk_creation_checks_every_row_first(
    client: TestClient[Any], video: dict[str, Any]
) -> None:
    vid = video["id"]
    rows = [
        {**FRONTEND_BODY, "frame_number": f, "source": "detector", "confidence": 0.9}
        for f in range(40)
    ]
    bad = [*rows[:5], {**FRONTEND_BODY, "vru_type": "tram"}]
    refused = client.post(f"/api/videos/{vid}/annotations/bulk", json=bad)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "[5].vru_type"
    beyond = client.post(
        f"/api/videos/{vid}/annotations/bulk",
        json=[*rows[:2], {**FRONTEND_BODY, "frame_number": 900}],
    )
    assert beyond.status_code == 422 and beyond.json()["errors"][0]["field"] == "[2].frame_number"
    assert "40 frames" in beyond.json()["detail"]
    assert client.get(f"/api/videos/{vid}/annotations").json() == []
    created = client.post(f"/api/videos/{vid}/annotations/bulk", json=rows)
    assert created.status_code == 200, created.text
    assert created.json()["created"] == 40
    listed = client.get(f"/api/videos/{vid}/annotations").json()
    assert len(listed) == 40 and {a["source"] for a in listed} == {"detector"}
    assert client.get(f"/api/videos/{vid}/ground-truth").json()["total_detections"] == 40
    moved = client.put(f"/api/annotations/{listed[0]['id']}", json={"frame_number": 40})
    assert moved.status_code == 422 and moved.json()["errors"][0]["field"] == "frame_number"
