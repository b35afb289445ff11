"""Write side of renditions: the worker records the browser-playable copy it wrote, or why
there is none. Each is recorded once; a redelivery or a second worker changes nothing."""

from __future__ import annotations

from uuid import UUID

import msgspec

from commands.application import Position, Verity
from commands.video_quality import finish
from domain.renditions import Rendition


class RecordRendition(msgspec.Struct, frozen=True, kw_only=True):
    video_id: UUID
    rendition: Rendition


class FailRendition(msgspec.Struct, frozen=True, kw_only=True):
    video_id: UUID
    reason: str


def record_rendition(cmd: RecordRendition, app: Verity) -> Position | None:
    """None when the video's rendition outcome was already recorded: the first stands."""
    return finish(app, cmd.video_id, lambda v: v.record_rendition(cmd.rendition))


def fail_rendition(cmd: FailRendition, app: Verity) -> Position | None:
    return finish(app, cmd.video_id, lambda v: v.fail_rendition(cmd.reason))
