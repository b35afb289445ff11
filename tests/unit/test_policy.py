"""Every route of the application has exactly one declared permission, and the table names no
route that does not exist. Built from the app's own route table, so a new route without a
policy fails here (and is refused at run time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.handlers import BaseRouteHandler

from api.app import create_app
from api.policy import (
    POLICY,
    ROOMS,
    SOCKET_IO,
    is_auto_options,
    policy_key,
    room_permission,
    socket_io_refusal,
)
from api.ws import ROOM_PATTERN, Client, RoomHub, _join
from domain.access import Permission, Principal, PrincipalKind, Role, anonymous

pytestmark = pytest.mark.unit


def handlers(tmp_path: Path) -> list[BaseRouteHandler]:
    app = create_app(lambda: None, tmp_path)  # type: ignore[arg-type, return-value]
    found: list[BaseRouteHandler] = []
    for route in app.routes:
        route_handlers: Any = getattr(route, "route_handlers", None) or [route.route_handler]  # type: ignore[attr-defined]
        found.extend(h for h in route_handlers if not is_auto_options(h))
    return found


def test_every_route_has_a_policy_and_every_policy_a_route(tmp_path: Path) -> None:
    keys = {h: policy_key(h) for h in handlers(tmp_path)}
    missing = sorted(str(sorted(h.paths)) for h, key in keys.items() if key not in POLICY)
    assert not missing, f"routes without an access policy (api/policy.py POLICY): {missing}"
    stale = set(POLICY) - set(keys.values())
    assert not stale, f"POLICY names routes that do not exist: {sorted(stale)}"


def test_only_the_documented_routes_are_open() -> None:
    # the Socket.IO mount is open at HTTP level: its connect and events are checked there
    assert {k for k, v in POLICY.items() if v is None} == {"root", "health", "openapi", "socketio"}
    assert SOCKET_IO["connect"] is Permission.READ


def test_every_room_kind_has_a_permission() -> None:
    kinds = ROOM_PATTERN.pattern.split("(")[2].split(")")[0].split("|")
    assert set(kinds) | {"dashboard", "admin"} == set(ROOMS)
    assert room_permission("nonsense:1") is None


def test_socket_io_events_are_checked_against_their_table() -> None:
    device = Principal(id="d", name="cam-1", kind=PrincipalKind.DEVICE, role=Role.DEVICE)
    assert socket_io_refusal(anonymous(Role.VIEWER), "connect") is None
    assert socket_io_refusal(device, "connect") == "device:cam-1 may not connect: needs read"
    assert "no access policy" in (socket_io_refusal(anonymous(Role.ADMIN), "unlisted") or "")


def test_a_room_join_needs_its_permission() -> None:
    hub, client = RoomHub(), Client()
    device = Principal(id="d", name="cam-1", kind=PrincipalKind.DEVICE, role=Role.DEVICE)
    refused = _join(hub, client, "dashboard", device)
    assert '"error"' in refused and "device:cam-1 may not join dashboard: needs read" in refused
    assert not client.rooms
    assert '"joined"' in _join(hub, client, "dashboard", anonymous(Role.VIEWER))
    assert client.rooms == {"dashboard"}
    assert Permission.READ in {ROOMS[k] for k in ROOMS}


def test_every_socket_io_event_the_server_handles_has_a_policy() -> None:
    from litestar.config.cors import CORSConfig

    from api.auth import Authenticator
    from api.socketio_gateway import NAMESPACE, SocketIOGateway

    def no_pool() -> Any:
        raise AssertionError("no database here")

    gateway = SocketIOGateway(CORSConfig(), Authenticator(Role.ADMIN, read_pool=no_pool))
    handled = set(gateway.sio.handlers[NAMESPACE]) - {"disconnect", "*"}
    assert handled == set(SOCKET_IO), handled ^ set(SOCKET_IO)
