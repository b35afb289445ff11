"""Signed media links: short-lived URLs to stored videos, for players that cannot send a token.

A browser's `<video src>` sends no `Authorization` header, and a bearer token in a URL would
leak into logs, history and Referer. So where requests without a token may not read, a video's
`url`/`originalUrl` given to an authenticated reader is `/uploads/NAME?exp=&by=&sig=`: `exp`
(unix seconds), `by` (the id of the token it was given to: the public half of a token, not its
secret) and `sig`, HMAC-SHA256 over the path, `exp` and `by` (base64url). Such a request acts
as that token's principal (api/auth.py), looked up again on every use like a bearer token, so
a revoked or expired token's links, or a principal that lost `read`, are refused at once. A
link names one file: it opens nothing else. Where the anonymous role reads, URLs stay plain.

`exp` is rounded up to a step of half the TTL, so a page that polls a video list gets the same
URL for a while (a changed `src` restarts the player): a link lives between TTL and 1.5 TTL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from litestar.datastructures import State
from psycopg_pool import AsyncConnectionPool

from domain.access import Permission, Principal, Role, anonymous, may
from storage.media_link_key import media_link_key

PREFIX = "/uploads/"
"""The only paths links are made for and accepted on."""

FIELDS = ("exp", "by", "sig")


class BadLink(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = f"media link: {detail}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signature(key: bytes, path: str, exp: int, by: str) -> str:
    return _b64(hmac.new(key, f"{path}\n{exp}\n{by}".encode(), hashlib.sha256).digest())


@dataclass
class MediaLinks:
    ttl: int
    """Seconds a link lives at least (VERITY_MEDIA_LINK_TTL)."""
    anonymous_role: Role | None
    read_pool: Callable[[], AsyncConnectionPool[Any]]
    clock: Callable[[], float] = time.time
    _key: bytes | None = field(default=None, repr=False)

    async def key(self) -> bytes:
        """Read once from the database (made there by the first process that needs one)."""
        if self._key is None:
            async with self.read_pool().connection() as conn:
                self._key = await media_link_key(conn, secrets.token_bytes(32))
        return self._key

    def needed_by(self, principal: Principal) -> bool:
        """Whether `principal`'s video URLs must carry a signature: it authenticated, and a
        request without a token could not read them."""
        return principal.authenticated and not may(anonymous(self.anonymous_role), Permission.READ)

    def expiry(self) -> int:
        step = max(1, self.ttl // 2)
        return math.ceil((self.clock() + self.ttl) / step) * step

    async def url_maker(self, principal: Principal, base_url: str) -> Callable[[str], str]:
        """Stored file name -> the URL `principal` is given for it."""
        if not self.needed_by(principal):
            return lambda name: f"{base_url}{PREFIX}{name}"
        key, exp, by = await self.key(), self.expiry(), principal.id

        def url(name: str) -> str:
            path = f"{PREFIX}{name}"
            query = urlencode({"exp": exp, "by": by, "sig": signature(key, path, exp, by)})
            return f"{base_url}{path}?{query}"

        return url

    async def verify(self, path: str, query: Mapping[str, list[str]]) -> UUID:
        """The id of the token a link was made for; BadLink when it is not a valid, unexpired
        link for exactly `path`."""
        if not path.startswith(PREFIX):
            raise BadLink("not a link to a stored file")
        values = {name: query.get(name, []) for name in FIELDS}
        if any(len(v) != 1 for v in values.values()):
            raise BadLink("needs exactly one each of exp, by and sig")
        exp_text, by, sig = (values[name][0] for name in FIELDS)
        if not exp_text.isascii() or not exp_text.isdigit() or len(exp_text) > 12:
            raise BadLink("exp is not a time")
        exp = int(exp_text)
        expected = signature(await self.key(), path, exp, by)
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
            raise BadLink("bad signature")
        if exp <= self.clock():
            raise BadLink("expired")
        try:
            return UUID(by)
        except ValueError:
            raise BadLink("made for no token") from None


def media_links_of(state: State) -> MediaLinks:
    links: MediaLinks = state.media_links
    return links
