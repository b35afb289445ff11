"""The audit reads' inputs, checked once for the API and the CLI alike: each bad value is an
InvalidValue naming the field as the caller spelled it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import msgspec

from domain.errors import InvalidValue, check_text
from domain.limits import DEFAULT_AUDIT_PAGE, INT64_MAX, MAX_AUDIT_PAGE, MAX_IDENTIFIER
from projections.audit_decoding import aggregate_topics, aggregate_type_named, topics_named


class LogFilter(msgspec.Struct, frozen=True, kw_only=True):
    topics: tuple[str, ...] | None = None
    """Only these event classes; None: all."""
    aggregate_id: UUID | None = None
    actor: str | None = None
    since: datetime | None = None
    """Events at or after this time."""
    until: datetime | None = None
    """Events at or before this time."""


class LogQuery(msgspec.Struct, frozen=True, kw_only=True):
    filter: LogFilter
    after: int = 0
    """Position cursor: events after this position."""
    limit: int = DEFAULT_AUDIT_PAGE


def _text(field: str, value: str | None, longest: int = MAX_IDENTIFIER) -> str | None:
    if value is None or value == "":
        return None
    check_text(field, value)
    if len(value) > longest:
        raise InvalidValue(field, f"{field}: at most {longest} characters")
    return value


def parse_position(field: str, value: str | None) -> int:
    text = _text(field, value, 20)
    if text is None:
        return 0
    if not text.isascii() or not text.isdigit() or int(text) > INT64_MAX:
        raise InvalidValue(field, f"{field}: must be a log position (a whole number, 0 or more)")
    return int(text)


def parse_limit(field: str, value: str | None) -> int:
    text = _text(field, value, 20)
    if text is None:
        return DEFAULT_AUDIT_PAGE
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_AUDIT_PAGE:
        raise InvalidValue(field, f"{field}: must be a whole number from 1 to {MAX_AUDIT_PAGE}")
    return int(text)


def _utc(field: str, text: str) -> datetime:
    """ISO 8601 in UTC; a time without an offset is UTC."""
    try:
        when = datetime.fromisoformat(text)
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        msg = f"{field}: must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z"
        raise InvalidValue(field, msg) from None


def parse_time(field: str, value: str | None) -> datetime | None:
    text = _text(field, value, 64)
    return None if text is None else _utc(field, text)


def parse_uuid(field: str, value: str | None) -> UUID | None:
    text = _text(field, value, 64)
    if text is None:
        return None
    try:
        return UUID(text)
    except ValueError:
        raise InvalidValue(field, f"{field}: must be a UUID") from None


def _topics(aggregate_type: str | None, event_type: str | None) -> tuple[str, ...] | None:
    topics: tuple[str, ...] | None = None
    if (name := _text("aggregateType", aggregate_type)) is not None:
        known = aggregate_type_named(name)
        if known is None:
            names = ", ".join(aggregate_topics())
            raise InvalidValue("aggregateType", f"aggregateType: unknown (known: {names})")
        topics = aggregate_topics()[known]
    if (name := _text("eventType", event_type, 256)) is not None:
        named = topics_named(name)
        if not named:
            msg = "eventType: no such event (give a topic, `Video.Uploaded` or `video.uploaded`)"
            raise InvalidValue("eventType", msg)
        topics = named if topics is None else tuple(t for t in topics if t in named)
    return topics


def parse_log_query(
    *,
    after: str | None = None,
    limit: str | None = None,
    aggregate_type: str | None = None,
    aggregate_id: str | None = None,
    event_type: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> LogQuery:
    """The query as typed at the door (strings), checked; field names as the API spells them."""
    start, end = parse_time("from", since), parse_time("to", until)
    if start and end and end < start:
        raise InvalidValue("to", "to: must not be before from")
    log_filter = LogFilter(
        topics=_topics(aggregate_type, event_type),
        aggregate_id=parse_uuid("aggregateId", aggregate_id),
        actor=_text("actor", actor),
        since=start,
        until=end,
    )
    return LogQuery(
        filter=log_filter, after=parse_position("after", after), limit=parse_limit("limit", limit)
    )


class AsOf(msgspec.Struct, frozen=True, kw_only=True):
    version: int | None = None
    time: datetime | None = None


def parse_as_of(value: str | None) -> AsOf | None:
    """`asOf`: a version (a whole number from 1) or an ISO 8601 time; None: now."""
    text = _text("asOf", value, 64)
    if text is None:
        return None
    if text.isascii() and text.isdigit():
        version = int(text)
        if not 1 <= version <= INT64_MAX:
            raise InvalidValue("asOf", "asOf: a version is a whole number from 1")
        return AsOf(version=version)
    try:
        return AsOf(time=_utc("asOf", text))
    except InvalidValue:
        msg = "asOf: must be a version (1, 2, ...) or an ISO 8601 time"
        raise InvalidValue("asOf", msg) from None
