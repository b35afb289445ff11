"""Junk at every route: no answer is a 5xx, none carries a stack trace or an internal path,
a JSON body over the limit is a 413, and failed authentications are slowed down (429)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from litestar.handlers import HTTPRouteHandler
from litestar.testing import TestClient

from api.access import AccessConfig
from api.policy import is_auto_options
from domain.limits import JSON_BODY_MAX
from tests.conftest import settings_for
from tests.e2e.identity import access_client, bearer

pytestmark = pytest.mark.e2e

PARAM = re.compile(r"\{(\w+):(\w+)\}")
LEAKS = re.compile(r"Traceback|File \"|\.py\b|site-packages|/work/|/root/|/home/|/tmp/")
JUNK: list[tuple[str, bytes]] = [
    ("application/json", b"{not json"),
    ("application/json", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("application/json", b'{"name": "\\u0000", "role": [1e999], "id": -1}'),
    ("application/octet-stream", bytes(range(256)) * 4),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\n\r\n"),
]


@pytest.fixture(scope="module")
def client(
    database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient[Any]]:
    settings = settings_for(database_url, nats_url, tmp_path_factory.mktemp("junk"))
    access = AccessConfig(failed_auths_per_minute=5)  # anonymous admin: every route is reached
    with access_client(settings, access, workers=()) as c:
        yield c


def routes(client: TestClient[Any]) -> Iterator[tuple[str, str]]:
    for route in client.app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if isinstance(handler, HTTPRouteHandler) and not is_auto_options(handler):
                path = PARAM.sub(
                    lambda m: str(uuid4()) if m.group(2) == "uuid" else "x%00..%2f", route.path
                )
                for method in sorted(handler.http_methods - {"HEAD", "OPTIONS"}):
                    yield method, path


def test_junk_everywhere_answers_4xx_with_detail_and_no_internals(
    client: TestClient[Any],
) -> None:
    wrong = []
    for method, path in routes(client):
        for content_type, body in JUNK if method != "GET" else JUNK[:1]:
            r = client.request(method, path, content=body, headers={"Content-Type": content_type})
            is_json = "json" in r.headers.get("content-type", "")
            if r.status_code >= 500 or LEAKS.search(r.text):
                wrong.append(f"{method} {path} {content_type}: {r.status_code} {r.text[:200]}")
            elif r.status_code >= 400 and is_json and "detail" not in r.json():
                wrong.append(f"{method} {path}: {r.status_code} without detail")
    assert not wrong, "\n".join(wrong)


def test_a_json_body_over_the_limit_is_refused(client: TestClient[Any]) -> None:
    big = json.dumps({"name": "x" * (JSON_BODY_MAX + 1)})
    r = client.post("/api/projects", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["detail"]


def test_failed_authentications_are_slowed_down(client: TestClient[Any]) -> None:
    bad = bearer(f"vrt_{uuid4().hex}_{'x' * 43}")
    answers = [client.get("/api/projects", headers=bad).status_code for _ in range(6)]
    assert answers == [401] * 5 + [429]
    limited = client.get("/api/projects", headers=bad)
    assert int(limited.headers["retry-after"]) > 0 and limited.json()["detail"]
    assert client.get("/api/projects").status_code == 200  # no token: not an auth failure
