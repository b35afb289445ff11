"""Principals and tokens on the in-memory store: events, their rules, the token's text and
digest, the anonymous role setting, and the rate limiter."""

from __future__ import annotations

import hashlib
from uuid import uuid4

import pytest

from api.limits import RateLimiter
from commands.application import Verity
from commands.context import run_as
from commands.principals import AddPrincipal, ChangeRole, add_principal, change_role
from commands.tokens import (
    PREFIX,
    CreateToken,
    RevokeToken,
    create_token,
    revoke_token,
    secret_matches,
    split_token,
)
from domain.access import PrincipalKind, Role, anonymous, role_setting, service
from domain.errors import Conflict, InvalidValue, NotFound
from domain.events import EventMeta
from domain.principals import Account, account_id
from domain.tokens import ApiToken

pytestmark = pytest.mark.unit


@pytest.fixture
def app() -> Verity:
    return Verity(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def test_a_principal_and_its_role_changes_are_events(app: Verity) -> None:
    meta = EventMeta(actor="user:root")
    run_as(meta, add_principal, AddPrincipal(name="ada", role=Role.ANNOTATOR), app)
    run_as(meta, change_role, ChangeRole(name="ada", role=Role.VIEWER), app)
    assert change_role(ChangeRole(name="ada", role=Role.VIEWER), app) is None  # no change
    events = list(app.events.get(account_id("ada")))
    assert [type(e) for e in events] == [Account.Registered, Account.RoleChanged]
    assert all(e.meta.actor == "user:root" for e in events)  # type: ignore[attr-defined]
    assert app.load(Account, account_id("ada")).role is Role.VIEWER
    with pytest.raises(Conflict):
        add_principal(AddPrincipal(name="ada", role=Role.ADMIN), app)
    with pytest.raises(NotFound):
        change_role(ChangeRole(name="bob", role=Role.ADMIN), app)
    for bad in ("", "a b", "user:x", "-x", "a" * 101, "é"):
        with pytest.raises(InvalidValue):
            add_principal(AddPrincipal(name=bad, role=Role.VIEWER), app)


def test_a_token_is_shown_once_and_only_its_digest_is_stored(app: Verity) -> None:
    issued = create_token(CreateToken(name="ci", role=Role.ANALYST, expires_days=7), app)
    ident, secret = split_token(issued.token) or (None, "")
    assert ident == issued.id and issued.token.startswith(f"{PREFIX}_{issued.id.hex}_")
    assert len(secret) >= 43  # 32 random bytes
    stored = app.load(ApiToken, issued.id)
    assert stored.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(list(app.events.get(issued.id)))
    assert secret_matches(secret, stored.digest) and not secret_matches(secret + "x", stored.digest)
    assert stored.expires_at is not None
    other = create_token(CreateToken(name="ci", role=Role.ANALYST), app)
    assert other.token != issued.token and other.id != issued.id
    revoke_token(RevokeToken(id=issued.id), app)
    assert app.load(ApiToken, issued.id).revoked
    with pytest.raises(Conflict):
        revoke_token(RevokeToken(id=issued.id), app)
    with pytest.raises(NotFound):
        revoke_token(RevokeToken(id=uuid4()), app)


def test_a_token_acts_with_a_role_or_as_a_principal(app: Verity) -> None:
    with pytest.raises(InvalidValue):
        create_token(CreateToken(name="x"), app)
    with pytest.raises(InvalidValue):
        create_token(CreateToken(name="x", role=Role.ADMIN, principal="ada"), app)
    with pytest.raises(NotFound):
        create_token(CreateToken(name="x", principal="ada"), app)
    add_principal(AddPrincipal(name="ada", role=Role.ANNOTATOR), app)
    assert app.load(ApiToken, create_token(CreateToken(name="x", principal="ada"), app).id)


@pytest.mark.parametrize(
    "text",
    ["", "vrt", "vrt__", f"xyz_{uuid4().hex}_s", f"vrt_{uuid4().hex}_", "vrt_nothex_s", "Bearer"],
)
def test_text_that_is_not_a_token_is_recognised(text: str) -> None:
    assert split_token(text) is None


def test_actors_and_the_anonymous_role_setting() -> None:
    assert anonymous(Role.ADMIN).actor == "anonymous"
    assert service("video-worker").actor == "service:video-worker"
    assert service("x").kind is PrincipalKind.SERVICE
    assert role_setting(" Viewer ") is Role.VIEWER and role_setting("none") is None
    for bad in ("device", "auditor", "root", ""):
        with pytest.raises(ValueError, match="anonymous role"):
            role_setting(bad)


def test_the_rate_limiter_counts_a_sliding_minute_per_key() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=2, clock=lambda: now[0])
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") == 60 and limiter.take("b") == 0
    now[0] = 30.0
    assert limiter.blocked_for("a") == 30
    now[0] = 60.5
    assert limiter.take("a") == 0
    assert RateLimiter(per_minute=0).take("a") == 0
