"""Operation ids for a handler served at more than one path (a frontend page's own spelling)."""

from __future__ import annotations

from typing import Any

from litestar.types import OperationIDCreator


class PerPath:
    """The id of the first key found in the path's literal segments (`{"sessions": ...}`), else
    the id under `""`: OpenAPI wants one id per operation, and each path is an operation.
    `canonical` (the `""` id) names the handler where one name is needed (its access policy)."""

    def __init__(self, ids: dict[str, str]) -> None:
        self.ids = ids
        self.canonical = ids[""]

    def __call__(self, handler: Any, method: Any, components: list[Any]) -> str:
        segments = [c for c in components if isinstance(c, str)]
        return next((self.ids[s] for s in segments if s in self.ids), self.canonical)


def per_path(ids: dict[str, str]) -> OperationIDCreator:
    return PerPath(ids)
