"""Signed media links (api/media_links.py): what a link carries and every way one is refused,
with a fixed key and clock (no database)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import pytest

from api.media_links import BadLink, MediaLinks
from domain.access import Principal, PrincipalKind, Role, anonymous
from verity.settings import MEDIA_LINK_TTL_MAX, Settings

pytestmark = pytest.mark.unit

NOW = 1_700_000_000.0
TOKEN = uuid4()
VIEWER = Principal(id=str(TOKEN), name="wall", kind=PrincipalKind.TOKEN, role=Role.VIEWER)


def no_pool() -> Any:
    raise AssertionError("the key is given; no database here")


def links(anonymous_role: Role | None = None, now: float = NOW, key: bytes = b"k" * 32) -> Any:
    return MediaLinks(3600, anonymous_role, no_pool, clock=lambda: now, _key=key)


def url_for(made: MediaLinks, name: str = "a.mp4", who: Principal = VIEWER) -> str:
    return asyncio.run(made.url_maker(who, "http://h:8000"))(name)


def verify(made: MediaLinks, url: str, path: str | None = None) -> Any:
    parts = urlsplit(url)
    return asyncio.run(made.verify(path or parts.path, parse_qs(parts.query)))


def test_a_link_names_its_file_its_expiry_and_its_token() -> None:
    url = url_for(links())
    parts = urlsplit(url)
    assert parts.path == "/uploads/a.mp4"
    query = parse_qs(parts.query)
    assert query["by"] == [str(TOKEN)]
    assert NOW + 3600 <= int(query["exp"][0]) < NOW + 1.5 * 3600
    assert verify(links(), url) == TOKEN
    assert url_for(links(now=NOW + 60)) == url  # a polling page keeps its player's src


def test_plain_urls_where_requests_without_a_token_read() -> None:
    assert url_for(links(Role.VIEWER)) == "http://h:8000/uploads/a.mp4"
    assert url_for(links(), who=anonymous(None)) == "http://h:8000/uploads/a.mp4"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda u: u[:-2] + ("AA" if not u.endswith("AA") else "BB"), "bad signature"),
        (lambda u: u.replace("exp=", "exp=1"), "bad signature"),
        (lambda u: u.replace(f"by={TOKEN}", f"by={uuid4()}"), "bad signature"),
        (lambda u: u.replace("exp=", "exp=x"), "exp is not a time"),
        (lambda u: u + "&sig=again", "needs exactly one each of exp, by and sig"),
        (lambda u: u.split("&sig=")[0] + "&sig=%FF", "bad signature"),
    ],
)
def test_a_changed_link_is_refused(change: Any, detail: str) -> None:
    with pytest.raises(BadLink) as refused:
        verify(links(), change(url_for(links())))
    assert refused.value.detail == f"media link: {detail}"


def test_a_link_opens_only_its_own_file_under_its_own_key_until_it_expires() -> None:
    url = url_for(links())
    for path, made, detail in [
        ("/uploads/b.mp4", links(), "bad signature"),
        ("/api/videos", links(), "not a link to a stored file"),
        (None, links(key=b"other" * 8), "bad signature"),
        (None, links(now=NOW + 2 * 3600), "expired"),
    ]:
        with pytest.raises(BadLink) as refused:
            verify(made, url, path)
        assert refused.value.detail == f"media link: {detail}"


def test_the_longest_ttl_the_settings_accept_still_makes_links_that_verify() -> None:
    """A TTL past the bound would make `exp` too long for `verify` to read: every link
    refused. The setting stops at the bound, and a link made at it verifies."""
    longest = MediaLinks(MEDIA_LINK_TTL_MAX, None, no_pool, clock=lambda: NOW, _key=b"k" * 32)
    assert verify(longest, url_for(longest)) == TOKEN
    with pytest.raises(SystemExit, match="media_link_ttl"):
        Settings.from_env({"VERITY_MEDIA_LINK_TTL": str(MEDIA_LINK_TTL_MAX + 1)})
