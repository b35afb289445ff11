"""Browser safety of an anonymous local Verity: CORS only for the listed origins (a preflight
from any other fails), a Host check against DNS rebinding, and the settings that build both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from api.access import AccessConfig
from api.app import create_app
from api.browser import allowed_hosts, origin_allowed
from domain.access import Role
from verity.access_settings import access_config, describe_access, is_loopback
from verity.settings import Settings

pytestmark = pytest.mark.unit

LOCAL = AccessConfig(allowed_hosts=allowed_hosts("127.0.0.1", 8000, ["verity.lan"]))


@asynccontextmanager
async def no_services() -> AsyncIterator[Any]:
    yield None


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    app = create_app(no_services, tmp_path, LOCAL)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        yield c


def preflight(client: TestClient[Any], origin: str) -> Any:
    return client.options(
        "/api/projects",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_a_preflight_from_an_unlisted_origin_fails(client: TestClient[Any]) -> None:
    evil = preflight(client, "https://evil.example")
    assert evil.status_code == 400
    assert "access-control-allow-origin" not in evil.headers
    for origin in ("http://localhost:3000", "http://127.0.0.1:3000"):
        ok = preflight(client, origin)
        assert ok.status_code in (200, 204), origin
        assert ok.headers["access-control-allow-origin"] == origin
    simple = client.get("/", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers  # the page cannot read it


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "verity.lan", "verity.lan:443"]
)
def test_the_servers_own_names_are_accepted(client: TestClient[Any], host: str) -> None:
    assert client.get("/", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "localhost:9999", "127.0.0.1", "", "x" * 300]
)
def test_a_foreign_host_header_is_refused(client: TestClient[Any], host: str) -> None:
    refused = client.get("/", headers={"Host": host})
    assert refused.status_code == 400
    assert "is not allowed" in refused.json()["detail"]
    assert len(refused.text) < 300  # the header is not echoed whole


def test_a_websocket_with_a_foreign_host_is_refused(client: TestClient[Any]) -> None:
    with pytest.raises(WebSocketDisconnect) as closed:  # noqa: SIM117 - the handshake fails
        with client.websocket_connect("/ws", headers={"Host": "evil.example"}) as ws:
            ws.receive_json(timeout=5)
    assert closed.value.code == 4400


def test_a_websocket_from_another_origins_page_is_refused(client: TestClient[Any]) -> None:
    for origin in ("https://evil.example", "http://127.0.0.1:3001", "null"):
        with pytest.raises(WebSocketDisconnect) as closed:  # noqa: SIM117
            with client.websocket_connect("/ws", headers={"Origin": origin}) as ws:
                ws.receive_json(timeout=5)
        assert closed.value.code == 4403, origin


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),  # the page this server served
        ("http://localhost:3000", "127.0.0.1:8000", True),  # the dev server
        ("http://localhost:8000", "127.0.0.1:8000", False),
        ("https://evil.example", "evil.example", True),  # same origin, refused by Host instead
        ("https://evil.example", "127.0.0.1:8000", False),
    ],
)
def test_which_origins_may_call(origin: str, host: str, allowed: bool) -> None:
    assert origin_allowed(origin, host, LOCAL.cors_origins) is allowed


def test_defaults_follow_the_listen_address() -> None:
    local = access_config(Settings(host="127.0.0.1", port=8000))
    assert local.anonymous_role is Role.ADMIN
    assert local.cors_origins == ("http://localhost:3000", "http://127.0.0.1:3000")
    assert local.allowed_hosts is not None and "localhost:8000" in local.allowed_hosts
    exposed = access_config(Settings(host="0.0.0.0", port=80, public_url="https://v.example"))
    assert exposed.anonymous_role is None
    assert exposed.allowed_hosts is not None and "v.example" in exposed.allowed_hosts
    assert "anonymous: none" in describe_access(exposed)
    assert "anonymous: admin" in describe_access(local)
    chosen = access_config(
        Settings(host="::1", anonymous_role="viewer", cors_origins="https://a.example, *")
    )
    assert chosen.anonymous_role is Role.VIEWER and chosen.cors_origins == (
        "https://a.example",
        "*",
    )
    assert is_loopback("localhost") and is_loopback("127.0.0.5") and not is_loopback("10.0.0.1")
    for bad in ("device", "auditor", "root"):
        with pytest.raises(SystemExit, match="VERITY_ANONYMOUS_ROLE"):
            access_config(Settings(anonymous_role=bad))
    assert access_config(Settings(anonymous_role="none")).anonymous_role is None
