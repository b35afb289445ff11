"""Admin routes for principals: list, register, change a role (each change is an event)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api.inputs import InputDTO
from api.services import caught_up, execute, services_of
from commands.principals import AddPrincipal, ChangeRole, add_principal, change_role
from domain.access import Role
from domain.errors import NotFound
from domain.principals import AccountKind
from projections.principals import PrincipalRow, get_principal, list_principals


class PrincipalIn(msgspec.Struct, kw_only=True):
    name: str
    role: Role
    kind: AccountKind = AccountKind.USER


class RoleIn(msgspec.Struct, kw_only=True):
    role: Role


async def _load(state: State, name: str) -> PrincipalRow:
    async with services_of(state).read_pool.connection() as conn:
        row = await get_principal(conn, name)
    if row is None:
        raise NotFound("Principal", name, f"Principal {name!r} not found")
    return row


class PrincipalsController(Controller):
    path = "/api/admin/principals"
    tags = ["identity"]

    @get(operation_id="listPrincipals", summary="Registered principals and their roles")
    async def list_all(self, state: State) -> list[PrincipalRow]:
        async with services_of(state).read_pool.connection() as conn:
            return await list_principals(conn)

    @post(
        operation_id="addPrincipal",
        summary="Register a user or service principal with a role",
        dto=InputDTO[PrincipalIn],
        return_dto=None,
    )
    async def add(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[PrincipalIn]
    ) -> PrincipalRow:
        services = services_of(state)
        cmd = AddPrincipal(name=data.name, role=data.role, kind=data.kind)
        position = await execute(services, request, add_principal, cmd)
        await caught_up(services, position, "principals_v1")
        return await _load(state, data.name)

    @put(
        "/{name:str}/role",
        operation_id="changePrincipalRole",
        summary="Change a principal's role; its tokens act with the new role from now on",
        dto=InputDTO[RoleIn],
        return_dto=None,
    )
    async def change(
        self,
        state: State,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        data: JSONBody[RoleIn],
    ) -> PrincipalRow:
        services = services_of(state)
        position = await execute(
            services, request, change_role, ChangeRole(name=name, role=data.role)
        )
        await caught_up(services, position, "principals_v1")
        return await _load(state, name)
