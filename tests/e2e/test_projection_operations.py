"""Read-model operations on the real servers: a blue-green rebuild serves the old rows until
one transaction swaps in the new ones; a second rebuild is refused; a rebuild that dies leaves
the live model as it was; a dropped table is rebuilt at start; /health says when a read model
is missing or behind; `verity replay` shows the read models as they were at a past position.

Sizes are small by default; VERITY_FULL_REBUILD_TEST=1 rebuilds a read model of 100k events.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import psycopg
import pytest
from psycopg import sql

from commands.application import Verity
from domain.annotations import Annotation, BoundingBox
from domain.vru import VruType
from projections.blue_green import RebuildBusy, rebuild_blue_green, shadow_schema
from projections.schema_build import Progress
from storage.read_model_schema import REBUILD_LOCK_CLASS
from tests.e2e.helpers import api_client, next_event
from tests.e2e.test_projection_failures_journey import wait_until
from tests.integration.test_annotation_projections import new_video
from verity.bootstrap import PROJECTIONS
from verity.cli import main
from verity.settings import Settings

pytestmark = pytest.mark.e2e

FULL = os.environ.get("VERITY_FULL_REBUILD_TEST") == "1"
EVENTS = 100_000 if FULL else 3_000
"""Annotations in the rebuilt read model."""
ANNOTATIONS = "annotations_v1"


def seed_annotations(app: Verity, video: UUID, count: int) -> list[Annotation]:
    """`count` annotations, stored 1000 to a transaction (fast: no HTTP)."""
    made: list[Annotation] = []
    for start in range(0, count, 1000):
        batch = [
            Annotation(
                video_id=video,
                frame_number=i % 100,
                seconds=(i % 100) / 10,
                vru_type=VruType.PEDESTRIAN if i % 2 else VruType.CYCLIST,
                box=BoundingBox(1 + i % 50, 1, 5, 5),
            )
            for i in range(start, min(count, start + 1000))
        ]
        app.commit(*batch)
        made += batch
    return made


def rows(url: str, table: str, schema: str = "public") -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        found = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, table)))
        return sorted(found.fetchall(), key=repr)  # every column decides: no ties


def tracked(url: str, name: str, schema: str = "public") -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            sql.SQL("SELECT position FROM {} WHERE name = %s").format(
                sql.Identifier(schema, "tracking")
            ),
            (name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def schema_exists(url: str, schema: str) -> bool:
    with psycopg.connect(url) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            is not None
        )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No workers: only the test writes events, so positions stand still when it says."""
    return msgspec.structs.replace(
        settings, serve_video=False, serve_detector=False, serve_evaluator=False
    )


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    assert settings.database_url is not None and settings.nats_url is not None
    monkeypatch.setenv("VERITY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("VERITY_NATS_URL", settings.nats_url)
    monkeypatch.setenv("VERITY_DATA_DIR", str(Path(settings.data_dir)))
    monkeypatch.setenv("VERITY_NATS_PREFIX", settings.nats_prefix)
    return settings


@pytest.fixture
def rebuild_lock(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """A session holding annotations_v1's rebuild lock, as another process would."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (REBUILD_LOCK_CLASS, ANNOTATIONS))
        yield conn


def test_blue_green_rebuild_serves_the_old_rows_then_the_new_identical_to_live(
    settings: Settings,
) -> None:
    url = settings.database_url
    assert url is not None
    with api_client(settings) as client:
        services = client.app.state.services
        app: Verity = services.app
        made = seed_annotations(app, new_video(app), EVENTS)
        wait_until(services.read_side, app.head())
        live = rows(url, "rm_annotations")
        assert len(live) == EVENTS
        # A read-model bug, say, left one row wrong: the rebuild is what puts it right.
        probe = made[0].id
        with psycopg.connect(url) as conn:
            conn.execute("UPDATE rm_annotations SET notes = 'stale' WHERE id = %s", (probe,))
        assert client.get(f"/api/annotations/{probe}").json()["notes"] == "stale"

        with client.websocket_connect("/ws") as ws:
            ws.receive_text()  # connection_status
            ws.send_text(json.dumps({"action": "join", "room": "admin"}))
            assert json.loads(ws.receive_text())["event"] == "joined"

            started = client.post(f"/api/admin/projections/{ANNOTATIONS}/rebuild")
            assert started.status_code == 202, started.text
            follow = started.json()["statusUrl"]
            assert follow == f"/api/admin/projections/{ANNOTATIONS}/rebuild"
            again = client.post(f"/api/admin/projections/{ANNOTATIONS}/rebuild")
            assert again.status_code == 409, again.text
            assert "already" in again.json()["detail"]

            seen: list[str | None] = []
            states: set[str] = set()
            while True:
                state = client.get(follow).json()["state"]
                got = client.get(f"/api/annotations/{probe}")
                assert got.status_code == 200, got.text
                seen.append(got.json()["notes"])
                states.add(state)
                if state != "running":
                    break
            assert state == "done", client.get(follow).text
            messages = []
            while not messages or messages[-1]["data"]["state"] == "running":
                message = json.loads(ws.receive_text(timeout=10))
                assert message["event"] == "projection_rebuild_progress"
                messages.append(message)
        # Old rows while the new ones filled, then the new: never an error, never back.
        assert seen[0] == "stale" and "running" in states
        flipped = seen.index(None) if None in seen else len(seen)
        assert all(s == "stale" for s in seen[:flipped]) and all(s is None for s in seen[flipped:])
        assert client.get(f"/api/annotations/{probe}").json()["notes"] is None
        assert rows(url, "rm_annotations") == live
        assert tracked(url, ANNOTATIONS) == app.head()
        assert not schema_exists(url, shadow_schema(ANNOTATIONS))
        last = messages[-1]["data"]
        assert last["name"] == ANNOTATIONS and last["state"] == "done"
        assert messages[-1]["room"] == "admin"

        # The live model moves on from the swapped-in tables.
        later = seed_annotations(app, made[0].video_id, 3)
        wait_until(services.read_side, app.head())
        assert client.get(f"/api/annotations/{later[-1].id}").status_code == 200
        assert len(rows(url, "rm_annotations")) == EVENTS + 3
        status = {p["name"]: p for p in client.get("/api/admin/projections").json()["projections"]}
        assert status[ANNOTATIONS]["state"] == "live"
        assert status[ANNOTATIONS]["lag"] == 0 and status[ANNOTATIONS]["lagSeconds"] == 0
        assert status[ANNOTATIONS]["eventsPerSecond"] > 0


def test_a_rebuild_held_elsewhere_is_refused_over_http_and_by_the_cli(
    cli_env: Settings,
    rebuild_lock: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with api_client(cli_env) as client:
        status = {p["name"]: p for p in client.get("/api/admin/projections").json()["projections"]}
        assert status[ANNOTATIONS]["state"] == "rebuilding"
        refused = client.post(f"/api/admin/projections/{ANNOTATIONS}/rebuild")
        assert refused.status_code == 409, refused.text
        unknown = client.post("/api/admin/projections/nope_v1/rebuild")
        assert unknown.status_code == 404 and "known" in unknown.json()["detail"]
    with pytest.raises(SystemExit) as exited:
        main(["rebuild", ANNOTATIONS])
    assert exited.value.code == 1
    assert f"{ANNOTATIONS}: not rebuilt: {ANNOTATIONS} is being rebuilt already" in (
        capsys.readouterr().out
    )


def test_the_cli_rebuilds_every_read_model_and_reports_over_websocket(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with api_client(cli_env) as client, client.websocket_connect("/ws") as ws:
        ws.receive_text()  # connection_status
        ws.send_text(json.dumps({"action": "join", "room": "admin"}))
        assert json.loads(ws.receive_text())["event"] == "joined"
        main(["rebuild"])  # all of them, side by side
        finished: dict[str, dict[str, Any]] = {}
        while len(finished) < len(PROJECTIONS):
            heard = next_event(ws, "projection_rebuild_progress", 10)
            assert heard["room"] == "admin"
            if heard["data"]["state"] != "running":
                finished[heard["data"]["name"]] = heard["data"]
    assert set(finished) == {cls.name for cls in PROJECTIONS}
    assert {d["state"] for d in finished.values()} == {"done"}
    assert all(d["position"] > 0 for d in finished.values())
    printed = capsys.readouterr().out
    assert all(f"{cls.name}: rebuilt up to" in printed for cls in PROJECTIONS)


def test_a_rebuild_that_dies_midway_leaves_the_live_model_serving(settings: Settings) -> None:
    url = settings.database_url
    assert url is not None
    with api_client(settings) as client:
        services = client.app.state.services
        app: Verity = services.app
        made = seed_annotations(app, new_video(app), 2_000)
        wait_until(services.read_side, app.head())
        before, position = rows(url, "rm_annotations"), tracked(url, ANNOTATIONS)
        runner = next(r for r in services.read_side.runners if r.name == ANNOTATIONS)

        def crash(p: Progress) -> None:
            if p.processed > 0:
                raise KeyboardInterrupt  # what Ctrl-C does to the CLI mid-way

        with pytest.raises(KeyboardInterrupt):
            rebuild_blue_green(url, runner.projection, runner.reader, runner.decode, 500, crash)
        assert client.get(f"/api/annotations/{made[7].id}").status_code == 200
        assert rows(url, "rm_annotations") == before
        assert tracked(url, ANNOTATIONS) == position
        assert not schema_exists(url, shadow_schema(ANNOTATIONS))
        # Its lock went with it: the next rebuild runs.
        done = rebuild_blue_green(url, runner.projection, runner.reader, runner.decode, 500)
        assert done.position == app.head()
        assert rows(url, "rm_annotations") == before


def test_the_rebuild_lock_refuses_a_second_rebuild_in_process(
    settings: Settings, rebuild_lock: psycopg.Connection[Any]
) -> None:
    url = settings.database_url
    assert url is not None
    with api_client(settings) as client:
        runner = next(
            r for r in client.app.state.services.read_side.runners if r.name == ANNOTATIONS
        )
        with pytest.raises(RebuildBusy):
            rebuild_blue_green(url, runner.projection, runner.reader, runner.decode, 500)


def test_a_dropped_read_model_is_reported_then_rebuilt_at_start(settings: Settings) -> None:
    url = settings.database_url
    assert url is not None
    with api_client(settings) as client:
        services = client.app.state.services
        app: Verity = services.app
        video = new_video(app)
        made = seed_annotations(app, video, 500)
        wait_until(services.read_side, app.head())
        assert client.get("/health").json()["status"] in ("healthy", "degraded")
        live = rows(url, "rm_annotations")
        with psycopg.connect(url) as conn:
            conn.execute("DROP TABLE rm_annotations")
        health = client.get("/health")
        assert health.status_code == 503, health.text
        assert any(
            "annotations_v1" in p and "rm_annotations" in p for p in health.json()["problems"]
        )
        status = {p["name"]: p for p in client.get("/api/admin/projections").json()["projections"]}
        assert status[ANNOTATIONS]["state"] == "missing"
        assert status[ANNOTATIONS]["missingTables"] == ["rm_annotations"]
    with api_client(settings) as client:  # a restart
        health = client.get("/health")
        assert health.status_code == 200, health.text
        got = client.get(f"/api/annotations/{made[3].id}")
        assert got.status_code == 200, got.text
        assert rows(url, "rm_annotations") == live
        assert len(client.get(f"/api/videos/{video}/annotations").json()) == 500


def test_health_is_unhealthy_while_a_read_model_is_far_behind(settings: Settings) -> None:
    url = settings.database_url
    assert url is not None
    settings = msgspec.structs.replace(settings, health_max_lag=20)
    with api_client(settings) as client:
        services = client.app.state.services
        app: Verity = services.app
        video = new_video(app)
        wait_until(services.read_side, app.head())
        assert client.get("/health").status_code == 200
        # Hold the annotations read model's tracking row: its runner waits, the log moves on.
        hold = psycopg.connect(url)
        hold.execute("SELECT 1 FROM tracking WHERE name = %s FOR UPDATE", (ANNOTATIONS,))
        try:
            seed_annotations(app, video, 50)
            time.sleep(0.5)
            health = client.get("/health")
            assert health.status_code == 503, health.text
            assert any("annotations_v1: " in p and "behind" in p for p in health.json()["problems"])
            status = {
                p["name"]: p for p in client.get("/api/admin/projections").json()["projections"]
            }
            assert status[ANNOTATIONS]["lag"] >= 50
            assert status[ANNOTATIONS]["lagSeconds"] > 0.4
        finally:
            hold.rollback()
            hold.close()
        wait_until(services.read_side, app.head())
        assert client.get("/health").status_code == 200


def test_replay_builds_every_read_model_as_it_was_at_a_past_position(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    url = cli_env.database_url
    assert url is not None
    tables = sorted({t for cls in PROJECTIONS for t in cls.tables})
    with api_client(cli_env) as client:
        services = client.app.state.services
        app: Verity = services.app
        project = client.post(
            "/api/projects",
            json={
                "name": "then",
                "cameraModel": "m",
                "cameraView": "Rear-facing VRU",
                "signalType": "GPIO",
            },
        ).json()
        video = new_video(app)
        made = seed_annotations(app, video, 300)
        wait_until(services.read_side, app.head())
        position = app.head()
        then = {t: rows(url, t) for t in tables}
        moment = datetime.now(UTC)
        time.sleep(0.05)
        # The history moves on: edits, deletions, a renamed project, more annotations.
        for a in made[:40]:
            a.validate(True)
        for a in made[40:50]:
            a.delete("wrong")
        app.commit(*made[:50])
        renamed = client.put(f"/api/projects/{project['id']}", json={"name": "now"})
        assert renamed.status_code == 200, renamed.text
        seed_annotations(app, video, 100)
        wait_until(services.read_side, app.head())
        assert rows(url, "rm_annotations") != then["rm_annotations"]

    main(["replay", "--until", str(position), "--schema", "audit_then"])
    assert "audit_then: every read model as at position" in capsys.readouterr().out
    for table in tables:
        assert rows(url, table, "audit_then") == then[table], table
    assert {tracked(url, cls.name, "audit_then") for cls in PROJECTIONS} == {position}

    main(["replay", "--until", moment.isoformat(), "--schema", "audit_moment"])
    assert {tracked(url, cls.name, "audit_moment") for cls in PROJECTIONS} == {position}
    assert rows(url, "rm_projects", "audit_moment") == then["rm_projects"]

    def refused(*argv: str) -> str:
        with pytest.raises(SystemExit) as exited:
            main(["replay", "--until", str(position), *argv])
        return str(exited.value.code)

    assert "reserved" in refused("--schema", "public", "--replace")
    assert "a-z" in refused("--schema", "Robert'); DROP TABLE verity_events;--")
    assert "--replace" in refused("--schema", "audit_then")
    assert "past the log's head" in refused("--schema", "later", "--until", "99999999")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA someone_elses")
    assert "not made by verity replay" in refused("--schema", "someone_elses", "--replace")
    main(["replay", "--until", "1", "--schema", "audit_then", "--replace"])
    assert rows(url, "rm_annotations", "audit_then") == []
