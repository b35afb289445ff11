"""Operation ids for a handler served at more than one path (a frontend page's own spelling)."""

from __future__ import annotations

from typing import Any

from litestar.types import OperationIDCreator


def per_path(ids: dict[str, str]) -> OperationIDCreator:
    """The id of the first key found in the path's literal segments (`{"sessions": ...}`), else
    the id under `""`: OpenAPI wants one id per operation, and each path is an operation."""

    def creator(handler: Any, method: Any, components: list[Any]) -> str:
        segments = [c for c in components if isinstance(c, str)]
        return next((ids[s] for s in segments if s in ids), ids[""])

    return creator
