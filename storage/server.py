"""The PostgreSQL server itself rather than one database's tables: is it answering, and
making a database on it (the embedded server's first start)."""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg_pool import AsyncConnectionPool


async def probe(url: str, connect_timeout: int) -> None:
    """One round trip on a fresh connection; raises while the server cannot be reached."""
    conn = await psycopg.AsyncConnection.connect(
        url, connect_timeout=connect_timeout, autocommit=True
    )
    async with conn:
        await conn.execute("SELECT 1")


async def ping(pool: AsyncConnectionPool[Any]) -> None:
    """One round trip through `pool`: the health check's view of the database."""
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")


def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` unless it exists (also when another process just made it)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if exists is None:
            with contextlib.suppress(errors.DuplicateDatabase):
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
