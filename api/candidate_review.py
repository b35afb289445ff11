"""POST /api/videos/{id}/candidates/review: accept or reject a detector's candidates in bulk."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api.annotations import load_video, run_command
from api.inputs import InputDTO
from api.services import caught_up, services_of
from commands.candidate_review import ReviewCandidates, review_candidates
from domain.candidate_review import CandidateFilter, ReviewAction
from domain.limits import Fraction, FrameNumber
from domain.vru import VruType
from projections.candidate_review import pending_candidates, selected_candidates


class ReviewIn(msgspec.Struct, kw_only=True):
    """Which candidates, and what to do with them; unset bounds do not filter."""

    action: ReviewAction
    min_confidence: Fraction | None = None
    max_confidence: Fraction | None = None
    classes: Annotated[list[VruType], msgspec.Meta(max_length=len(VruType))] | None = None
    frame_from: FrameNumber | None = None
    frame_to: FrameNumber | None = None
    """Inclusive."""


class ReviewOut(msgspec.Struct, kw_only=True, rename="camel"):
    video_id: UUID
    action: str
    matched: int
    """Candidates the filter selected."""
    accepted: int
    rejected: int
    skipped: int
    """Selected, but changed by someone else meanwhile so that the filter no longer selects
    them: left alone."""
    remaining: int
    """The video's candidates still awaiting review."""


class CandidateReviewController(Controller):
    tags = ["annotations"]

    @post(
        "/api/videos/{video_id:uuid}/candidates/review",
        operation_id="reviewCandidates",
        summary="Accept or reject a video's detector candidates by confidence, class and frames",
        description="Accepting validates each selected candidate (it then counts as ground "
        "truth); rejecting deletes it with the reason 'rejected in review'. One event per "
        "annotation, recorded with the request's principal as actor.",
        status_code=200,
        dto=InputDTO[ReviewIn],
        return_dto=None,
    )
    async def review(
        self,
        state: State,
        request: Request[Any, Any, Any],
        video_id: FromPath[UUID],
        data: JSONBody[ReviewIn],
    ) -> ReviewOut:
        services = services_of(state)
        await load_video(services, video_id)
        chosen = CandidateFilter(
            min_confidence=data.min_confidence,
            max_confidence=data.max_confidence,
            classes=tuple(c.value for c in data.classes or ()),
            frame_from=data.frame_from,
            frame_to=data.frame_to,
        )
        chosen.check()
        async with services.read_pool.connection() as conn:
            ids = await selected_candidates(conn, video_id, chosen)
        cmd = ReviewCandidates(video_id=video_id, action=data.action, filter=chosen, ids=tuple(ids))
        result = await run_command(services, request, review_candidates, cmd)
        await caught_up(services, result.position, "annotations_v1")
        async with services.read_pool.connection() as conn:
            remaining = await pending_candidates(conn, video_id)
        return ReviewOut(
            video_id=video_id,
            action=data.action.value,
            matched=len(ids),
            accepted=result.accepted,
            rejected=result.rejected,
            skipped=result.skipped,
            remaining=remaining,
        )
