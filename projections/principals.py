"""Read model of principals: one row per registered principal, with its current role."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from domain.principals import Account
from projections.rows import OneRowPerAggregate, Row

PROJECTION_NAME = "principals_v1"


class PrincipalsProjection(OneRowPerAggregate):
    name: str = PROJECTION_NAME
    event_classes: tuple[type[Any], ...] = (Account.Registered, Account.RoleChanged)
    tables: tuple[str, ...] = ("rm_principals",)
    table: str = "rm_principals"
    columns: tuple[str, ...] = (
        "id",
        "name",
        "kind",
        "role",
        "created_at",
        "updated_at",
        "created_by",
    )

    def fold(self, row: Row | None, event: Any) -> Row | None:
        if isinstance(event, Account.Registered):
            return {
                "id": event.originator_id,
                "name": event.name,
                "kind": event.kind.value,
                "role": event.role.value,
                "created_at": event.timestamp,
                "updated_at": None,
                "created_by": event.meta.actor,
            }
        if row is None:
            return None
        if isinstance(event, Account.RoleChanged):
            row["role"] = event.role.value
        row["updated_at"] = event.timestamp
        return row


class PrincipalRow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: UUID
    name: str
    kind: str
    role: str
    created_at: datetime
    updated_at: datetime | None
    created_by: str


_COLUMNS = "id, name, kind, role, created_at, updated_at, created_by"


async def list_principals(conn: AsyncConnection[Any]) -> list[PrincipalRow]:
    async with conn.cursor(row_factory=class_row(PrincipalRow)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM rm_principals ORDER BY name")
        return await cur.fetchall()


async def get_principal(conn: AsyncConnection[Any], name: str) -> PrincipalRow | None:
    async with conn.cursor(row_factory=class_row(PrincipalRow)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM rm_principals WHERE name = %s", (name,))
        return await cur.fetchone()
