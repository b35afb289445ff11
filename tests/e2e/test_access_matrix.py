"""The route x role matrix, generated from the application's own route table.

Every route is called (with a representative request: path parameters filled, an empty JSON
body for writes) by a token of every role and by an anonymous caller where anonymous access
is off. A role the table grants must never get 401/403; one it does not must get 403 with
`detail`; the anonymous caller 401. WebSockets: connecting takes READ."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.handlers import HTTPRouteHandler
from litestar.testing import TestClient

from api.policy import POLICY, is_auto_options, policy_key
from domain.access import GRANTS, Permission, Role
from tests.conftest import settings_for
from tests.e2e.identity import access_client, bearer, cli_token

pytestmark = pytest.mark.e2e

PARAM = re.compile(r"\{(\w+):(\w+)\}")


def _fill(path: str) -> str:
    return PARAM.sub(lambda m: str(uuid4()) if m.group(2) == "uuid" else "x", path)


@pytest.fixture(scope="module")
def matrix(
    database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient[Any], dict[Role, str]]]:
    settings = settings_for(database_url, nats_url, tmp_path_factory.mktemp("matrix"))
    tokens = {
        role: cli_token(settings, "--name", f"{role.value}-1", "--role", role) for role in Role
    }
    with access_client(settings, workers=(), with_projections=True) as client:
        yield client, tokens


def http_routes(client: TestClient[Any]) -> list[tuple[str, str, str]]:
    """(method, path, policy key) of every route the app has, OPTIONS answers aside."""
    found = []
    for route in client.app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if isinstance(handler, HTTPRouteHandler) and not is_auto_options(handler):
                key = policy_key(handler)
                assert key in POLICY, f"{route.path} has no access policy"
                method = "GET" if "GET" in handler.http_methods else min(handler.http_methods)
                found.append((method, route.path, str(key)))
    return found


def test_every_route_answers_each_role_as_the_table_says(
    matrix: tuple[TestClient[Any], dict[Role, str]],
) -> None:
    client, tokens = matrix
    routes = http_routes(client)
    assert len(routes) > 80  # the whole API, not a sample
    wrong = []
    for method, path, key in routes:
        permission = POLICY[key]
        url = _fill(path)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        for role, token in tokens.items():
            r = client.request(method, url, json=body, headers=bearer(token))
            allowed = permission is None or permission in GRANTS[role]
            ok = r.status_code not in (401, 403) if allowed else r.status_code == 403
            if not ok or (r.status_code == 403 and "detail" not in r.json()):
                wrong.append(f"{role.value} {method} {path}: {r.status_code} {r.text[:120]}")
        r = client.request(method, url, json=body)
        expected_anonymous = r.status_code != 401 if permission is None else r.status_code == 401
        if not expected_anonymous or (permission is not None and "detail" not in r.json()):
            wrong.append(f"anonymous {method} {path}: {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


def _ws_outcome(client: TestClient[Any], url: str) -> str | int:
    """The first message's event, or the close code of a refused handshake."""
    try:
        with client.websocket_connect(url) as ws:
            return str(ws.receive_json(timeout=5)["event"])
    except WebSocketDisconnect as closed:
        return closed.code


def test_websocket_connections_need_read(
    matrix: tuple[TestClient[Any], dict[Role, str]],
) -> None:
    client, tokens = matrix
    for role, token in tokens.items():
        expected = "connection_status" if Permission.READ in GRANTS[role] else 4403
        assert _ws_outcome(client, f"/ws?token={token}") == expected, role
    assert _ws_outcome(client, "/ws") == 4401
    assert _ws_outcome(client, "/ws?token=vrt_nonsense") == 4401
