"""Domain errors: each names what is wrong in words a person can act on."""

from __future__ import annotations

from uuid import UUID


class DomainError(Exception):
    """Base of every rule violation; the API maps each subclass to one HTTP status."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    def __init__(self, kind: str, ident: UUID | str, detail: str | None = None) -> None:
        super().__init__(detail or f"{kind} not found")
        self.kind = kind
        self.ident = ident


class Conflict(DomainError):
    """The request is well-formed but contradicts the current state."""


class InvalidValue(DomainError):
    """A field's value breaks a rule; `field` is the name the client used."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


def check_text(field: str, value: object) -> None:
    """PostgreSQL text cannot hold NUL; refuse it at the door rather than poison a read model."""
    if isinstance(value, str) and "\x00" in value:
        raise InvalidValue(field, f"{field}: must not contain NUL characters")


class ConcurrentModification(Conflict):
    """Someone else changed the aggregate between our read and our write."""

    def __init__(self, kind: str, ident: UUID, current_version: int | None = None) -> None:
        suffix = f" (current version {current_version})" if current_version else ""
        super().__init__(f"{kind} {ident} was modified concurrently{suffix}; reload and retry")
        self.current_version = current_version
