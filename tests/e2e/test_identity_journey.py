"""Principals and tokens end to end: the CLI and the admin routes make them, every request is
authenticated against the read model (a revoked token fails on its next request), roles
decide, and every stored event names the principal that caused it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import TestClient

from api.access import AccessConfig
from commands.tokens import PREFIX, digest
from domain.access import Role
from domain.tokens import ApiToken
from tests.e2e.identity import access_client, bearer, cli, cli_token
from tests.e2e.test_test_sessions_journey import PROJECT
from verity.settings import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(settings: Settings) -> Any:
    with access_client(settings, workers=()) as c:
        yield c


def test_tokens_roles_and_revocation(client: TestClient[Any], settings: Settings) -> None:
    assert "user:ada added" in cli(settings, "principals", "add", "ada", "--role", "annotator")
    cli(settings, "principals", "add", "ci", "--role", "viewer", "--service")
    assert "ci now has role analyst" in cli(settings, "principals", "role", "ci", "analyst")
    listed = cli(settings, "principals", "list").splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["user:ada", "annotator"],
        ["service:ci", "analyst"],
    ]
    admin = cli_token(settings, "--name", "root", "--role", "admin", "--expires", "30")
    ada = cli_token(settings, "--name", "ada-laptop", "--principal", "ada")
    assert admin.startswith(f"{PREFIX}_") and admin != ada

    anonymous = client.get("/api/projects")
    assert anonymous.status_code == 401 and "authentication required" in anonymous.json()["detail"]
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert client.get("/health").status_code == 200
    bad = client.get("/api/projects", headers=bearer(admin[:-2] + "xx"))
    assert bad.status_code == 401 and bad.json()["detail"] == "invalid token"
    assert client.get("/api/projects", headers=bearer("nonsense")).status_code == 401
    basic = client.get("/api/projects", headers={"Authorization": "Basic YWRhOnB3"})
    assert basic.status_code == 401 and "Bearer" in basic.json()["detail"]

    listed = client.get("/api/admin/principals", headers=bearer(admin))
    assert [(p["name"], p["role"], p["kind"]) for p in listed.json()] == [
        ("ada", "annotator", "user"),
        ("ci", "analyst", "service"),
    ]
    made = client.post(
        "/api/admin/tokens", json={"name": "wall", "role": "viewer"}, headers=bearer(admin)
    )
    assert made.status_code == 201, made.text
    viewer, viewer_id = made.json()["token"], made.json()["details"]["id"]
    assert "digest" not in made.json()["details"]
    tokens = client.get("/api/admin/tokens", headers=bearer(admin)).json()
    assert {t["name"] for t in tokens} == {"root", "ada-laptop", "wall"}
    assert not any(viewer in str(t) or "digest" in t for t in tokens)

    assert client.get("/api/projects", headers=bearer(viewer)).status_code == 200
    refused = client.post("/api/projects", json=PROJECT, headers=bearer(viewer))
    assert refused.status_code == 403
    assert refused.json()["detail"] == "token:wall (role viewer) lacks permission 'manage_projects'"
    assert client.get("/api/admin/tokens", headers=bearer(ada)).status_code == 403

    created = client.post("/api/projects", json=PROJECT, headers=bearer(ada))
    assert created.status_code == 200, created.text

    changed = client.put(
        "/api/admin/principals/ada/role", json={"role": "viewer"}, headers=bearer(admin)
    )
    assert changed.status_code == 200 and changed.json()["role"] == "viewer"
    assert client.post("/api/projects", json=PROJECT, headers=bearer(ada)).status_code == 403

    revoked = client.post(f"/api/admin/tokens/{viewer_id}/revoke", headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revokedAt"]
    gone = client.get("/api/projects", headers=bearer(viewer))
    assert gone.status_code == 401 and gone.json()["detail"] == "token revoked"
    again = client.post(f"/api/admin/tokens/{viewer_id}/revoke", headers=bearer(admin))
    assert again.status_code == 409

    ada_id = next(t["id"] for t in tokens if t["name"] == "ada-laptop")
    assert "revoked" in cli(settings, "tokens", "revoke", ada_id)
    after_cli = client.get("/api/projects", headers=bearer(ada))
    assert after_cli.status_code == 401 and after_cli.json()["detail"] == "token revoked"
    listing = cli(settings, "tokens", "list")
    assert f"{ada_id}\tada-laptop\tprincipal ada" in listing and "revoked" in listing


def test_an_expired_token_is_refused(client: TestClient[Any]) -> None:
    services = client.app.state.services
    token_id, secret = uuid4(), "s" * 43
    past = datetime.now(UTC) - timedelta(seconds=1)
    services.app.commit(ApiToken.issue(token_id, "old", digest(secret), Role.ADMIN, None, past))
    token = f"{PREFIX}_{token_id.hex}_{secret}"
    deadline = time.monotonic() + 10
    while (answer := client.get("/api/projects", headers=bearer(token))).json()[
        "detail"
    ] != "token expired":
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)
    assert answer.status_code == 401


def test_bad_input_to_the_admin_routes_names_the_field(
    client: TestClient[Any], settings: Settings
) -> None:
    admin = cli_token(settings, "--name", "root2", "--role", "admin")
    for body, field in [
        ({"name": "x y", "role": "viewer"}, "name"),
        ({"name": "a" * 101, "role": "viewer"}, "name"),
        ({"name": "ok", "role": "root"}, "role"),
        ({"name": "ok", "role": "viewer", "expiresDays": 0}, "expires"),
        ({"name": "ok", "role": "viewer", "principal": "nobody"}, "role"),
        ({"name": "ok"}, "role"),
    ]:
        r = client.post("/api/admin/tokens", json=body, headers=bearer(admin))
        assert r.status_code in (400, 422), (body, r.text)
        assert field in r.json()["detail"].lower().replace("_", ""), (body, r.text)
    missing = client.post(
        "/api/admin/tokens", json={"name": "ok", "principal": "nobody"}, headers=bearer(admin)
    )
    assert missing.status_code == 404
    twice = [
        client.post(
            "/api/admin/principals", json={"name": "bob", "role": "viewer"}, headers=bearer(admin)
        ).status_code
        for _ in range(2)
    ]
    assert twice == [201, 409]


def test_writes_are_limited_per_principal(settings: Settings) -> None:
    with access_client(settings, AccessConfig(anonymous_role=None, writes_per_minute=3)) as c:
        first = bearer(cli_token(settings, "--name", "busy", "--role", "admin"))
        other = bearer(cli_token(settings, "--name", "calm", "--role", "admin"))
        answers = [c.post("/api/projects", json={}, headers=first).status_code for _ in range(4)]
        assert answers == [422, 422, 422, 429]
        limited = c.post("/api/projects", json={}, headers=first)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "too many writes" in limited.json()["detail"]
        assert c.get("/api/projects", headers=first).status_code == 200  # reads are not counted
        assert c.post("/api/projects", json={}, headers=other).status_code == 422
