"""`verity principals` and `verity tokens`: who may use Verity, from the command line.

The command line writes to the event store directly (whoever can run it reaches the
database; it is how the first admin token is made) and then brings the principals and tokens
read models up to date itself, so a running server sees the change from its next request:
a revoked token is refused as soon as the command returns. Runners share the read models'
tracking rows safely with a running server's (projections/runner.py LostRace)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import UUID

from verity.settings import Settings

C = TypeVar("C")
R = TypeVar("R")

IDENTITY_READ_MODELS = ("principals_v1", "api_tokens_v1")


def add_identity_parsers(sub: Any) -> None:
    from domain.access import Role  # noqa: PLC0415

    roles = [r.value for r in Role]
    principals = sub.add_parser("principals", help="users and service principals, their roles")
    what = principals.add_subparsers(dest="action", required=True)
    add = what.add_parser("add", help="register a principal")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=roles)
    add.add_argument("--service", action="store_true", help="a service, not a person")
    what.add_parser("list", help="principals and their roles")
    role = what.add_parser("role", help="change a principal's role")
    role.add_argument("name")
    role.add_argument("role", choices=roles)

    tokens = sub.add_parser("tokens", help="API tokens (Authorization: Bearer)")
    action = tokens.add_subparsers(dest="action", required=True)
    create = action.add_parser("create", help="issue a token; it is printed once")
    create.add_argument("--name", required=True)
    holder = create.add_mutually_exclusive_group(required=True)
    holder.add_argument("--role", choices=roles)
    holder.add_argument("--principal", help="act as this registered principal, with its role")
    create.add_argument("--expires", type=int, metavar="DAYS", help="days until it expires")
    action.add_parser("list", help="tokens: name, role or principal, expiry, revocation")
    revoke = action.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=UUID)


@contextmanager
def _identity_store(settings: Settings) -> Iterator[Callable[..., Any]]:
    """`run(handler, cmd)`: the handler's result, once the identity read models show it."""
    from psycopg_pool import ConnectionPool  # noqa: PLC0415 - keep other commands light

    from commands.context import run_as  # noqa: PLC0415
    from domain.events import EventMeta  # noqa: PLC0415
    from verity.bootstrap import open_application, projection_runners, servers  # noqa: PLC0415
    from verity.detector_commands import CLI_ACTOR  # noqa: PLC0415

    with servers(settings) as endpoints:
        app = open_application(endpoints.database_url)
        try:
            with ConnectionPool(endpoints.database_url, min_size=1, max_size=2) as pool:
                runners = [
                    r
                    for r in projection_runners(app, pool, settings.projection_batch_size)
                    if r.name in IDENTITY_READ_MODELS
                ]

                def run(handler: Callable[[C, Any], R] | None, cmd: C | None) -> R | None:
                    result = (
                        run_as(EventMeta(actor=CLI_ACTOR), handler, cmd, app)
                        if handler is not None and cmd is not None
                        else None
                    )
                    for runner in runners:
                        runner.catch_up()
                    return result

                yield run
        finally:
            app.close()


def _read(settings: Settings, query: Callable[[Any], Any]) -> Any:
    import psycopg  # noqa: PLC0415

    from verity.bootstrap import servers  # noqa: PLC0415

    async def fetch(url: str) -> Any:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await query(conn)

    with servers(settings) as endpoints:
        return asyncio.run(fetch(endpoints.database_url))


def principals_command(settings: Settings, args: argparse.Namespace) -> None:
    from commands.principals import (  # noqa: PLC0415
        AddPrincipal,
        ChangeRole,
        add_principal,
        change_role,
    )
    from domain.access import Role  # noqa: PLC0415
    from domain.principals import AccountKind  # noqa: PLC0415
    from projections.principals import list_principals  # noqa: PLC0415

    with _identity_store(settings) as run:
        if args.action == "add":
            kind = AccountKind.SERVICE if args.service else AccountKind.USER
            run(add_principal, AddPrincipal(name=args.name, role=Role(args.role), kind=kind))
            print(f"{kind.value}:{args.name} added with role {args.role}")
        elif args.action == "role":
            run(change_role, ChangeRole(name=args.name, role=Role(args.role)))
            print(f"{args.name} now has role {args.role}")
        else:
            run(None, None)
    if args.action == "list":
        for p in _read(settings, list_principals):
            print(f"{p.kind}:{p.name}\t{p.role}\tsince {p.created_at:%Y-%m-%d}")


def tokens_command(settings: Settings, args: argparse.Namespace) -> None:
    from commands.tokens import (  # noqa: PLC0415
        CreateToken,
        RevokeToken,
        create_token,
        revoke_token,
    )
    from domain.access import Role  # noqa: PLC0415
    from projections.tokens import list_tokens  # noqa: PLC0415

    with _identity_store(settings) as run:
        if args.action == "create":
            cmd = CreateToken(
                name=args.name,
                role=Role(args.role) if args.role else None,
                principal=args.principal,
                expires_days=args.expires,
            )
            issued = run(create_token, cmd)
            print(f"token id {issued.id} (shown once; keep it secret):")
            print(issued.token)
        elif args.action == "revoke":
            run(revoke_token, RevokeToken(id=args.id))
            print(f"token {args.id} revoked; refused from its next request on")
        else:
            run(None, None)
    if args.action == "list":
        for t in _read(settings, list_tokens):
            holder = f"principal {t.principal}" if t.principal else f"role {t.role}"
            expires = f"expires {t.expires_at:%Y-%m-%d}" if t.expires_at else "no expiry"
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
            print(f"{t.id}\t{t.name}\t{holder}\t{expires}\t{state}")
