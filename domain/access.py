"""Who may do what: roles, the permissions each grants, and the principal a request acts as.

One table (`GRANTS`) is the whole policy; routes, WebSocket joins and Socket.IO events each
declare the one permission they need, and enforcement compares the two. Pure: the API layer
finds the principal (token, device credentials, anonymous setting) and asks `may`.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Role(StrEnum):
    ADMIN = "admin"
    ANNOTATOR = "annotator"
    ANALYST = "analyst"
    AUDITOR = "auditor"
    VIEWER = "viewer"
    DEVICE = "device"


class Permission(StrEnum):
    READ = "read"
    """Read models: projects, videos, annotations, sessions, results, dashboard, live rooms."""
    MANAGE_PROJECTS = "manage_projects"
    """Projects, their videos (upload, delete) and models assigned to them."""
    ANNOTATE = "annotate"
    """Annotations, annotation sessions, imports, candidate review."""
    RUN_TESTS = "run_tests"
    """Test sessions (create, start, stop, pause, complete), criteria, evaluations, runs."""
    OPERATE_PROJECTIONS = "operate_projections"
    """Projection status writes: rebuild, retry failures."""
    AUDIT = "audit"
    """The global event log, histories, as-of state, the hash chain."""
    INGEST = "ingest"
    """Publish detections (HTTP device ingest, NATS detections subjects)."""
    ADMINISTER = "administer"
    """Principals, tokens, devices, detector models."""


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.ANNOTATOR: frozenset({Permission.READ, Permission.MANAGE_PROJECTS, Permission.ANNOTATE}),
    Role.ANALYST: frozenset(
        {Permission.READ, Permission.RUN_TESTS, Permission.OPERATE_PROJECTIONS}
    ),
    Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT}),
    Role.VIEWER: frozenset({Permission.READ}),
    Role.DEVICE: frozenset({Permission.INGEST}),
}


class PrincipalKind(StrEnum):
    USER = "user"
    SERVICE = "service"
    DEVICE = "device"
    TOKEN = "token"  # noqa: S105 - a kind of principal, not a secret
    """A token issued with a role of its own, not on behalf of a registered principal."""
    ANONYMOUS = "anonymous"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The identity a request acts as; `actor` is what its events record."""

    id: str
    name: str
    kind: PrincipalKind
    role: Role | None
    """None: an anonymous request where anonymous access is off (`VERITY_ANONYMOUS_ROLE=none`)."""

    @property
    def actor(self) -> str:
        """`kind:name` (`user:ada`, `service:video-worker`, `device:cam-7`); plain
        `anonymous` for the anonymous principal, as events recorded before identities."""
        if self.kind is PrincipalKind.ANONYMOUS:
            return "anonymous"
        return f"{self.kind.value}:{self.name}"

    @property
    def authenticated(self) -> bool:
        return self.kind is not PrincipalKind.ANONYMOUS


def may(principal: Principal, permission: Permission) -> bool:
    return principal.role is not None and permission in GRANTS[principal.role]


def anonymous(role: Role | None) -> Principal:
    return Principal(id="anonymous", name="anonymous", kind=PrincipalKind.ANONYMOUS, role=role)


def service(name: str) -> Principal:
    """A Verity process acting on its own (a worker, the CLI): actor `service:<name>`."""
    return Principal(id=f"service:{name}", name=name, kind=PrincipalKind.SERVICE, role=Role.ADMIN)


def role_setting(value: str) -> Role | None:
    """`VERITY_ANONYMOUS_ROLE`: a role, or `none` (no access without a token)."""
    text = value.strip().lower()
    if text == "none":
        return None
    if text not in ANONYMOUS_ROLES:
        msg = f"anonymous role {value!r}: expected one of none, {', '.join(ANONYMOUS_ROLES)}"
        raise ValueError(msg)
    return Role(text)


ANONYMOUS_ROLES = (Role.VIEWER, Role.ANNOTATOR, Role.ANALYST, Role.ADMIN)
"""What anonymous requests may act as (never `device` or `auditor`: those need a token)."""
