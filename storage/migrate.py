"""Apply the numbered SQL files of migrations/ once each, safely from concurrent processes."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

REPEATABLE_MARK = "-- verity:repeatable"
_LOCK_KEY = 0x5645524954590001  # "VERITY" + 1: one advisory lock for all migrators
_CREATED = re.compile(
    r"CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX)\s+IF\s+NOT\s+EXISTS\s+([\w.]+)", re.IGNORECASE
)
_ATTEMPTS = 5

log = logging.getLogger(__name__)


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
        """Idempotent read-model DDL, applied again whenever what it creates has gone."""
        return self.sql.lstrip().startswith(REPEATABLE_MARK)

    @property
    def creates(self) -> list[str]:
        """The tables and indexes this file makes (`CREATE ... IF NOT EXISTS name`)."""
        return _CREATED.findall(self.sql)


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
    that must see the tables as they were, before the repeatable DDL re-creates them).

    The repeatable files run together, in order, only when one is new or changed or when a
    table or index one of them creates is missing: a plain restart takes no DDL lock, so it
    cannot deadlock with another process's projection writes. Should DDL that has to run
    still meet one, the whole transaction is retried (it rolled back; nothing half-applied)."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return _migrate_once(database_url, folder, before)
        except psycopg.errors.DeadlockDetected:
            if attempt == _ATTEMPTS:
                raise
            log.warning("migration met a deadlock (attempt %d); retrying", attempt)
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _migrate_once(
    database_url: str,
    folder: Path | None,
    before: Callable[[psycopg.Connection[Any]], object] | None,
) -> list[str]:
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
        migrations = load_migrations(folder)
        redo = _repeatables_stale(conn, [m for m in migrations if m.repeatable], done)
        for m in migrations:
            if m.number in done and not (m.repeatable and redo):
                if not m.repeatable and done[m.number] != m.checksum:
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


def _repeatables_stale(
    conn: psycopg.Connection[Any], repeatables: Sequence[Migration], done: dict[int, str]
) -> bool:
    """True when a repeatable file is new or changed, or something it creates is missing
    (one file's ALTERs may extend another's tables, so they are redone all together)."""
    if any(done.get(m.number) != m.checksum for m in repeatables):
        return True
    names = [name for m in repeatables for name in m.creates]
    row = conn.execute(
        "SELECT bool_and(to_regclass(n) IS NOT NULL) FROM unnest(%s::text[]) AS n", (names,)
    ).fetchone()
    return not (row and row[0] is not False)
