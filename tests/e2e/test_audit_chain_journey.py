"""An auditor's journey with the hash chain: note the head over HTTP, export a signed copy,
check it without the database, check the store, and see a tampered copy refused by position."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.e2e.helpers import api_client
from verity.cli import main
from verity.settings import Settings

pytestmark = pytest.mark.e2e

NEW_PROJECT = {
    "name": "Chain camera",
    "cameraModel": "Axis",
    "cameraView": "Front-facing VRU",
    "signalType": "GPIO",
}


@pytest.fixture
def client(settings: Settings) -> Any:
    with api_client(settings) as c:
        yield c


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERITY_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("VERITY_NATS_URL", settings.nats_url or "")
    monkeypatch.setenv("VERITY_DATA_DIR", str(settings.data_dir))


def verify(*args: str) -> int:
    try:
        main(["audit", "verify", *args])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


@pytest.mark.usefixtures("cli_env")
def test_head_export_signed_verify_and_a_tampered_copy(
    client: TestClient[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(5):
        response = client.post("/api/projects", json={**NEW_PROJECT, "name": f"Chain {i}"})
        assert response.status_code == 200, response.text
    head = client.get("/api/audit/chain/head").json()
    assert head["algorithm"] == "sha256" and len(head["hash"]) == 64
    assert head["position"] >= 5 and head["count"] >= 5

    key = tmp_path / "audit.key"
    main(["audit", "keygen", "--out", str(key)])
    public = (tmp_path / "audit.key.pub").read_text().strip()
    assert key.stat().st_mode & 0o077 == 0
    out = tmp_path / "log.ndjson"
    main(["audit", "export", "--out", str(out), "--to", str(head["position"]), "--sign", str(key)])
    lines = out.read_bytes().splitlines(keepends=True)
    trailer = json.loads(lines[-1])
    assert (trailer["lastPosition"], trailer["headHash"]) == (head["position"], head["hash"])
    assert trailer["count"] == head["count"] == len(lines) - 2

    capsys.readouterr()
    assert verify(str(out), "--public-key", public) == 0
    assert f"signed by {public}" in capsys.readouterr().out
    assert verify("--database", "--expect-head", f"{head['position']}:{head['hash']}") == 0
    assert "chain intact" in capsys.readouterr().out
    assert verify("--database", "--expect-head", f"{head['position']}:{'0' * 64}") == 1
    assert f"chain broken at position {head['position']}" in capsys.readouterr().err

    event = json.loads(lines[3])
    event["originatorVersion"] += 1
    tampered = tmp_path / "tampered.ndjson"
    tampered.write_bytes(
        b"".join(
            [*lines[:3], json.dumps(event, separators=(",", ":")).encode() + b"\n", *lines[4:]]
        )
    )
    assert verify(str(tampered)) == 1
    assert f"chain broken at position {event['position']} (line 4)" in capsys.readouterr().err

    part = tmp_path / "part.ndjson"
    main(["audit", "export", "--out", str(part), "--from", "3", "--to", "4"])
    assert verify(str(part)) == 0
    assert verify(str(part), "--public-key", public) == 1  # unsigned
    assert "not signed" in capsys.readouterr().err


def test_the_head_of_a_fresh_store_is_its_newest_event(client: TestClient[Any]) -> None:
    first = client.get("/api/audit/chain/head").json()
    client.post("/api/projects", json=NEW_PROJECT)
    second = client.get("/api/audit/chain/head").json()
    assert second["position"] > first["position"]
    assert second["count"] == first["count"] + 1
    assert second["hash"] != first["hash"]
