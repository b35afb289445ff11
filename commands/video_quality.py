"""Write side of video processing: a worker takes a video on, then records its quality or why
it failed. Each step is idempotent, so a redelivered upload records nothing twice."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import msgspec

from commands.application import Position, Verity
from domain.errors import ConcurrentModification
from domain.video_quality import QualityAssessment
from domain.videos import Video


class StartVideoProcessing(msgspec.Struct, frozen=True, kw_only=True):
    video_id: UUID
    samples: int = 0


class RecordVideoQuality(msgspec.Struct, frozen=True, kw_only=True):
    video_id: UUID
    assessment: QualityAssessment


class FailVideoProcessing(msgspec.Struct, frozen=True, kw_only=True):
    video_id: UUID
    reason: str
    stage: str = "quality"


class Started(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker needs to go on: the stored file, or that there is nothing to do."""

    filename: str
    done: bool
    """Processing already ended (a redelivery, or another worker): nothing to do."""
    rendition_settled: bool = False
    """A rendition (or why there is none) is already recorded."""
    position: Position | None = None


def start_video_processing(cmd: StartVideoProcessing, app: Verity) -> Started:
    """Mark the video `processing` (once). A deleted video raises NotFound."""
    for _ in range(3):  # another worker may take it between our load and our commit
        video = app.load(Video, cmd.video_id)
        if video.processed:
            return Started(filename=video.filename, done=True)
        video.start_processing(cmd.samples)
        settled = video.rendition is not None
        try:
            position = app.commit(video)
            return Started(
                filename=video.filename, done=False, rendition_settled=settled, position=position
            )
        except ConcurrentModification:
            continue
    raise ConcurrentModification("Video", cmd.video_id)


def record_video_quality(cmd: RecordVideoQuality, app: Verity) -> Position | None:
    """None when processing had already ended: the first verdict stands."""
    return finish(app, cmd.video_id, lambda v: v.record_quality(cmd.assessment))


def fail_video_processing(cmd: FailVideoProcessing, app: Verity) -> Position | None:
    return finish(app, cmd.video_id, lambda v: v.fail_processing(cmd.reason, cmd.stage))


def finish(app: Verity, video_id: UUID, decide: Callable[[Video], bool]) -> Position | None:
    """Load, decide, commit; retried when another writer got in between. None: no change."""
    for _ in range(3):
        video = app.load(Video, video_id)
        if not decide(video):
            return None
        try:
            return app.commit(video)
        except ConcurrentModification:
            continue
    raise ConcurrentModification("Video", video_id)
