"""A player without a token plays a video through the signed URL an authenticated reader was
given, where requests without a token may not read (anonymous role none), on real PostgreSQL
and NATS; changed, misplaced, expired and revoked links are refused with 403 and `detail`."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient

from api.media_links import MediaLinks
from domain.access import Principal, PrincipalKind, Role
from tests.e2e.helpers import write_video
from tests.e2e.identity import access_client, bearer, cli_token
from verity.settings import Settings

pytestmark = pytest.mark.e2e


def local(url: str) -> str:
    """The path and query of a URL the API gave (its host is the configured public one)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def upload(client: TestClient[Any], token: str, path: Path) -> str:
    with path.open("rb") as f:
        r = client.post(
            "/api/videos", files={"file": (path.name, f, "video/mp4")}, headers=bearer(token)
        )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_a_player_without_a_token_plays_a_signed_url(settings: Settings, tmp_path: Path) -> None:
    admin = cli_token(settings, "--name", "root", "--role", "admin")
    viewer = cli_token(settings, "--name", "wall", "--role", "viewer")
    with access_client(settings, workers=()) as client:
        first = upload(client, admin, write_video(tmp_path / "first.mp4"))
        second = upload(client, admin, write_video(tmp_path / "second.mp4", frames=12))

        video = client.get(f"/api/videos/{first}", headers=bearer(viewer)).json()
        url, original = local(video["url"]), local(video["originalUrl"])
        assert url == original and "sig=" in url and "exp=" in url
        assert "vrt_" not in url  # the token's secret never goes into a URL
        stored = (settings.uploads_dir / video["storedName"]).read_bytes()
        listed = client.get("/api/videos", headers=bearer(viewer)).json()["videos"]
        assert {v["id"]: local(v["url"]) for v in listed}[first] == url

        part = client.get(url, headers={"Range": "bytes=100-199"})  # no Authorization
        assert part.status_code == 206, part.text
        assert part.content == stored[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(stored)}"
        assert part.headers["cache-control"] == "private"
        head = client.head(url)
        assert head.status_code == 200 and head.headers["etag"]
        again = client.get(url, headers={"If-None-Match": head.headers["etag"]})
        assert again.status_code == 304

        path, query = url.split("?")
        sig = query.rsplit("sig=", 1)[1]
        tampered = f"{path}?{query[: -len(sig)]}{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
        other = client.get(f"/api/videos/{second}", headers=bearer(viewer)).json()
        elsewhere = f"{urlsplit(other['url']).path}?{query}"
        links: MediaLinks = client.app.state.media_links
        past = dataclasses.replace(links, clock=lambda: links.clock() - 3 * links.ttl)
        who = Principal(
            id=query.split("by=")[1].split("&")[0],
            name="wall",
            kind=PrincipalKind.TOKEN,
            role=Role.VIEWER,
        )
        expired = local(asyncio.run(past.url_maker(who, ""))(video["storedName"]))
        for refused_url, detail in [
            (tampered, "media link: bad signature"),
            (elsewhere, "media link: bad signature"),
            (expired, "media link: expired"),
        ]:
            r = client.get(refused_url, headers={"Range": "bytes=0-9"})
            assert r.status_code == 403, (refused_url, r.text)
            assert r.json() == {"detail": detail}

        bare = client.get(path)
        assert bare.status_code == 401 and "authentication required" in bare.json()["detail"]
        assert client.get(path, headers=bearer(viewer)).status_code == 200

        token_id = who.id
        revoked = client.post(f"/api/admin/tokens/{token_id}/revoke", headers=bearer(admin))
        assert revoked.status_code == 200, revoked.text
        dead = client.get(url)
        assert dead.status_code == 403 and dead.json() == {"detail": "media link: token revoked"}
