"""Every aggregate and event class of the domain, whether or not the caller imported it."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import domain
from domain.events import VerityAggregate


def _import_all() -> None:
    for module in pkgutil.walk_packages(domain.__path__, f"{domain.__name__}."):
        importlib.import_module(module.name)


def _subclasses(root: type[Any]) -> list[type[Any]]:
    """Each subclass once, however deep, also where one inherits from two listed classes."""
    found: dict[type[Any], None] = {}
    pending = list(root.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls not in found:
            found[cls] = None
            pending.extend(cls.__subclasses__())
    return list(found)


def aggregate_classes() -> list[type[VerityAggregate]]:
    """The domain's own (a test may define aggregates of its own; they are not Verity's)."""
    _import_all()
    return [c for c in _subclasses(VerityAggregate) if c.__module__.startswith("domain.")]


def event_classes() -> list[type[Any]]:
    _import_all()
    return _subclasses(VerityAggregate.Event)
