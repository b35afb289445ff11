"""camelCase keys for responses built from snake_case Structs and JSON documents."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.casing import to_camel


def camel(value: Any) -> Any:
    """Builtins of `value` (Structs included) with every dict key in camelCase."""
    return _rename(msgspec.to_builtins(value))


def _rename(value: Any) -> Any:
    if isinstance(value, dict):
        return {to_camel(k) if isinstance(k, str) else k: _rename(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v) for v in value]
    return value


def both_casings(values: dict[str, Any]) -> dict[str, Any]:
    """Each snake_case key also under its camelCase spelling (contract decision 1)."""
    out = dict(values)
    for key, value in values.items():
        out.setdefault(to_camel(key), value)
    return out


def both_casings_deep(values: dict[str, Any]) -> dict[str, Any]:
    """`both_casings` at every level of a JSON-like document."""
    return both_casings({k: _deep(v) for k, v in values.items()})


def _deep(value: Any) -> Any:
    if isinstance(value, dict):
        return both_casings_deep(value)
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value
