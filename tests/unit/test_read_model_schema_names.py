"""Which schema names a replay or rebuild may write into, and how `--until` is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.read_model_schema import BadSchemaName, check_schema_name
from verity.replay_command import parse_until

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["audit", "audit_2026_03", "_x", "a" * 63])
def test_plain_lower_case_identifiers_are_accepted(name: str) -> None:
    assert check_schema_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "public",
        "information_schema",
        "pg_temp",
        "pg_catalog",
        "Audit",
        "1audit",
        "audit-2026",
        'a"; DROP SCHEMA public CASCADE; --',
        "a b",
        "a" * 64,
        "audit\x00",
    ],
)
def test_reserved_quoted_or_too_long_names_are_refused(name: str) -> None:
    with pytest.raises(BadSchemaName, match="schema: "):
        check_schema_name(name)


def test_until_is_a_position_or_an_iso_time_utc_by_default() -> None:
    assert parse_until("120000") == 120000
    assert parse_until("2026-03-01T00:00:00") == datetime(2026, 3, 1, tzinfo=UTC)
    east = parse_until("2026-03-01T02:00:00+02:00")
    assert east == datetime(2026, 3, 1, tzinfo=UTC)
    assert isinstance(east, datetime) and east.utcoffset() == timedelta(hours=2)
    assert parse_until("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    for bad in ("-5", "yesterday", "12e3", ""):
        with pytest.raises(SystemExit, match="--until"):
            parse_until(bad)
