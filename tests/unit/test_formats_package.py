"""formats/ converts files and annotation drafts for api/ and workers/ alike: it imports only
domain/, itself, the standard library, msgspec and defusedxml, and its whole-file refusals carry
a kind that api/errors.py alone turns into an HTTP status."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from api.errors import file_refused
from formats.import_limits import FormatError, ImportTooDeep, ImportTooLarge, Refusal

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"domain", "formats", "msgspec", "defusedxml", "cryptography"}


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_formats_imports_nothing_outward() -> None:
    outward = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "formats").rglob("*.py"))
        for name in _imported(path)
        if name not in ALLOWED and name not in sys.stdlib_module_names and name != "__future__"
    }
    assert outward == set()


def test_the_scan_sees_an_outward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from api.inputs import InputError\nimport litestar\n")
    assert _imported(module) - ALLOWED == {"api", "litestar"}


REFUSALS = [
    (FormatError("file: not valid JSON", line=3, file="a.json"), 400),
    (ImportTooLarge("file: more than 100000 rows (MAX_IMPORT_ROWS)"), 413),
    (ImportTooDeep("file: nested deeper than 16 levels (MAX_NESTING)", file="b.xml"), 422),
    (FormatError("file: zip entry 'x' is encrypted", kind=Refusal.UNSUPPORTED), 422),
]


def test_the_cases_cover_every_kind() -> None:
    assert {error.kind for error, _ in REFUSALS} == set(Refusal)


@pytest.mark.parametrize(("error", "status"), REFUSALS)
def test_each_kind_of_refusal_is_one_status_naming_the_file_field(
    error: FormatError, status: int
) -> None:
    response = file_refused(None, error)  # type: ignore[arg-type]
    assert response.status_code == status
    body = response.content
    assert body["detail"] == error.message and body["imported"] == 0
    issue = {"field": "file", "message": error.message, "line": error.line, "file": error.file}
    assert body["errors"] == [{k: v for k, v in issue.items() if v is not None}]
    json.dumps(body)  # plain JSON
