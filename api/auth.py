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
from uuid import UUID

from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from psycopg_pool import AsyncConnectionPool

from api.limits import RateLimiter
from api.media_links import PREFIX as LINK_PREFIX
from api.media_links import BadLink, MediaLinks
from api.refusals import refuse
from commands.tokens import secret_matches, split_token
from domain.access import Principal, PrincipalKind, Role, anonymous
from projections.tokens import TokenCredentials, token_credentials


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
        return _principal(token_id, found)

    async def principal_of_token_id(self, token_id: UUID) -> Principal:
        """The principal of a token known only by its id (a signed media link names the token
        it was made for): the same checks, but no secret to match."""
        async with self.read_pool().connection() as conn:
            found = await token_credentials(conn, token_id)
        if found is None:
            raise Unauthenticated("invalid token")
        return _principal(token_id, found)


def _principal(token_id: UUID, found: TokenCredentials) -> Principal:
    """Who a stored token acts as, unless it is revoked, expired or its principal is gone."""
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


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _query(scope: Scope) -> dict[str, list[str]]:
    """The query of a WebSocket (`token`) or of a request to a stored file (a signed link);
    no other request's query is read here."""
    if scope["type"] != ScopeType.WEBSOCKET and not scope["path"].startswith(LINK_PREFIX):
        return {}
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def _is_link(scope: Scope, headers: Mapping[str, str], query: Mapping[str, list[str]]) -> bool:
    """A request to a stored file that carries a signature and no token."""
    return (
        scope["type"] == ScopeType.HTTP
        and scope["path"].startswith(LINK_PREFIX)
        and "sig" in query
        and "authorization" not in headers
    )


async def _link_principal(
    authenticator: Authenticator, links: MediaLinks, scope: Scope, query: dict[str, list[str]]
) -> Principal:
    """The principal a signed media link (api/media_links.py) was made for; BadLink if the
    link, or the token it names, is no longer good."""
    token_id = await links.verify(scope["path"], query)
    try:
        return await authenticator.principal_of_token_id(token_id)
    except Unauthenticated as err:
        raise BadLink(err.detail) from None


def authentication_middleware(
    authenticator: Authenticator, links: MediaLinks
) -> Callable[[ASGIApp], ASGIApp]:
    """Puts the request's principal in `scope["user"]` (Litestar's `request.user`): from the
    token, or, for a request to a stored file without one, from a signed media link."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def authenticate(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
                await app(scope, receive, send)
                return
            headers = _headers(scope)
            query = _query(scope)
            if _is_link(scope, headers, query):
                try:
                    scope["user"] = await _link_principal(authenticator, links, scope, query)
                except BadLink as err:
                    await refuse(scope, send, 403, err.detail)
                    return
                await app(scope, receive, send)
                return
            tokens = query.get("token") if scope["type"] == ScopeType.WEBSOCKET else None
            ws_token = tokens[0] if tokens else None
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
