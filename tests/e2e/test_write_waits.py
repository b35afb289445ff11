"""Each write waits for the read models its answer and the obvious next GET read.

The read side here moves only when asked: no projection threads run, and a write's wait
(`caught_up`) brings exactly the read models it names up to date. A route that names too
few answers from a stale read model, or leaves the next GET stale; both show below as a
difference from the same GET once every read model has caught up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from projections.service import ProjectionService
from tests.e2e.helpers import write_video
from tests.e2e.test_test_sessions_journey import PROJECT
from verity.bootstrap import Endpoints, running
from verity.settings import Settings

pytestmark = pytest.mark.e2e

BOX = {"x": 10, "y": 20, "width": 50, "height": 120}


class Journey:
    """Writes through HTTP, each checked against GETs before and after a full catch-up."""

    def __init__(self, client: TestClient[Any], read_side: ProjectionService) -> None:
        self.client = client
        self.read_side = read_side
        self.waited: list[frozenset[str]] = []

    def write(
        self,
        method: str,
        path: str,
        then: str | Callable[[Any], str],
        *also: str,
        **kwargs: Any,
    ) -> tuple[Any, Any]:
        """`method path`, then GET `then` (a path, or one made from the answer) and `also` at
        once and again once all read models caught up; each must be the same both times.
        Returns the write's body and the first GET's (None for a 404)."""
        response = self.client.request(method, path, **kwargs)
        assert response.status_code in (200, 201, 202), (path, response.text)
        reads = [then(response.json()) if callable(then) else then, *also]
        at_once = [self.client.get(read) for read in reads]
        self.read_side.catch_up_once()
        settled = [self.client.get(read) for read in reads]
        for read, before, after in zip(reads, at_once, settled, strict=True):
            assert (before.status_code, before.json()) == (after.status_code, after.json()), (
                f"{method} {path} left GET {read} stale"
            )
        first = settled[0]
        return response.json(), None if first.status_code == 404 else first.json()


@contextmanager
def journey(settings: Settings) -> Iterator[Journey]:
    assert settings.database_url is not None and settings.nats_url is not None
    endpoints = Endpoints(settings.database_url, settings.nats_url)
    app = create_app(
        lambda: running(settings, endpoints, with_projections=False, workers=()),
        settings.uploads_dir,
    )
    with TestClient(app, timeout=30) as client:
        read_side: ProjectionService = client.app.state.services.read_side
        read_side.catch_up_once()
        trip = Journey(client, read_side)

        async def only_named(
            position: int | None,
            timeout: float,  # noqa: ASYNC109 - the signature replaced
            names: Collection[str] | None = None,
        ) -> None:
            assert names, "a write waited for every read model"
            trip.waited.append(frozenset(names))
            runners = [r for r in read_side.runners if r.name in names]
            assert len(runners) == len(set(names)), f"unknown read model in {names}"
            await asyncio.to_thread(lambda: [r.catch_up() for r in runners])

        read_side.wait_for = only_named  # type: ignore[method-assign]
        yield trip


def upload(trip: Journey, path: str, video: Path) -> tuple[Any, Any]:
    files = {"file": (video.name, video.read_bytes(), "video/mp4")}
    return trip.write("POST", path, lambda body: f"/api/videos/{body['id']}", files=files)


def test_every_write_answers_and_reads_back_what_it_wrote(
    settings: Settings, tmp_path: Path
) -> None:
    with journey(settings) as trip:
        # projects
        by_id = lambda body: f"/api/projects/{body['id']}"  # noqa: E731
        created, got = trip.write("POST", "/api/projects", by_id, json=PROJECT)
        pid = created["id"]
        assert created == got
        assert pid in [p["id"] for p in trip.client.get("/api/projects").json()]
        updated, got = trip.write(
            "PUT", f"/api/projects/{pid}", f"/api/projects/{pid}", json={"name": "Renamed"}
        )
        assert updated == got and got["name"] == "Renamed"

        # videos
        clip = write_video(tmp_path / "clip.mp4", frames=40, size=(640, 480))
        video, got = upload(trip, f"/api/projects/{pid}/videos", clip)
        vid = video["id"]
        assert {k: v for k, v in video.items() if k != "message"} == got
        listed = trip.client.get(f"/api/projects/{pid}/videos").json()
        assert vid in [v["id"] for v in listed]
        central, got = upload(trip, "/api/videos", write_video(tmp_path / "central.mp4"))
        assert {k: v for k, v in central.items() if k != "message"} == got
        cid = central["id"]
        linked, got = trip.write(
            "POST",
            f"/api/projects/{pid}/videos/link",
            f"/api/projects/{pid}/videos/linked",
            json={"video_ids": [cid]},
        )
        assert linked["linked_count"] == 1 and cid in [v["id"] for v in got]
        _, got = trip.write(
            "DELETE",
            f"/api/projects/{pid}/videos/{cid}/unlink",
            f"/api/projects/{pid}/videos/linked",
        )
        assert cid not in [v["id"] for v in got]

        # criteria
        configured, got = trip.write(
            "POST",
            f"/api/projects/{pid}/criteria/configure",
            f"/api/projects/{pid}/criteria",
            json={"min_precision": 0.5, "min_recall": 0.5},
        )
        assert configured == got and got["minPrecision"] == 0.5

        # annotations
        body = {"frame_number": 3, "timestamp": 0.3, "vru_type": "pedestrian", "bounding_box": BOX}
        annotation, got = trip.write(
            "POST",
            f"/api/videos/{vid}/annotations",
            lambda body: f"/api/annotations/{body['id']}",
            json=body,
        )
        aid = annotation["id"]
        assert annotation == got
        rows = [{**body, "frame_number": f, "timestamp": f / 10} for f in (0, 6)]
        _, got = trip.write(
            "POST",
            f"/api/videos/{vid}/annotations/bulk",
            f"/api/videos/{vid}/annotations",
            json=rows,
        )
        assert len(got) == 3
        one = f"/api/annotations/{aid}"
        for method, path, kwargs in (
            ("PUT", one, {"json": {"notes": "checked"}}),
            ("PATCH", f"{one}/validate", {"json": {"validated": True}}),
            ("POST", f"{one}/revert", {"json": {"version": 2}}),
        ):
            answered, got = trip.write(method, path, one, **kwargs)
            assert answered == got, (method, path)
        _, got = trip.write("DELETE", one, one)
        assert got is None
        restored, got = trip.write("POST", f"{one}/restore", one)
        assert restored == got
        exported = trip.client.get(f"/api/videos/{vid}/annotations/export?format=json")
        other, _ = upload(
            trip, f"/api/projects/{pid}/videos", write_video(tmp_path / "o.mp4", size=(640, 480))
        )
        imported, got = trip.write(
            "POST",
            f"/api/videos/{other['id']}/annotations/import",
            f"/api/videos/{other['id']}/annotations",
            params={"format": "json"},
            files={"file": ("a.json", exported.content)},
        )
        assert imported["imported"] == len(got) == 3

        # annotation sessions
        created, got = trip.write(
            "POST",
            "/api/annotation-sessions",
            lambda body: f"/api/annotation-sessions/{body['id']}",
            json={"video_id": vid, "project_id": pid},
        )
        asid = created["id"]
        assert created == got
        updated, got = trip.write(
            "PUT",
            f"/api/annotation-sessions/{asid}",
            f"/api/annotation-sessions/{asid}",
            json={"status": "paused", "current_frame": 12},
        )
        assert updated == got and got["currentFrame"] == 12

        # test sessions, detections, evaluation
        new = {"name": "run", "projectId": pid, "videoId": vid}
        session_of = lambda body: f"/api/test-sessions/{body['id']}"  # noqa: E731
        ts, got = trip.write("POST", "/api/test-sessions", session_of, json=new)
        sid = ts["id"]
        assert ts == got
        started, got = trip.write(
            "POST", f"/api/test-sessions/{sid}/start", f"/api/test-sessions/{sid}"
        )
        assert started == got and got["status"] == "running"
        allowed, got = trip.write(
            "PUT",
            f"/api/test-sessions/{sid}/allowed-devices",
            f"/api/test-sessions/{sid}",
            json={"allowedDeviceIds": ["cam-1", "cam-2"]},
        )
        assert allowed == got and got["allowedDeviceIds"] == ["cam-1", "cam-2"]
        frame = {
            "deviceId": "cam-1",
            "sessionId": sid,
            "seq": 0,
            "frameNumber": 3,
            "timestamp": 0.3,
            "detections": [{"classLabel": "pedestrian", "confidence": 0.9, "box": BOX}],
        }
        _, got = trip.write(
            "POST", "/api/detection-events/batch", f"/api/test-sessions/{sid}", json=frame
        )
        assert got["frameCount"] == 1
        single = {
            "device_id": "cam-2",
            "test_session_id": sid,
            "timestamp": 0.6,
            "frame_number": 6,
            "confidence": 0.8,
            "class_label": "pedestrian",
            "bounding_box": BOX,
        }
        _, got = trip.write(
            "POST", "/api/detection-events", f"/api/test-sessions/{sid}/detections", json=single
        )
        assert got["total_detections"] == 2
        paused, got = trip.write(
            "POST", f"/api/test-sessions/{sid}/pause", f"/api/test-sessions/{sid}"
        )
        assert paused == got and got["status"] == "paused"
        resumed, got = trip.write(
            "POST", f"/api/test-sessions/{sid}/resume", f"/api/test-sessions/{sid}"
        )
        assert resumed == got and got["status"] == "running"
        stopped, got = trip.write(
            "POST", f"/api/test-sessions/{sid}/stop", f"/api/test-sessions/{sid}"
        )
        assert stopped == got and got["status"] == "completed"
        done_ts, _ = trip.write("POST", "/api/test-sessions", session_of, json=new)
        done, got = trip.write(
            "POST",
            f"/api/test-sessions/{done_ts['id']}/complete",
            f"/api/test-sessions/{done_ts['id']}",
        )
        assert done == got and got["status"] == "completed"
        evaluated, got = trip.write(
            "POST", f"/api/test-sessions/{sid}/evaluate", f"/api/test-sessions/{sid}/results"
        )
        assert evaluated["evaluationId"] == got["evaluationId"]
        other_ts, _ = trip.write("POST", "/api/test-sessions", session_of, json=new)
        failed, got = trip.write(
            "POST",
            f"/api/test-sessions/{other_ts['id']}/fail",
            f"/api/test-sessions/{other_ts['id']}",
            json={"reason": "camera lost"},
        )
        assert failed == got and got["status"] == "failed"
        # the same handlers under EnhancedTestExecution.tsx's spelling
        page = {"name": "page", "projectId": pid, "videoIds": [vid], "config": {}}
        by_page = lambda body: f"/api/sessions/{body['id']}"  # noqa: E731
        ps, got = trip.write("POST", "/api/sessions", by_page, "/api/sessions", json=page)
        assert ps == got and got["status"] == "pending"
        psid = ps["id"]
        for move, status in (("start", "running"), ("stop", "completed")):
            moved, got = trip.write("POST", f"/api/sessions/{psid}/{move}", f"/api/sessions/{psid}")
            assert moved == got and got["status"] == status
        gone, got = trip.write(
            "DELETE", f"/api/sessions/{psid}", f"/api/sessions/{psid}", "/api/sessions"
        )
        assert gone == got and got["status"] == "deleted"
        assert psid not in [s["id"] for s in trip.client.get("/api/sessions").json()]
        other_gone, got = trip.write(
            "DELETE", f"/api/test-sessions/{done_ts['id']}", f"/api/test-sessions/{done_ts['id']}"
        )
        assert other_gone == got and got["status"] == "deleted"
        executed, got = trip.write(
            "POST", f"/api/projects/{pid}/execute-test", f"/api/test-sessions?projectId={pid}"
        )
        assert executed["session_id"] in [s["id"] for s in got]

        # devices
        devices = "/api/admin/devices"
        added, got = trip.write("POST", devices, devices, json={"name": "cam-w"})
        assert added["user"] == "cam-w" and [d["deviceId"] for d in got] == ["cam-w"]
        rotated, got = trip.write("POST", f"{devices}/cam-w/rotate", devices)
        assert rotated["password"] != added["password"] and got[0]["updatedAt"]
        disabled, got = trip.write(
            "POST", f"{devices}/cam-w/disable", devices, json={"reason": "lost"}
        )
        assert disabled == got[0] and got[0]["status"] == "disabled"

        # deletions
        _, got = trip.write("DELETE", f"/api/videos/{other['id']}", f"/api/videos/{other['id']}")
        assert got is None
        # a project with test sessions is kept (their evidence); one without is deleted
        spare, _ = trip.write("POST", "/api/projects", by_id, json=PROJECT)
        owned, _ = upload(trip, f"/api/projects/{spare['id']}/videos", clip)
        _, got = trip.write(
            "DELETE",
            f"/api/projects/{spare['id']}",
            f"/api/projects/{spare['id']}",
            f"/api/videos/{owned['id']}",
        )
        assert got is None
        assert trip.client.get(f"/api/videos/{owned['id']}").status_code == 404

        # principals and tokens
        principal, got = trip.write(
            "POST",
            "/api/admin/principals",
            "/api/admin/principals",
            json={"name": "ada", "role": "annotator"},
        )
        assert [principal] == got
        role, got = trip.write(
            "PUT",
            "/api/admin/principals/ada/role",
            "/api/admin/principals",
            json={"role": "viewer"},
        )
        assert [role] == got and role["role"] == "viewer"
        token, got = trip.write(
            "POST", "/api/admin/tokens", "/api/admin/tokens", json={"name": "t", "principal": "ada"}
        )
        assert [token["details"]] == got
        revoked, got = trip.write(
            "POST", f"/api/admin/tokens/{token['details']['id']}/revoke", "/api/admin/tokens"
        )
        assert [revoked] == got and revoked["revokedAt"]

    assert all(trip.waited), "a write waited for nothing"
