"""Apply the numbered SQL files of migrations/ once each, safely from concurrent processes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

REPEATABLE_MARK = "-- verity:repeatable"
_LOCK_KEY = 0x5645524954590001  # "VERITY" + 1: one advisory lock for all migrators


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def repeatable(self) -> bool:
        """Idempotent read-model DDL, applied on every run so dropped read models come back."""
        return self.sql.lstrip().startswith(REPEATABLE_MARK)


def migrations_dir() -> Path:
    installed = Path(__file__).with_name("migrations")
    return installed if installed.is_dir() else Path(__file__).parents[1] / "migrations"


def load_migrations(folder: Path | None = None) -> list[Migration]:
    paths = sorted((folder or migrations_dir()).glob("[0-9][0-9][0-9][0-9]_*.sql"))
    found = [Migration(int(p.name[:4]), p.stem, p.read_text()) for p in paths]
    numbers = [m.number for m in found]
    if len(numbers) != len(set(numbers)):
        msg = f"Two migrations share a number: {numbers}"
        raise RuntimeError(msg)
    return found


def migrate(
    database_url: str,
    folder: Path | None = None,
    *,
    before: Callable[[psycopg.Connection[Any]], object] | None = None,
) -> list[str]:
    """Apply what is pending; returns the names applied. Changed applied files are an error.

    `before` runs first, in the same transaction and under the same lock (a start-up check
    that must see the tables as they were, before the repeatable DDL re-creates them)."""
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " number integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        if before is not None:
            before(conn)
        done: dict[int, str] = dict(
            conn.execute("SELECT number, checksum FROM schema_migrations").fetchall()
        )
        for m in load_migrations(folder):
            if m.number in done and not m.repeatable:
                if done[m.number] != m.checksum:
                    msg = f"Migration {m.name} changed after it was applied; add a new one"
                    raise RuntimeError(msg)
                continue
            conn.execute(m.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (number, name, checksum) VALUES (%s, %s, %s)"
                " ON CONFLICT (number) DO UPDATE SET checksum = EXCLUDED.checksum,"
                " applied_at = now()",
                (m.number, m.name, m.checksum),
            )
            if m.number not in done:
                applied_now.append(m.name)
    return applied_now
