"""Shared pieces of the identity tests: the CLI as an admin uses it, a client with a token."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from litestar.testing import TestClient

from api.access import AccessConfig
from api.app import create_app
from verity.bootstrap import Endpoints, running
from verity.identity_commands import add_identity_parsers, principals_command, tokens_command
from verity.settings import Settings

LOCKED = AccessConfig(anonymous_role=None)
"""Nothing without a token, as on a non-loopback address."""


def cli(settings: Settings, *argv: str) -> str:
    """Run `verity principals|tokens ...` in-process; what it printed."""
    parser = argparse.ArgumentParser()
    add_identity_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if args.command == "principals":
            principals_command(settings, args)
        else:
            tokens_command(settings, args)
    return out.getvalue()


def cli_token(settings: Settings, *argv: str) -> str:
    """`verity tokens create ...`: the token it printed (its last line)."""
    return cli(settings, "tokens", "create", *argv).strip().splitlines()[-1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def access_client(
    settings: Settings, access: AccessConfig = LOCKED, **running_options: Any
) -> Iterator[TestClient[Any]]:
    assert settings.database_url is not None and settings.nats_url is not None
    endpoints = Endpoints(settings.database_url, settings.nats_url)
    app = create_app(
        lambda: running(settings, endpoints, **running_options), settings.uploads_dir, access
    )
    with TestClient(app, timeout=30) as client:
        yield client
