"""Browser safety for a Verity that answers anonymous requests: which pages may call it.

Any web page can make a browser send requests to a loopback port. CORS limits which origins
may read answers and send non-simple requests (a preflight from another origin fails); the
Host check refuses requests whose `Host` is not a name of this server, which is what a DNS
rebinding attack (evil.example resolving to 127.0.0.1) sends.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

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
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            host = host.strip().lower()
            if host in hosts or _host_of(host) in hosts:
                await app(scope, receive, send)
                return
            await refuse(scope, send, 400, f"Host {host[:100]!r} is not allowed")

        return check

    return middleware
