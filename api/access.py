"""How this API admits callers: anonymous role, browser origins, Host names, abuse limits."""

from __future__ import annotations

from dataclasses import dataclass

from api.browser import DEV_ORIGINS
from domain.access import Role


@dataclass(frozen=True)
class AccessConfig:
    anonymous_role: Role | None = Role.ADMIN
    """What a request without a token acts as (None: nothing; it gets 401)."""
    cors_origins: tuple[str, ...] = DEV_ORIGINS
    """Origins (besides this server's own) whose pages may call the API."""
    allowed_hosts: frozenset[str] | None = None
    """`Host` values accepted (api/browser.py); None: no check (only for in-process tests)."""
    writes_per_minute: int = 1200
    """Writes per principal (anonymous: per address) in any minute; 0 turns the limit off."""
    failed_auths_per_minute: int = 20
    """Failed authentications per client address in any minute before 429."""
    media_link_ttl: int = 3600
    """Seconds a signed media link lives at least (api/media_links.py)."""
