"""Every route's success response has a schema in the OpenAPI document, not an untyped body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.app import create_app

pytestmark = pytest.mark.unit

METHODS = {"get", "post", "put", "patch", "delete"}


def _untyped(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    """An empty schema, or an object that names no property (a hand-built dict)."""
    if "$ref" in schema:
        return _untyped(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return any(_untyped(s, components) for s in schema[key])
    if schema.get("type") == "array":
        return _untyped(schema.get("items", {}), components)
    if schema.get("type") == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return _untyped(extra, components)
        return not schema.get("properties")
    return not schema


def test_every_success_response_has_a_schema(tmp_path: Path) -> None:
    document = create_app(lambda: None, tmp_path).openapi_schema.to_schema()  # type: ignore[arg-type, return-value]
    components = document["components"]["schemas"]
    untyped = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            codes = sorted(c for c in operation["responses"] if c.startswith("2"))
            assert codes, f"{method} {path} documents no success response"
            if codes[0] == "204":
                continue
            content = operation["responses"][codes[0]].get("content") or {}
            schemas = [c.get("schema", {}) for c in content.values()] or [{}]
            if any(_untyped(s, components) for s in schemas):
                untyped.append(f"{method.upper()} {path}")
    assert not untyped, f"success responses without a schema: {untyped}"


def test_the_check_finds_a_hand_built_dict() -> None:
    assert _untyped({}, {})
    assert _untyped({"type": "object", "additionalProperties": {}}, {})
    assert _untyped({"type": "array", "items": {"$ref": "#/c/X"}}, {"X": {"type": "object"}})
    assert not _untyped({"$ref": "#/c/X"}, {"X": {"type": "object", "properties": {"a": {}}}})
