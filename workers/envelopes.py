"""How a stored event travels on NATS: its subject and dedup header (the envelope itself is
projections/envelopes.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from projections.envelopes import Envelope, encode, envelope

MSG_ID = "Nats-Msg-Id"


def subject_of(env: Envelope[Any], subject_prefix: str) -> str:
    return f"{subject_prefix}.{env.aggregate}.{env.type}"


def msg_id(store: UUID, position: int) -> str:
    """Unique per store, not just per position: two databases on one NATS (staging and a test
    database, a fresh one after a reset) must not drop each other's events as duplicates."""
    return f"{store}:{position}"


def envelope_of(
    event: Any, position: int, subject_prefix: str, store: UUID
) -> tuple[str, dict[str, str], bytes]:
    """(subject, headers, payload) for one stored event."""
    env = envelope(event, position)
    return subject_of(env, subject_prefix), {MSG_ID: msg_id(store, position)}, encode(env)
