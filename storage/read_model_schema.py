"""Read-model tables in a schema of their own, and read models whose tables went missing.

The repeatable migrations (`-- verity:repeatable`) are the read models' whole DDL and name no
schema, so run with `search_path` set to another schema they build the same empty tables
there. A blue-green rebuild fills such a shadow schema while the live tables keep serving;
`verity replay` leaves one behind for auditors. Each has its own `tracking` and
`projection_failures`, so the projection runner works there unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

from psycopg import Connection, sql

from storage.migrate import load_migrations

SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""Lower-case identifiers that need no quoting, within PostgreSQL's 63 bytes."""

RESERVED = frozenset({"public", "information_schema"})
MARK = "verity read models"
"""Start of the comment on every schema built here: what `--replace` may drop."""


class BadSchemaName(ValueError):
    pass


def check_schema_name(name: str) -> str:
    """`name` if it may hold read models; BadSchemaName says why not."""
    if not SCHEMA_NAME.fullmatch(name):
        msg = "schema: 1-63 characters a-z, 0-9 and _, not starting with a digit"
        raise BadSchemaName(msg)
    if name in RESERVED or name.startswith("pg_"):
        msg = f"schema: {name} is reserved (the live read models and the event store are there)"
        raise BadSchemaName(msg)
    return name


def schema_kind(conn: Connection[Any], name: str) -> str | None:
    """None when no such schema exists; "verity" for one built here; "foreign" otherwise."""
    row = conn.execute(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
        (name,),
    ).fetchone()
    if row is None:
        return None
    return "verity" if str(row[0] or "").startswith(MARK) else "foreign"


def drop_schema(conn: Connection[Any], name: str) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def create_read_model_schema(conn: Connection[Any], name: str, note: str) -> None:
    """A fresh schema `name` with every read-model table empty, its own tracking table and
    failure list; `note` is kept in its comment (what it holds, for whom looks later)."""
    schema = sql.Identifier(check_schema_name(name))
    with conn.transaction():
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        conn.execute(
            sql.SQL("COMMENT ON SCHEMA {} IS {}").format(schema, sql.Literal(f"{MARK}: {note}"))
        )
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
        conn.execute(
            "CREATE TABLE tracking (name text PRIMARY KEY, position bigint NOT NULL DEFAULT 0,"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in load_migrations():
            if migration.repeatable:
                conn.execute(migration.sql.encode())


def comment_schema(conn: Connection[Any], name: str, note: str) -> None:
    conn.execute(
        sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
            sql.Identifier(name), sql.Literal(f"{MARK}: {note}")
        )
    )


def missing_tables(
    conn: Connection[Any], tables: Sequence[str], schema: str = "public"
) -> list[str]:
    rows = conn.execute(
        "SELECT t FROM unnest(%s::text[]) AS t"
        " WHERE to_regclass(quote_ident(%s) || '.' || quote_ident(t)) IS NULL",
        (list(tables), schema),
    ).fetchall()
    return [str(t) for (t,) in rows]


def forget_dropped_read_models(
    conn: Connection[Any], read_models: Mapping[str, Sequence[str]]
) -> list[str]:
    """Before the repeatable DDL runs: a read model with a table missing, or with tables but
    no tracking row, loses its remaining tables, tracking row and failures, so the DDL makes
    it anew, empty, and its runner rebuilds it from position 0 (a dropped table used to come
    back empty with its position still at the head). Returns the names reset."""
    if not _exists(conn, "public.tracking"):
        return []  # a new database: nothing was ever projected
    tracked = {str(n) for (n,) in conn.execute("SELECT name FROM public.tracking").fetchall()}
    reset = []
    for name, tables in read_models.items():
        missing = missing_tables(conn, tables)
        if not missing and name in tracked:
            continue
        if len(missing) == len(tables) and name not in tracked:
            continue  # never built: the DDL and the runner start it from nothing anyway
        for table in tables:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("public", table)))
        conn.execute("DELETE FROM public.tracking WHERE name = %s", (name,))
        if _exists(conn, "public.projection_failures"):
            conn.execute("DELETE FROM public.projection_failures WHERE projection = %s", (name,))
        reset.append(name)
    return reset


def _exists(conn: Connection[Any], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


REBUILD_LOCK_CLASS = 0x5652_4231
"""First key of the advisory lock a rebuild of one read model holds (the second: its name's
hash), so two rebuilds of the same read model, in any processes, never overlap."""


def try_rebuild_lock(conn: Connection[Any], name: str) -> bool:
    """Session lock on `conn` (autocommit): held until released or the connection ends, so a
    crashed rebuild never leaves it behind."""
    row = conn.execute(
        "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (REBUILD_LOCK_CLASS, name)
    ).fetchone()
    return bool(row and row[0])


def lock_live_tracking(conn: Connection[Any], name: str) -> int:
    """Inside the swap's transaction: the live runner of `name` waits from here to commit."""
    conn.execute(
        "INSERT INTO public.tracking (name, position) VALUES (%s, 0) ON CONFLICT DO NOTHING",
        (name,),
    )
    row = conn.execute(
        "SELECT position FROM public.tracking WHERE name = %s FOR UPDATE", (name,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def swap_in(
    conn: Connection[Any], shadow: str, name: str, tables: Sequence[str], position: int
) -> None:
    """Inside the transaction that holds the live tracking row: the shadow's tables replace
    the live ones, with their position and failures, and the shadow schema goes."""
    for table in tables:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("public", table)))
        conn.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA public").format(sql.Identifier(shadow, table))
        )
    conn.execute(
        "UPDATE public.tracking SET position = %s, updated_at = now() WHERE name = %s",
        (position, name),
    )
    conn.execute("DELETE FROM public.projection_failures WHERE projection = %s", (name,))
    conn.execute(
        sql.SQL(
            "INSERT INTO public.projection_failures SELECT * FROM {} WHERE projection = %s"
        ).format(sql.Identifier(shadow, "projection_failures")),
        (name,),
    )
    drop_schema(conn, shadow)


class DeferredIndex(NamedTuple):
    table: str
    name: str
    create: str
    """The statement that makes it again (in the same schema)."""
    key: bool
    """A primary key (dropped and added back as a constraint), not a plain index."""


def defer_indexes(
    conn: Connection[Any], tables: Sequence[str], appended: Collection[str] = ()
) -> list[DeferredIndex]:
    """Drop, from `tables` in the connection's current schema (a build's own, still empty),
    the indexes that only serve reads, and the primary keys of the `appended` tables (whose
    rows are only ever added); returns what makes them again (`restore_index`).

    Building an index once over a filled table costs a fraction of updating it row by row
    (rm_detections' primary key: ~2.7 µs of PostgreSQL per row kept up while filling, ~1.3 µs
    built afterwards). Unique indexes and every other key stay: they decide which events
    fail, and the projections find their rows through them."""
    rows = conn.execute(
        "SELECT c.relname, i.relname, pg_get_indexdef(x.indexrelid), x.indisunique,"
        " k.contype, pg_get_constraintdef(k.oid)"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class c ON c.oid = x.indrelid"
        " LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.conrelid = c.oid"
        " WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)"
        " ORDER BY c.relname, i.relname",
        (list(tables),),
    ).fetchall()
    deferred = []
    for table, name, indexdef, unique, contype, constraintdef in rows:
        if contype is None and not unique:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            deferred.append(DeferredIndex(table, name, indexdef, key=False))
        elif contype == "p" and table in appended:
            t, n = sql.Identifier(table), sql.Identifier(name)
            conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(t, n))
            create = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(t, n).as_string(conn)
            deferred.append(DeferredIndex(table, name, create + constraintdef, key=True))
    return deferred


def restore_index(conn: Connection[Any], index: DeferredIndex) -> None:
    """Build a deferred index again; a primary key over duplicate rows raises
    psycopg.errors.UniqueViolation (and the caller's transaction is aborted)."""
    conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
    conn.execute(index.create.encode())
