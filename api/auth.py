"""Authentication: every HTTP and WebSocket request acts as one principal.

`Authorization: Bearer <token>` (or, for WebSockets whose browser API sends no headers, a
`token` query parameter) names an API token; its row is read on every request, so a revoked
or expired token is refused on its very next request and no cache can go stale. No token:
the anonymous principal, with the configured anonymous role. A bad token is a 401, never a
quiet fall-back to anonymous. Clients that keep failing are slowed down (429).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from psycopg_pool import AsyncConnectionPool

from api.limits import RateLimiter
from api.refusals import refuse
from commands.tokens import secret_matches, split_token
from domain.access import Principal, PrincipalKind, Role, anonymous
from projections.tokens import token_credentials


class Unauthenticated(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TooManyFailures(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed authentications; retry in {retry_after} s")
        self.detail = str(self)
        self.retry_after = retry_after


ReadPool = Callable[[], AsyncConnectionPool[Any]]


@dataclass
class Authenticator:
    """Who a request's credentials say it is; used by HTTP, WebSockets and Socket.IO alike."""

    anonymous_role: Role | None
    read_pool: ReadPool
    failures: RateLimiter = field(default_factory=lambda: RateLimiter(per_minute=20))
    """Failed authentications per client address."""

    async def principal_from(
        self, headers: Mapping[str, str], auth_token: str | None = None
    ) -> Principal:
        """The principal of a request's headers (lower-case names, as ASGI gives them), or of
        `auth_token` (a Socket.IO `auth.token`, a WebSocket `?token=`) when there is no
        `Authorization` header. Raises Unauthenticated for a bad, expired or revoked token."""
        if headers.get("authorization") and bearer_token(headers) is None:
            raise Unauthenticated("Authorization: expected 'Bearer <token>'")
        token = bearer_token(headers) or auth_token
        if not token:
            return anonymous(self.anonymous_role)
        return await self.principal_of_token(token)

    async def authenticate(
        self, headers: Mapping[str, str], auth_token: str | None, address: str
    ) -> Principal:
        """`principal_from`, with failures counted per client `address`: past the limit, even
        a good token is refused (TooManyFailures) until the minute has passed."""
        if (headers.get("authorization") or auth_token) and (
            wait := self.failures.blocked_for(address)
        ):
            raise TooManyFailures(wait)
        try:
            return await self.principal_from(headers, auth_token)
        except Unauthenticated:
            self.failures.hit(address)
            raise

    async def principal_of_token(self, token: str) -> Principal:
        parts = split_token(token.strip())
        if parts is None:
            raise Unauthenticated("invalid token")
        token_id, secret = parts
        async with self.read_pool().connection() as conn:
            found = await token_credentials(conn, token_id)
        if found is None or not secret_matches(secret, found.digest):
            raise Unauthenticated("invalid token")
        if found.revoked_at is not None:
            raise Unauthenticated("token revoked")
        if found.expires_at is not None and found.expires_at <= datetime.now(UTC):
            raise Unauthenticated("token expired")
        if found.principal is not None:
            if found.principal_kind is None or found.principal_role is None:
                raise Unauthenticated("the token's principal is not registered")
            return Principal(
                id=str(token_id),
                name=found.principal,
                kind=PrincipalKind(found.principal_kind),
                role=Role(found.principal_role),
            )
        role = Role(found.role) if found.role else None
        kind = PrincipalKind.DEVICE if role is Role.DEVICE else PrincipalKind.TOKEN
        return Principal(id=str(token_id), name=found.name, kind=kind, role=role)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticator_of(state: State) -> Authenticator:
    """The app's authenticator; Socket.IO's `connect` calls `authenticate(headers, auth.token,
    client address)` (or `principal_from(headers, token)` without the failure limit)."""
    authenticator: Authenticator = state.authenticator
    return authenticator


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _query_token(scope: Scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens else None


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def authentication_middleware(authenticator: Authenticator) -> Callable[[ASGIApp], ASGIApp]:
    """Puts the request's principal in `scope["user"]` (Litestar's `request.user`)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def authenticate(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
                await app(scope, receive, send)
                return
            headers = _headers(scope)
            ws_token = _query_token(scope) if scope["type"] == ScopeType.WEBSOCKET else None
            try:
                principal = await authenticator.authenticate(
                    headers, ws_token, client_address(scope)
                )
            except TooManyFailures as err:
                await refuse(scope, send, 429, err.detail, {"Retry-After": str(err.retry_after)})
                return
            except Unauthenticated as err:
                await refuse(scope, send, 401, err.detail, {"WWW-Authenticate": "Bearer"})
                return
            scope["user"] = principal
            await app(scope, receive, send)

        return authenticate

    return middleware
