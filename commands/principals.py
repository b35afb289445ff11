"""Write side of principals: register one, change its role."""

from __future__ import annotations

import msgspec

from commands.application import Position, Verity
from domain.access import Role
from domain.errors import Conflict
from domain.principals import Account, AccountKind, account_id, check_name


class AddPrincipal(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    role: Role
    kind: AccountKind = AccountKind.USER


class ChangeRole(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    role: Role


def add_principal(cmd: AddPrincipal, app: Verity) -> Position | None:
    check_name("name", cmd.name)
    if app.exists(account_id(cmd.name)):
        raise Conflict(f"principal {cmd.name!r} already exists")
    return app.commit(Account.register(cmd.name, cmd.kind, cmd.role))


def load_account(app: Verity, name: str) -> Account:
    check_name("name", name)
    return app.load(Account, account_id(name), f"Principal {name!r}")


def change_role(cmd: ChangeRole, app: Verity) -> Position | None:
    account = load_account(app, cmd.name)
    account.change_role(cmd.role)
    return app.commit(account)
