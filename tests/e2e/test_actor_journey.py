"""Every event says who caused it: a journey made with tokens (an annotator, an analyst, a
device) through uploads, annotations, a test session with detections and its evaluation,
then EVERY event the store holds is read back. Each names a principal (`kind:name`): the
token that made the request, the CLI, or the worker service that reacted; none `anonymous`.
`X-Actor` sent with a token changes nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import wait_for_video, write_video
from tests.e2e.identity import access_client, bearer, cli, cli_token
from tests.e2e.test_annotations_journey import FRONTEND_BODY
from tests.e2e.test_test_sessions_journey import PROJECT, frame
from verity.settings import Settings

pytestmark = pytest.mark.e2e


def stored_actors(client: Any) -> list[tuple[str, str]]:
    """(event class, actor) of every event in the store, in order."""
    app = client.app.state.services.app
    found = []
    for n in app.recorder.select_notifications(start=1, limit=1_000_000):
        event: Any = app.mapper.to_domain_event(n)
        found.append((type(event).__qualname__, event.meta.actor))
    return found


def test_every_stored_event_names_the_principal_that_caused_it(
    settings: Settings, tmp_path: Path
) -> None:
    cli(settings, "principals", "add", "ana", "--role", "annotator")
    annotator = cli_token(settings, "--name", "ana-laptop", "--principal", "ana")
    analyst = cli_token(settings, "--name", "lab", "--role", "analyst")
    device = cli_token(settings, "--name", "cam-1", "--role", "device")
    with access_client(settings) as client:
        ana, lab = bearer(annotator), bearer(analyst)
        project = client.post("/api/projects", json=PROJECT, headers=ana).json()
        path = write_video(tmp_path / "clip.mp4", frames=30, size=(320, 240))
        with path.open("rb") as f:
            uploaded = client.post(
                f"/api/projects/{project['id']}/videos",
                files={"file": ("clip.mp4", f, "video/mp4")},
                headers={**ana, "X-Actor": "mallory"},
            )
        assert uploaded.status_code == 200, uploaded.text
        video = wait_for_video(client_with(client, ana), uploaded.json()["id"], {"completed"})
        made = client.post(
            f"/api/videos/{video['id']}/annotations", json=FRONTEND_BODY, headers=ana
        )
        assert made.status_code == 200, made.text

        sid = client.post(
            "/api/test-sessions",
            json={"name": "r", "project_id": project["id"], "video_id": video["id"]},
            headers=lab,
        ).json()["id"]
        assert client.post(f"/api/test-sessions/{sid}/start", headers=lab).status_code == 200
        for seq in range(3):
            sent = client.post(
                "/api/detection-events/batch", json=frame(sid, seq), headers=bearer(device)
            )
            assert sent.status_code == 200, sent.text
        other = client.post(
            "/api/detection-events/batch",
            json={**frame(sid, 9), "deviceId": "cam-2"},
            headers=bearer(device),
        )
        assert other.status_code == 403 and "deviceId" in other.json()["detail"]
        assert client.post(f"/api/test-sessions/{sid}/pause", headers=lab).status_code == 200
        assert client.post(f"/api/test-sessions/{sid}/resume", headers=lab).status_code == 200
        done = client.post(f"/api/test-sessions/{sid}/stop", headers=lab)  # ends the run
        assert done.status_code == 200 and done.json()["status"] == "completed", done.text
        wait_for_results(client, sid, lab)
        events = stored_actors(client)

    actors = {actor for _, actor in events}
    assert "anonymous" not in actors, [e for e in events if e[1] == "anonymous"]
    assert "mallory" not in actors
    assert all(":" in actor for actor in actors), actors
    by_kind = {}
    for kind, actor in events:
        by_kind.setdefault(kind, set()).add(actor)
    assert by_kind["Project.Created"] == {"service:setup", "user:ana"}  # + Central Store
    assert by_kind["Annotation.Created"] == {"user:ana"}
    assert by_kind["TestSession.Created"] == {"token:lab"}
    assert {"device:cam-1"} <= actors and {"service:cli", "service:video-worker"} <= actors
    assert actors <= {
        "user:ana",
        "token:lab",
        "device:cam-1",
        "service:cli",
        "service:setup",
        "service:video-worker",
        "service:evaluator",
        "service:detector",
        "service:device-ingest",
    }, actors
    assert len(events) > 20


class client_with:
    """A client whose GETs carry `headers` (for helpers that only take a client)."""

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def get(self, url: str) -> Any:
        return self.client.get(url, headers=self.headers)


def wait_for_results(client: Any, sid: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while client.get(f"/api/test-sessions/{sid}/results", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "no evaluation within 60 s"
        time.sleep(0.2)
