"""Admin routes for API tokens: list (never the secret), create (the token shown once), revoke.

A revoke answers once the tokens read model shows it, and every request reads that model, so
the token is refused from the next request on.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api.inputs import InputDTO
from api.services import caught_up, execute, services_of
from commands.tokens import CreateToken, RevokeToken, create_token, revoke_token
from domain.access import Role
from domain.errors import NotFound
from domain.limits import TOKEN_MAX_DAYS
from projections.tokens import TokenRow, get_token, list_tokens


class TokenIn(msgspec.Struct, kw_only=True):
    name: str
    role: Role | None = None
    principal: str | None = None
    """A registered principal's name: the token acts as it, with its current role."""
    expires_days: Annotated[int, msgspec.Meta(ge=1, le=TOKEN_MAX_DAYS)] | None = None


class CreatedToken(msgspec.Struct, kw_only=True, rename="camel"):
    token: str
    """Shown this once; only its digest is kept."""
    details: TokenRow


async def _load(state: State, token_id: UUID) -> TokenRow:
    async with services_of(state).read_pool.connection() as conn:
        row = await get_token(conn, token_id)
    if row is None:
        raise NotFound("Token", token_id, f"Token {token_id} not found")
    return row


class TokensController(Controller):
    path = "/api/admin/tokens"
    tags = ["identity"]

    @get(operation_id="listTokens", summary="API tokens: name, role or principal, expiry, state")
    async def list_all(self, state: State) -> list[TokenRow]:
        async with services_of(state).read_pool.connection() as conn:
            return await list_tokens(conn)

    @post(
        operation_id="createToken",
        summary="Issue a token with a role or for a principal; the answer shows it once",
        dto=InputDTO[TokenIn],
        return_dto=None,
    )
    async def create(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[TokenIn]
    ) -> CreatedToken:
        services = services_of(state)
        cmd = CreateToken(
            name=data.name,
            role=data.role,
            principal=data.principal,
            expires_days=data.expires_days,
        )
        issued = await execute(services, request, create_token, cmd)
        await caught_up(services, issued.position, "api_tokens_v1")
        return CreatedToken(token=issued.token, details=await _load(state, issued.id))

    @post(
        "/{token_id:uuid}/revoke",
        operation_id="revokeToken",
        summary="Revoke a token: refused from its next request on",
        status_code=200,
    )
    async def revoke(
        self, state: State, request: Request[Any, Any, Any], token_id: FromPath[UUID]
    ) -> TokenRow:
        services = services_of(state)
        position = await execute(services, request, revoke_token, RevokeToken(id=token_id))
        await caught_up(services, position, "api_tokens_v1")
        return await _load(state, token_id)
