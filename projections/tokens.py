"""Read model of API tokens, and the one query that authenticates a request."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from domain.tokens import ApiToken
from projections.rows import OneRowPerAggregate, Row

PROJECTION_NAME = "api_tokens_v1"


class ApiTokensProjection(OneRowPerAggregate):
    name: str = PROJECTION_NAME
    event_classes: tuple[type[Any], ...] = (ApiToken.Issued, ApiToken.Revoked)
    tables: tuple[str, ...] = ("rm_api_tokens",)
    table: str = "rm_api_tokens"
    columns: tuple[str, ...] = (
        "id",
        "name",
        "role",
        "principal",
        "digest",
        "expires_at",
        "revoked_at",
        "created_at",
        "created_by",
        "revoked_by",
    )

    def fold(self, row: Row | None, event: Any) -> Row | None:
        if isinstance(event, ApiToken.Issued):
            return {
                "id": event.originator_id,
                "name": event.name,
                "role": event.role.value if event.role else None,
                "principal": event.principal,
                "digest": event.digest,
                "expires_at": event.expires_at,
                "revoked_at": None,
                "created_at": event.timestamp,
                "created_by": event.meta.actor,
                "revoked_by": None,
            }
        if row is not None and isinstance(event, ApiToken.Revoked):
            row["revoked_at"] = event.timestamp
            row["revoked_by"] = event.meta.actor
        return row


class TokenRow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A token as admins see it: never its digest."""

    id: UUID
    name: str
    role: str | None
    principal: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    created_by: str


class TokenCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """What checking a presented token needs: its digest, state and who it acts as."""

    name: str
    digest: str
    role: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    principal: str | None
    principal_kind: str | None
    principal_role: str | None


_COLUMNS = "id, name, role, principal, expires_at, revoked_at, created_at, created_by"


async def list_tokens(conn: AsyncConnection[Any]) -> list[TokenRow]:
    async with conn.cursor(row_factory=class_row(TokenRow)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM rm_api_tokens ORDER BY created_at, id")
        return await cur.fetchall()


async def get_token(conn: AsyncConnection[Any], token_id: UUID) -> TokenRow | None:
    async with conn.cursor(row_factory=class_row(TokenRow)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM rm_api_tokens WHERE id = %s", (token_id,))
        return await cur.fetchone()


async def token_credentials(conn: AsyncConnection[Any], token_id: UUID) -> TokenCredentials | None:
    async with conn.cursor(row_factory=class_row(TokenCredentials)) as cur:
        await cur.execute(
            "SELECT t.name, t.digest, t.role, t.expires_at, t.revoked_at, t.principal,"
            " p.kind AS principal_kind, p.role AS principal_role"
            " FROM rm_api_tokens t LEFT JOIN rm_principals p ON p.name = t.principal"
            " WHERE t.id = %s",
            (token_id,),
        )
        return await cur.fetchone()
