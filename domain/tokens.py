"""API tokens: issued with a name and either a role or a registered principal, revocable.

Only the SHA-256 digest of a token's secret is ever recorded (the secret is shown once); the
token's text carries its id, so checking one is a single indexed read of its row.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import event

from domain.access import Role
from domain.errors import Conflict, InvalidValue
from domain.events import VerityAggregate
from domain.principals import check_name


def check_holder(role: Role | None, principal: str | None) -> None:
    """A token acts with a role of its own or as a registered principal: exactly one."""
    if (role is None) == (principal is None):
        raise InvalidValue("role", "role: give either a role or a principal, not both")


class ApiToken(VerityAggregate):
    class Issued(VerityAggregate.Created):
        name: str
        digest: str
        """hex SHA-256 of the secret part of the token."""
        role: Role | None = None
        """The token's own role; None when it acts for `principal`."""
        principal: str | None = None
        """Name of the registered principal it acts for (with that principal's current role)."""
        expires_at: datetime | None = None

    class Revoked(VerityAggregate.Event):
        pass

    @classmethod
    def issue(
        cls,
        ident: UUID,
        name: str,
        digest: str,
        role: Role | None,
        principal: str | None,
        expires_at: datetime | None,
    ) -> ApiToken:
        check_name("name", name)
        check_holder(role, principal)
        created: ApiToken = cls._create(
            cls.Issued,
            id=ident,
            name=name,
            digest=digest,
            role=role,
            principal=principal,
            expires_at=expires_at,
        )
        return created

    @event(Issued)
    def __init__(
        self,
        name: str,
        digest: str,
        role: Role | None,
        principal: str | None,
        expires_at: datetime | None,
    ) -> None:
        self.name = name
        self.digest = digest
        self.role = role
        self.principal = principal
        self.expires_at = expires_at
        self.revoked = False

    def revoke(self) -> None:
        if self.revoked:
            raise Conflict("token is already revoked")
        self._revoked()

    @event(Revoked)
    def _revoked(self) -> None:
        self.revoked = True
