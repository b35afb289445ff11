"""The API's access configuration (api/access.py) from the settings, and how to describe it."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from api.access import AccessConfig
from api.browser import DEV_ORIGINS, allowed_hosts
from domain.access import Role, role_setting
from verity.settings import Settings


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def anonymous_role(settings: Settings) -> Role | None:
    if settings.anonymous_role is None:
        return Role.ADMIN if is_loopback(settings.host) else None
    try:
        return role_setting(settings.anonymous_role)
    except ValueError as err:
        msg = f"Invalid VERITY_ANONYMOUS_ROLE: {err}"
        raise SystemExit(msg) from err


def access_config(settings: Settings) -> AccessConfig:
    extra = _names(settings.allowed_hosts)
    if settings.public_url:
        extra.append(urlsplit(settings.public_url).hostname or "")
    origins = _names(settings.cors_origins) if settings.cors_origins is not None else DEV_ORIGINS
    return AccessConfig(
        anonymous_role=anonymous_role(settings),
        cors_origins=tuple(origins),
        allowed_hosts=allowed_hosts(settings.host, settings.port, [e for e in extra if e]),
        writes_per_minute=settings.writes_per_minute,
        failed_auths_per_minute=settings.failed_auths_per_minute,
        media_link_ttl=settings.media_link_ttl,
    )


def describe_access(config: AccessConfig) -> str:
    """The banner's lines: what a request without a token may do, and who may call."""
    role = config.anonymous_role.value if config.anonymous_role else "none"
    means = (
        "requests without a token get 401"
        if config.anonymous_role is None
        else f"requests without a token act as {role}"
    )
    return (
        f"  anonymous: {role} ({means}; VERITY_ANONYMOUS_ROLE)\n"
        f"  origins:   {', '.join(config.cors_origins) or 'same origin only'}"
    )
