"""Write side of API tokens: issue one (its text is returned once), revoke one.

The secret is 32 bytes from `secrets` (the OS CSPRNG). What is stored is its SHA-256 digest
(hashlib): a password KDF (bcrypt, Argon2) exists to slow the guessing of low-entropy
passwords, and a 256-bit random secret cannot be guessed, so a fast digest is as safe and
keeps a check at one hash per request. Tokens are compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID, uuid4

import msgspec

from commands.application import Position, Verity
from commands.principals import load_account
from domain.access import Role
from domain.errors import NotFound
from domain.limits import TOKEN_MAX_DAYS
from domain.principals import check_name
from domain.tokens import ApiToken, check_holder

PREFIX = "vrt"
"""`vrt_<token id, 32 hex>_<secret>`: recognisable in logs and secret scanners."""


class CreateToken(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    role: Role | None = None
    principal: str | None = None
    expires_days: Annotated[int, msgspec.Meta(ge=1, le=TOKEN_MAX_DAYS)] | None = None
    id: UUID = msgspec.field(default_factory=uuid4)


class RevokeToken(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID


class IssuedToken(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    token: str
    """The only time the token's text exists outside its holder."""
    position: Position | None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(text: str) -> tuple[UUID, str] | None:
    """(id, secret) of a token's text, or None when it is not one of ours."""
    prefix, _, rest = text.partition("_")
    ident, _, secret = rest.partition("_")
    if prefix != PREFIX or len(ident) != 32 or not secret:
        return None
    try:
        return UUID(hex=ident), secret
    except ValueError:
        return None


def secret_matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


def create_token(cmd: CreateToken, app: Verity) -> IssuedToken:
    check_name("name", cmd.name)
    check_holder(cmd.role, cmd.principal)
    if cmd.principal is not None:
        load_account(app, cmd.principal)  # NotFound when no such principal
    secret = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(days=cmd.expires_days) if cmd.expires_days else None
    token = ApiToken.issue(cmd.id, cmd.name, digest(secret), cmd.role, cmd.principal, expires)
    position = app.commit(token)
    return IssuedToken(id=cmd.id, token=f"{PREFIX}_{cmd.id.hex}_{secret}", position=position)


def revoke_token(cmd: RevokeToken, app: Verity) -> Position | None:
    try:
        token = app.load(ApiToken, cmd.id, "Token")
    except NotFound:
        raise NotFound("Token", cmd.id, f"Token {cmd.id} not found") from None
    token.revoke()
    return app.commit(token)
