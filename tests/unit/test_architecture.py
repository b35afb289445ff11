"""The layering holds: SQL only in projections/ and storage/, a pure domain, no outward import.

Read from the source's syntax trees, so the checks cost nothing at run time and name the line
that breaks a rule. The packages checked are the ones the wheel ships (pyproject), so a new
top-level package is covered without editing this file.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.unit

SQL_HOMES = {"projections", "storage"}
"""Query functions next to their read model; the Postgres implementations of the write side's
storage, the migrations, the relay's and the evaluator's tracking reads, the server probes."""

SQL_EXCEPTIONS: dict[str, str] = {}
"""Modules outside SQL_HOMES allowed to execute SQL (path -> why); an entry whose module no
longer executes SQL fails the test, so the list only shrinks."""

DB_CALLS = {"execute", "executemany", "cursor"}
"""Methods of psycopg connections and cursors that send SQL (`copy` is checked apart: numpy
and dicts have a `copy()` without arguments, psycopg's takes the COPY statement)."""

SQL_TEXT = re.compile(
    r"^\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|CREATE\s|ALTER\s|DROP\s"
    r"|LISTEN\s|NOTIFY\s|WITH\s+\w+\s+AS\s*\()"
)
"""A string literal that is a statement: SQL handed to a helper executes all the same."""

DOMAIN_MAY_IMPORT = {"msgspec", "numpy", "scipy", "eventsourcing.domain"}

OUTWARD: dict[str, set[str]] = {
    "commands": {"projections", "storage", "api", "workers", "verity"},
    "projections": {"api", "workers", "verity"},
    "storage": {"api", "workers", "verity"},
    "formats": {"projections", "storage", "api", "workers", "verity"},
    "api": {"verity"},
    "workers": {"verity"},
}
"""Packages each one must not import: domain <- commands <- projections/storage <- api/workers
<- verity (the composition root, imported by nobody). domain is checked apart: nothing of ours.
"""


def _packages() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages: list[str] = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return packages


def _modules(package: str) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((REPO / package).rglob("*.py")):
        yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text(), str(path))


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants (module, class, function), which may describe SQL."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def sql_uses(tree: ast.Module) -> list[str]:
    """Where a module sends SQL or builds it: `line: what`."""
    docstrings = _docstrings(tree)
    uses = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name in DB_CALLS or (name == "copy" and node.args):
                uses.append(f"{line}: .{name}()")
        elif isinstance(node, ast.ImportFrom) and node.module in {"psycopg", "psycopg.sql"}:
            if node.module == "psycopg.sql" or any(a.name == "sql" for a in node.names):
                uses.append(f"{line}: imports psycopg.sql")
        elif isinstance(node, ast.Import) and any(a.name == "psycopg.sql" for a in node.names):
            uses.append(f"{line}: imports psycopg.sql")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "sql"
            and isinstance(node.value, ast.Name)
            and node.value.id == "psycopg"
        ):
            uses.append(f"{line}: psycopg.sql")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and SQL_TEXT.match(node.value)
        ):
            uses.append(f"{line}: SQL text {node.value[:40]!r}")
    return uses


def imported(tree: ast.Module, package: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import, lazy and TYPE_CHECKING ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside our own package
                yield node.lineno, package
            elif node.module == "eventsourcing":
                for alias in node.names:
                    yield node.lineno, f"eventsourcing.{alias.name}"
            else:
                yield node.lineno, node.module or ""


def _root(module: str) -> str:
    return module.split(".", 1)[0]


def test_sql_only_in_projections_and_storage() -> None:
    offenders = {}
    exempt_unused = set(SQL_EXCEPTIONS)
    for package in _packages():
        if package in SQL_HOMES:
            continue
        for path, tree in _modules(package):
            uses = sql_uses(tree)
            if path in SQL_EXCEPTIONS:
                if uses:
                    exempt_unused.discard(path)
            elif uses:
                offenders[path] = uses
    assert not offenders, f"SQL outside {sorted(SQL_HOMES)}: {offenders}"
    assert not exempt_unused, f"exceptions that no longer execute SQL: {sorted(exempt_unused)}"


def test_the_check_finds_sql() -> None:
    """The checker itself: each way of sending or building SQL is seen, numpy's copy is not."""
    source = (
        "from psycopg import sql\n"
        "import psycopg.sql\n"
        "conn.execute(q)\n"
        "cur.executemany(q, rows)\n"
        "conn.cursor()\n"
        "cur.copy(q)\n"
        "psycopg.sql.SQL(q)\n"
        "run(conn, 'SELECT id FROM t')\n"
        "arr.copy()\n"
        "execute(services, request, handler, cmd)\n"
        "msg = 'Select a video first'\n"
    )
    found = [use.split(":", 1)[0] for use in sql_uses(ast.parse(source))]
    assert sorted(found, key=int) == ["1", "2", "3", "4", "5", "6", "7", "8"]


def test_domain_imports_only_the_standard_library_and_its_allowed_libraries() -> None:
    ours = set(_packages())
    bad = []
    for path, tree in _modules("domain"):
        for line, module in imported(tree, "domain"):
            root = _root(module)
            if root == "domain" or root in sys.stdlib_module_names:
                continue
            allowed = any(module == a or module.startswith(a + ".") for a in DOMAIN_MAY_IMPORT)
            if root in ours or not allowed:
                bad.append(f"{path}:{line} imports {module}")
    assert not bad, bad


def test_no_import_points_outward() -> None:
    packages = _packages()
    forbidden = {**OUTWARD, "domain": set(packages) - {"domain"}}
    bad = []
    for package in packages:
        for path, tree in _modules(package):
            for line, module in imported(tree, package):
                if _root(module) in forbidden.get(package, set()):
                    bad.append(f"{path}:{line} imports {module}")
    assert not bad, bad
