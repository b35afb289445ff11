"""Browser safety for a Verity that answers anonymous requests: which pages may call it.

Any web page can make a browser send requests to a loopback port. CORS limits which origins
may read answers and send non-simple requests (a preflight from another origin fails); the
Host check refuses requests whose `Host` is not a name of this server, which is what a DNS
rebinding attack (evil.example resolving to 127.0.0.1) sends. CORS does not cover WebSockets,
so a WebSocket handshake from a page of another origin is refused here too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from urllib.parse import urlsplit

from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from api.refusals import refuse

DEV_ORIGINS = ("http://localhost:3000", "http://127.0.0.1:3000")
"""The frontend's development server (`npm start` in its folder serves on port 3000)."""

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def cors_config(origins: Collection[str]) -> CORSConfig:
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Range", "If-Range"],
        expose_headers=["X-Request-ID", "Content-Range", "Accept-Ranges", "Retry-After"],
        allow_credentials=False,
    )


def allowed_hosts(listen_host: str, port: int, extra: Collection[str] = ()) -> frozenset[str]:
    """`Host` values accepted: the listen address and the loopback names with the port (and
    without it where the port is HTTP's default), plus `extra` names, with any port."""
    host = f"[{listen_host}]" if ":" in listen_host else listen_host
    names = {host, *LOOPBACK_NAMES}
    exact = {f"{name}:{port}" for name in names}
    if port == 80:
        exact |= names
    return frozenset(exact | {name.lower() for name in extra})


def _host_of(value: str) -> str:
    """`name` of `name:port` / `[v6]:port`."""
    if value.startswith("["):
        return value[: value.find("]") + 1]
    return value.rpartition(":")[0] if ":" in value else value


def host_check_middleware(allowed: Collection[str]) -> Callable[[ASGIApp], ASGIApp]:
    """Refuse (400) a request whose Host header is not one of `allowed`; "*" allows any."""
    hosts = frozenset(h.lower() for h in allowed)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def check(scope: Scope, receive: Receive, send: Send) -> None:
            if "*" in hosts or scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
                await app(scope, receive, send)
                return
            host = _header(scope, b"host").strip().lower()
            if host in hosts or _host_of(host) in hosts:
                await app(scope, receive, send)
                return
            await refuse(scope, send, 400, f"Host {host[:100]!r} is not allowed")

        return check

    return middleware


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


def origin_allowed(origin: str, host: str, origins: Collection[str]) -> bool:
    """A page's origin may call: it is listed, everything is, or it is this server itself."""
    return "*" in origins or origin in origins or urlsplit(origin).netloc.lower() == host.lower()


def websocket_origin_middleware(origins: Collection[str]) -> Callable[[ASGIApp], ASGIApp]:
    """Close (4403) a WebSocket handshake sent by a page of an origin CORS would not allow;
    clients that are not browsers send no Origin and pass."""
    listed = frozenset(origins)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def check(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.WEBSOCKET:
                origin = _header(scope, b"origin")
                if origin and not origin_allowed(origin, _header(scope, b"host"), listed):
                    await refuse(scope, send, 403, f"origin {origin[:100]!r} is not allowed")
                    return
            await app(scope, receive, send)

        return check

    return middleware
