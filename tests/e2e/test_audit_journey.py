"""Auditors' reads through the API on the real store: history and as-of for every aggregate
type, the global log (cursor, filters, NDJSON), bad inputs, and a v1 event read as v2."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
import psycopg
import pytest
from litestar.testing import TestClient

from commands.application import Verity
from domain.events import EventMeta, recorded_as
from domain.limits import MAX_AUDIT_PAGE
from domain.projects import CENTRAL_STORE_ID, CameraView, Project, SignalType
from domain.videos import Video
from projections.envelopes import envelope
from projections.live_messages import stored_event_messages
from tests.audit_aggregates import SAMPLES
from tests.conftest import settings_for
from tests.e2e.helpers import api_client
from verity.audit_commands import history_command, log_command, show_command

pytestmark = pytest.mark.e2e

ACTOR = "audit-journey"


@pytest.fixture(scope="module")
def client(
    database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient[Any]]:
    """One app for the module, without the workers that would add events of their own."""
    settings = settings_for(
        database_url,
        nats_url,
        tmp_path_factory.mktemp("audit"),
        serve_ingest=False,
        serve_relay=False,
        serve_evaluator=False,
        serve_video=False,
        serve_detector=False,
    )
    with api_client(settings) as test_client:
        yield test_client


def store_of(client: TestClient[Any]) -> Verity:
    app: Verity = client.app.state.services.app
    return app


def committed(client: TestClient[Any], build: Any, actor: str = ACTOR) -> Any:
    """Build an aggregate (its events recorded as `actor`) and store it."""
    with recorded_as(EventMeta(actor=actor, correlation_id=uuid4())):
        aggregate = build()
    store_of(client).commit(aggregate)
    return aggregate


@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda c: c.__name__)
def test_every_aggregate_type_has_history_and_state_as_of(
    client: TestClient[Any], kind: type[Any]
) -> None:
    build, changed_path = SAMPLES[kind]
    aggregate = committed(client, build)
    ident = aggregate.id

    history = client.get(f"/api/audit/aggregates/{ident}/history")
    assert history.status_code == 200, history.text
    body = history.json()
    entries = body["entries"]
    assert [e["version"] for e in entries] == list(range(1, aggregate.version + 1))
    assert body["aggregateType"] == entries[0]["event"]["aggregateType"]
    assert all(e["event"]["actor"] == ACTOR for e in entries)
    assert all(e["event"]["aggregateId"] == str(ident) for e in entries)
    assert entries[0]["changes"], "the first version shows every field appearing"
    assert all(c["before"] is None for c in entries[0]["changes"])
    if changed_path is not None:
        paths = {c["path"]: c for c in entries[1]["changes"]}
        assert changed_path in paths, paths
        change = paths[changed_path]
        assert change["before"] != change["after"]

    first = client.get(f"/api/audit/aggregates/{ident}", params={"asOf": "1"})
    now = client.get(f"/api/audit/aggregates/{ident}")
    assert first.status_code == now.status_code == 200, (first.text, now.text)
    assert first.json()["version"] == 1
    assert now.json()["version"] == now.json()["latestVersion"] == aggregate.version
    if changed_path is not None:
        assert first.json()["state"] != now.json()["state"]
    by_time = client.get(
        f"/api/audit/aggregates/{ident}", params={"asOf": entries[0]["event"]["time"]}
    )
    assert by_time.status_code == 200 and by_time.json()["state"] == first.json()["state"]


def test_unknown_ids_and_bad_points_are_refused_by_name(client: TestClient[Any]) -> None:
    project = committed(client, _project)
    unknown = uuid4()
    assert client.get(f"/api/audit/aggregates/{unknown}").status_code == 404
    assert client.get(f"/api/audit/aggregates/{unknown}/history").status_code == 404
    base = f"/api/audit/aggregates/{project.id}"
    for junk in ("yesterday", "-1", "0", "1.5", "2026-13-01", "1\x00", "9" * 30, "x" * 100):
        response = client.get(base, params={"asOf": junk})
        assert response.status_code == 422, (junk, response.text)
        assert "asOf" in response.json()["detail"]
    assert client.get(base, params={"asOf": "99"}).status_code == 404
    before = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert client.get(base, params={"asOf": before}).status_code == 404
    naive = datetime.now(UTC).replace(tzinfo=None).isoformat()
    assert client.get(base, params={"asOf": naive}).json()["version"] == 1


def _project(name: str = "audited") -> Project:
    return Project(
        name=name,
        camera_model="cam",
        camera_view=CameraView.FRONT_FACING_VRU,
        signal_type=SignalType.GPIO,
    )


def _all_pages(client: TestClient[Any], **params: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = params.pop("after", 0)
    while True:
        page = client.get("/api/audit/events", params={**params, "after": after})
        assert page.status_code == 200, page.text
        body = page.json()
        events.extend(body["events"])
        if not body["hasMore"]:
            return events
        assert body["nextAfter"] > after
        after = body["nextAfter"]


def test_the_log_pages_by_cursor_and_filters(client: TestClient[Any]) -> None:
    mine = f"filter-{uuid4().hex[:8]}"
    projects = [committed(client, lambda i=i: _project(f"p{i}"), actor=mine) for i in range(7)]
    ids = {str(p.id) for p in projects}

    by_actor = _all_pages(client, actor=mine, limit=3)
    assert [e["aggregateId"] for e in by_actor] == [str(p.id) for p in projects]
    positions = [e["position"] for e in by_actor]
    assert positions == sorted(set(positions))
    first = by_actor[0]
    assert first["type"] == "created" and first["aggregateType"] == "project"
    assert first["topic"] == "domain.projects:Project.Created"
    assert first["payload"]["cameraView"] == "Front-facing VRU"
    assert first["correlationId"] and first["version"] == 1 and first["time"]

    one = _all_pages(client, aggregateId=str(projects[2].id))
    assert [e["aggregateId"] for e in one] == [str(projects[2].id)]
    for spelled in ("project", "Project"):
        typed = _all_pages(client, aggregateType=spelled, limit=1000)
        assert ids <= {e["aggregateId"] for e in typed}
        assert {e["aggregateType"] for e in typed} == {"project"}
    for spelled in ("Project.Created", "project.created", "domain.projects:Project.Created"):
        created = _all_pages(client, eventType=spelled, actor=mine)
        assert len(created) == 7, spelled
    assert _all_pages(client, eventType="project.updated", actor=mine) == []

    start, end = by_actor[1]["time"], by_actor[3]["time"]
    ranged = _all_pages(client, actor=mine, **{"from": start, "to": end})
    assert [e["aggregateId"] for e in ranged] == [str(p.id) for p in projects[1:4]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert _all_pages(client, **{"from": future}) == []
    everything = {"from": "0001-01-01T00:00:00+00:00", "to": "9999-12-31T23:59:59+00:00"}
    assert len(_all_pages(client, actor=mine, **everything)) == 7


def test_paging_under_concurrent_appends_has_no_gaps_or_repeats(
    client: TestClient[Any], database_url: str
) -> None:
    app = store_of(client)
    stop = threading.Event()

    def append() -> None:
        while not stop.is_set():
            with recorded_as(EventMeta(actor="writer")):
                app.commit(_project("busy"), _project("busy"))

    writer = threading.Thread(target=append)
    writer.start()
    seen: list[int] = []
    try:
        time.sleep(0.2)
        after = 0
        for _ in range(40):
            page = client.get("/api/audit/events", params={"after": after, "limit": 7})
            assert page.status_code == 200, page.text
            body = page.json()
            seen.extend(e["position"] for e in body["events"])
            after = body["nextAfter"]
    finally:
        stop.set()
        writer.join()
    with psycopg.connect(database_url) as conn:
        stored = [
            r[0]
            for r in conn.execute(
                "SELECT notification_id FROM verity_events WHERE notification_id <= %s ORDER BY 1",
                (after,),
            )
        ]
    assert len(seen) == len(set(seen)), "repeats"
    missing, extra = sorted(set(stored) - set(seen)), sorted(set(seen) - set(stored))
    assert (missing, extra) == ([], []), f"of {len(stored)} stored"
    assert seen == stored


def test_ndjson_streams_a_range_larger_than_one_page(client: TestClient[Any]) -> None:
    mine = f"bulk-{uuid4().hex[:8]}"
    app = store_of(client)
    with recorded_as(EventMeta(actor=mine)):
        batch = [_project(f"bulk {i}") for i in range(MAX_AUDIT_PAGE + 150)]
    app.commit(*batch)
    for how in ({"params": {"format": "ndjson"}}, {"headers": {"Accept": "application/x-ndjson"}}):
        kwargs: dict[str, Any] = {"params": {"actor": mine}}
        kwargs["params"].update(how.get("params", {}))
        kwargs["headers"] = how.get("headers", {})
        response = client.get("/api/audit/events", **kwargs)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert [e["aggregateId"] for e in lines] == [str(p.id) for p in batch]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "abc"}, "after"),
        ({"after": "-5"}, "after"),
        ({"after": "9" * 40}, "after"),
        ({"after": "1\x00"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1000000"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"aggregateType": "spaceship"}, "aggregateType"),
        ({"aggregateId": "not-a-uuid"}, "aggregateId"),
        ({"eventType": "video.exploded"}, "eventType"),
        ({"actor": "a\x00b"}, "actor"),
        ({"actor": "a" * 1000}, "actor"),
        ({"from": "last tuesday"}, "from"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
    ],
)
def test_bad_log_inputs_are_422_naming_the_field(
    client: TestClient[Any], params: dict[str, str], field: str
) -> None:
    for extra in ({}, {"format": "ndjson"}):
        response = client.get("/api/audit/events", params={**params, **extra})
        assert response.status_code == 422, response.text
        assert field in response.json()["detail"]


def _v1_upload(video_id: UUID, size: int) -> bytes:
    """Video.Uploaded exactly as a build before class_version 2 stored it."""
    state = {
        "timestamp": datetime.now(UTC),
        "meta": {"actor": "old-build", "correlation_id": None, "causation_id": None},
        "originator_topic": "domain.videos:Video",
        "project_id": CENTRAL_STORE_ID,
        "filename": f"{video_id}.mp4",
        "original_name": "old.mp4",
        "size": size,
        "sha256": "ab" * 32,
    }
    return msgspec.json.encode(state)


def test_a_stored_v1_upload_is_loaded_projected_and_exported_as_v2(
    client: TestClient[Any], database_url: str
) -> None:
    video_id = uuid4()
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE verity_events IN EXCLUSIVE MODE")
        row = conn.execute(
            "INSERT INTO verity_events (originator_id, originator_version, topic, state)"
            " VALUES (%s, 1, 'domain.videos:Video.Uploaded', %s) RETURNING notification_id",
            (video_id, _v1_upload(video_id, 4321)),
        ).fetchone()
        conn.execute("SELECT pg_notify('verity_events', '')")
    assert row is not None
    position = int(row[0])
    app = store_of(client)

    video = app.load(Video, video_id)
    assert video.size_bytes == 4321

    deadline = time.monotonic() + 10
    while (response := client.get(f"/api/videos/{video_id}")).status_code != 200:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)
    assert response.json()["size"] == response.json()["fileSize"] == 4321

    logged = client.get("/api/audit/events", params={"aggregateId": str(video_id)}).json()
    payload = logged["events"][0]["payload"]
    assert payload["sizeBytes"] == 4321 and "size" not in payload
    state = client.get(f"/api/audit/aggregates/{video_id}", params={"asOf": "1"}).json()
    assert state["state"]["sizeBytes"] == 4321

    event = app.mapper.to_domain_event(app.recorder.select_events(video_id)[0])
    relayed = envelope(event, position)
    assert relayed.data is not None and relayed.data["sizeBytes"] == 4321
    messages = stored_event_messages(relayed)
    assert messages and all(b'"sizeBytes":4321' in body for _room, body in messages)


def test_cli_reads_the_same_way(client: TestClient[Any], database_url: str) -> None:
    project = committed(client, _project, actor="cli-actor")
    args = argparse.Namespace(
        after=None,
        aggregate_type="project",
        aggregate_id=str(project.id),
        event_type=None,
        actor=None,
        since=None,
        until=None,
        ndjson=True,
        id=str(project.id),
        json=False,
        as_of="1",
    )
    out = io.StringIO()
    asyncio.run(log_command(database_url, args, out))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    api = client.get("/api/audit/events", params={"aggregateId": str(project.id)}).json()
    assert lines == api["events"]
    out = io.StringIO()
    asyncio.run(history_command(database_url, args, out))
    assert "project/" in out.getvalue() and "    name: null -> " in out.getvalue()
    out = io.StringIO()
    asyncio.run(show_command(database_url, args, out))
    shown = json.loads(out.getvalue())
    assert shown == client.get(f"/api/audit/aggregates/{project.id}?asOf=1").json()


def test_an_event_this_build_cannot_decode_is_listed_not_fatal(
    client: TestClient[Any], database_url: str
) -> None:
    """A topic from a newer build, and a known topic whose state no upcaster explains."""
    newer = msgspec.json.encode(
        {"timestamp": datetime.now(UTC), "meta": {"actor": "future-build"}, "x": 1}
    )
    rows = [
        (uuid4(), "domain.future:Thing.Happened", newer),
        (uuid4(), "domain.videos:Video.Linked", b"{"),
    ]
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE verity_events IN EXCLUSIVE MODE")
        for ident, topic, state in rows:
            conn.execute(
                "INSERT INTO verity_events (originator_id, originator_version, topic, state)"
                " VALUES (%s, 1, %s, %s)",
                (ident, topic, state),
            )
    for ident, topic, _state in rows:
        page = client.get("/api/audit/events", params={"aggregateId": str(ident)})
        assert page.status_code == 200, page.text
        [event] = page.json()["events"]
        assert event["topic"] == topic and event["summarised"]
        assert event["payload"]["undecodable"]
    newest = client.get("/api/audit/events", params={"actor": "future-build"}).json()
    assert [e["aggregateId"] for e in newest["events"]] == [str(rows[0][0])]
