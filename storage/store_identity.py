"""Which event store this database is: one id, made by migration 0012, never changed."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import Connection


def store_id(conn: Connection[Any]) -> UUID:
    row = conn.execute("SELECT id FROM store_identity").fetchone()
    if row is None:
        msg = "store_identity is empty; run `verity migrate`"
        raise RuntimeError(msg)
    return UUID(str(row[0]))
