"""What authenticating a request costs: GET /api/projects without a token (anonymous admin,
no database read) against the same GET with a bearer token (one primary-key read of
rm_api_tokens joined to rm_principals, and a SHA-256), in one process through Litestar's test
client on a fresh PostgreSQL database. Rounds alternate so other load falls on both alike.
Prints the median time per request of each and their ratio. (The anonymous GET is answered
from the response cache, so the difference is the whole cost of the token check.)

Usage: uv run python bench/bench_auth.py [--requests 300] [--rounds 5]
       [--admin-url postgresql://postgres@127.0.0.1:5432/postgres] [--nats nats://127.0.0.1:4222]
Other processes on the machine share its cores: figures are provisional, re-run to confirm.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from litestar.testing import TestClient

from api.app import create_app
from verity.bootstrap import Endpoints, running
from verity.identity_commands import add_identity_parsers, tokens_command
from verity.settings import Settings


def admin_token(settings: Settings) -> str:
    parser = argparse.ArgumentParser()
    add_identity_parsers(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tokens_command(
            settings, parser.parse_args(["tokens", "create", "--name", "b", "--role", "admin"])
        )
    return out.getvalue().strip().splitlines()[-1]


def per_request(client: TestClient[Any], n: int, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    for _ in range(n):
        assert client.get("/api/projects", headers=headers).status_code == 200
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    args = parser.parse_args()
    name = f"verity_bench_auth_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        database_url = psycopg.conninfo.make_conninfo(args.admin_url, dbname=name)
        with tempfile.TemporaryDirectory() as data:
            settings = Settings(
                database_url=database_url,
                nats_url=args.nats,
                data_dir=Path(data),
                nats_prefix=f"b{uuid.uuid4().hex[:12]}",
            )
            token = admin_token(settings)
            endpoints = Endpoints(database_url, args.nats)
            app = create_app(lambda: running(settings, endpoints, workers=()), settings.uploads_dir)
            anonymous: list[float] = []
            bearer: list[float] = []
            with TestClient(app, timeout=30) as client:
                per_request(client, 50, {})  # warm both paths
                per_request(client, 50, {"Authorization": f"Bearer {token}"})
                for _ in range(args.rounds):
                    anonymous.append(per_request(client, args.requests, {}))
                    bearer.append(
                        per_request(client, args.requests, {"Authorization": f"Bearer {token}"})
                    )
        a, b = statistics.median(anonymous), statistics.median(bearer)
        print(f"GET /api/projects, {args.requests} requests x {args.rounds} rounds (median round)")
        print(f"  anonymous:    {a * 1e3:.2f} ms/request")
        print(f"  bearer token: {b * 1e3:.2f} ms/request  (+{(b - a) * 1e3:.2f} ms, x{b / a:.2f})")
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
