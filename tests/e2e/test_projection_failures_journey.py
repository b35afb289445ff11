"""An event no read model can apply, stored behind the HTTP edge's back, does not jam Verity:
later writes answer at once, /health and the admin endpoint name the skipped event, and the
shipped `verity rebuild` records it again, lists it and, after a fix, applies it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from commands.annotations import CreateAnnotation, create_annotation
from commands.application import Verity
from commands.videos import RegisterUpload, register_upload
from domain.annotations import Annotation, AnnotationDraft, BoundingBox
from domain.projects import CENTRAL_STORE_ID
from domain.videos import VideoMetadata
from domain.vru import VruType
from projections.failures import failures_of
from projections.service import ProjectionService
from tests.e2e.helpers import api_client
from verity.cli import main
from verity.settings import Settings

pytestmark = pytest.mark.e2e

POISON_FRAME = 2**40
"""Too large for rm_annotations.frame_number (`integer`)."""


def wait_until(service: ProjectionService, position: int, timeout: float = 60) -> None:
    """Blocking wait for the read side: this test writes through a command outside the API."""
    deadline = time.monotonic() + timeout
    while service.position < position:
        assert time.monotonic() < deadline, f"read side at {service.position}, not {position}"
        time.sleep(0.005)


def new_video(app: Verity) -> UUID:
    vid = uuid4()
    metadata = VideoMetadata(fps=10, frame_count=100, duration=10, width=640, height=480)
    register_upload(
        RegisterUpload(
            id=vid,
            project_id=CENTRAL_STORE_ID,
            filename=f"{vid}.mp4",
            original_name="v.mp4",
            size=1,
            sha256="0",
            metadata=metadata,
        ),
        app,
    )
    return vid


def annotation_failures(url: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        return failures_of(conn, "annotations_v1", 100)


def test_a_poison_event_is_skipped_reported_rebuilt_and_retried(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings.database_url is not None and settings.nats_url is not None
    with api_client(settings) as client:
        services = client.app.state.services
        app: Verity = services.app
        video = new_video(app)
        poison = Annotation(
            video_id=video,
            frame_number=POISON_FRAME,
            seconds=0.0,
            vru_type=VruType.PEDESTRIAN,
            box=BoundingBox(1, 1, 5, 5),
        )
        poison_position = app.commit(poison)
        assert poison_position is not None

        # A later write waits for every read model, the annotations one included.
        started = time.monotonic()
        created = client.post(
            "/api/projects",
            json={
                "name": "after",
                "cameraModel": "m",
                "cameraView": "Rear-facing VRU",
                "signalType": "GPIO",
            },
        )
        assert created.status_code == 200, created.text
        assert time.monotonic() - started < settings.read_wait_timeout
        cmd = CreateAnnotation(
            video_id=video,
            draft=AnnotationDraft(
                frame_number=3, timestamp=0.3, vru_type=VruType.CYCLIST, box=BoundingBox(1, 1, 5, 5)
            ),
        )
        wait_until(services.read_side, create_annotation(cmd, app) or 0, timeout=5)
        assert client.get(f"/api/annotations/{cmd.id}").status_code == 200
        assert client.get(f"/api/annotations/{poison.id}").status_code == 404

        health = client.get("/health")
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "degraded"
        reported = body["projectionFailures"]["annotations_v1"]
        assert reported["count"] == 1
        assert reported["newest"][0]["position"] == poison_position
        assert "out of range" in reported["newest"][0]["error"]

        status = client.get("/api/admin/projections")
        assert status.status_code == 200, status.text
        by_name = {p["name"]: p for p in status.json()["projections"]}
        assert by_name["annotations_v1"]["failureCount"] == 1
        assert by_name["annotations_v1"]["lastFailure"]["originatorId"] == str(poison.id)
        assert by_name["annotations_v1"]["lag"] == 0
        assert by_name["projects_v1"]["failureCount"] == 0
        listed = client.get(
            "/api/admin/projections/failures", params={"projection": "annotations_v1"}
        )
        assert [f["position"] for f in listed.json()] == [poison_position]
        unknown = client.get("/api/admin/projections/failures", params={"projection": "nope"})
        assert unknown.status_code == 422 and "projection" in unknown.json()["detail"]

    # The shipped tools, as an operator runs them.
    monkeypatch.setenv("VERITY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("VERITY_NATS_URL", settings.nats_url)
    monkeypatch.setenv("VERITY_DATA_DIR", str(Path(settings.data_dir)))
    main(["rebuild", "annotations_v1"])
    rebuilt = capsys.readouterr().out
    assert "annotations_v1: rebuilt up to" in rebuilt and "1 event(s) not applied" in rebuilt
    assert [f.position for f in annotation_failures(settings.database_url)] == [poison_position]

    main(["rebuild", "--list-failures"])
    listing = capsys.readouterr().out
    assert f"annotations_v1\t{poison_position}\t" in listing and "out of range" in listing

    with psycopg.connect(settings.database_url, autocommit=True) as conn:  # the fix
        conn.execute("ALTER TABLE rm_annotations ALTER COLUMN frame_number TYPE bigint")
    main(["rebuild", "--retry-failures", "annotations_v1"])
    assert "annotations_v1: 1 applied now, 0 still not applied" in capsys.readouterr().out
    assert annotation_failures(settings.database_url) == []
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT frame_number FROM rm_annotations WHERE id = %s", (poison.id,)
        ).fetchone()
    assert row == (POISON_FRAME,)
