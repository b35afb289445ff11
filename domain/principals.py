"""Registered principals (people and Verity's own services) and their role changes, as events.

A principal's id derives from its name, so a name is registered once and found without an
index; its role is what every token issued on its behalf acts with, from the next request on.
"""

from __future__ import annotations

import re
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from domain.access import Role
from domain.errors import InvalidValue
from domain.events import VerityAggregate
from domain.limits import PRINCIPAL_NAME_MAX

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")


class AccountKind(StrEnum):
    USER = "user"
    SERVICE = "service"


def check_name(field: str, name: str) -> None:
    """Names appear in actors (`user:<name>`): short, printable, no separators."""
    if not 0 < len(name) <= PRINCIPAL_NAME_MAX or not NAME_PATTERN.match(name):
        detail = (
            f"{field}: 1 to {PRINCIPAL_NAME_MAX} characters of letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
        raise InvalidValue(field, detail)


def account_id(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"verity:principal:{name}")


class Account(VerityAggregate):
    """A principal's registration (`domain.access.Principal` is who a request acts as)."""

    class Registered(VerityAggregate.Created):
        name: str
        kind: AccountKind
        role: Role

    class RoleChanged(VerityAggregate.Event):
        role: Role

    @classmethod
    def register(cls, name: str, kind: AccountKind, role: Role) -> Account:
        check_name("name", name)
        created: Account = cls._create(
            cls.Registered, id=account_id(name), name=name, kind=kind, role=role
        )
        return created

    @event(Registered)
    def __init__(self, name: str, kind: AccountKind, role: Role) -> None:
        self.name = name
        self.kind = kind
        self.role = role

    def change_role(self, role: Role) -> None:
        if role is not self.role:
            self._role_changed(role=role)

    @event(RoleChanged)
    def _role_changed(self, role: Role) -> None:
        self.role = role
