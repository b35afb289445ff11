"""Candidate review on the in-memory store: the filter, the events, the re-check on change."""

from __future__ import annotations

from uuid import UUID

import pytest

from commands.annotations import (
    CreateAnnotation,
    UpdateAnnotation,
    create_annotation,
    update_annotation,
)
from commands.application import Verity
from commands.candidate_review import ReviewCandidates, review_candidates
from commands.context import run_as
from commands.projects import ensure_central_store
from commands.videos import RegisterUpload, register_upload
from domain.annotations import Annotation, AnnotationChanges, AnnotationDraft, BoundingBox, Source
from domain.candidate_review import REJECTED, CandidateFilter, ReviewAction, selects
from domain.errors import InvalidValue, NotFound
from domain.events import EventMeta
from domain.ground_truth import counts_as_ground_truth
from domain.projects import CENTRAL_STORE_ID
from domain.vru import VruType

pytestmark = pytest.mark.unit


@pytest.fixture
def app() -> Verity:
    application = Verity(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    ensure_central_store(application)
    return application


def video(app: Verity) -> UUID:
    cmd = RegisterUpload(
        project_id=CENTRAL_STORE_ID,
        filename="v.mp4",
        original_name="v.mp4",
        size=1,
        sha256="0",
        metadata=None,
    )
    register_upload(cmd, app)
    return cmd.id


def add(
    app: Verity,
    video_id: UUID,
    frame: int,
    confidence: float | None,
    vru: VruType = VruType.PEDESTRIAN,
    source: Source = Source.DETECTOR,
) -> UUID:
    draft = AnnotationDraft(
        frame_number=frame,
        timestamp=frame / 10,
        vru_type=vru,
        box=BoundingBox(1, 1, 10, 10),
        source=source,
        confidence=confidence,
    )
    cmd = CreateAnnotation(video_id=video_id, draft=draft)
    create_annotation(cmd, app)
    return cmd.id


def test_the_filter_selects_only_candidates_within_every_bound(app: Verity) -> None:
    vid = video(app)
    ids = {
        "high": add(app, vid, 0, 0.9),
        "low": add(app, vid, 5, 0.2),
        "none": add(app, vid, 6, None),
        "cyclist": add(app, vid, 7, 0.9, VruType.CYCLIST),
        "late": add(app, vid, 50, 0.9),
        "human": add(app, vid, 1, 0.9, source=Source.MANUAL),
    }
    chosen = CandidateFilter(min_confidence=0.5, classes=("pedestrian",), frame_to=10)
    picked = {k for k, i in ids.items() if selects(chosen, app.load(Annotation, i).state())}
    assert picked == {"high"}
    everything = {k for k, i in ids.items() if selects(CandidateFilter(), app.load(Annotation, i))}
    assert everything == {"high", "low", "none", "cyclist", "late"}  # not the human's


def test_accept_and_reject_record_one_event_each_with_the_actor(app: Verity) -> None:
    vid = video(app)
    keep, drop, other = add(app, vid, 0, 0.9), add(app, vid, 1, 0.1), add(app, vid, 2, 0.5)
    accept = ReviewCandidates(
        video_id=vid,
        action=ReviewAction.ACCEPT,
        filter=CandidateFilter(min_confidence=0.8),
        ids=(keep, drop),  # a stale read model may list one the filter no longer selects
    )
    result = run_as(EventMeta(actor="ann"), review_candidates, accept, app)
    assert (result.accepted, result.rejected, result.skipped) == (1, 0, 1)
    reject = ReviewCandidates(
        video_id=vid, action=ReviewAction.REJECT, filter=CandidateFilter(), ids=(drop,)
    )
    assert run_as(EventMeta(actor="bob"), review_candidates, reject, app).rejected == 1

    kept, dropped = app.load(Annotation, keep), app.load(Annotation, drop)
    assert counts_as_ground_truth(kept.state()) and not counts_as_ground_truth(dropped.state())
    assert not counts_as_ground_truth(app.load(Annotation, other).state())
    last_keep = list(app.events.get(keep))[-1]
    last_drop = list(app.events.get(drop))[-1]
    assert isinstance(last_keep, Annotation.Validated) and last_keep.meta.actor == "ann"
    assert isinstance(last_drop, Annotation.Deleted) and last_drop.reason == REJECTED
    assert last_drop.meta.actor == "bob"


def test_a_candidate_edited_out_of_the_filter_is_left_alone(app: Verity) -> None:
    vid = video(app)
    ident = add(app, vid, 0, 0.9)
    listed = (ident,)  # what the read model said before the edit
    changes = AnnotationChanges(vru_type=VruType.CYCLIST)
    update_annotation(UpdateAnnotation(id=ident, changes=changes), app)
    cmd = ReviewCandidates(
        video_id=vid,
        action=ReviewAction.REJECT,
        filter=CandidateFilter(classes=("pedestrian",)),
        ids=listed,
    )
    result = review_candidates(cmd, app)
    assert (result.rejected, result.skipped, result.position) == (0, 1, None)
    assert not app.load(Annotation, ident).deleted


def test_bounds_out_of_order_and_unknown_videos_are_refused(app: Verity) -> None:
    vid = video(app)
    for chosen, field in [
        (CandidateFilter(min_confidence=0.9, max_confidence=0.1), "maxConfidence"),
        (CandidateFilter(frame_from=9, frame_to=3), "frameTo"),
    ]:
        cmd = ReviewCandidates(video_id=vid, action=ReviewAction.ACCEPT, filter=chosen, ids=())
        with pytest.raises(InvalidValue) as err:
            review_candidates(cmd, app)
        assert err.value.field == field
    missing = ReviewCandidates(
        video_id=CENTRAL_STORE_ID, action=ReviewAction.ACCEPT, filter=CandidateFilter(), ids=()
    )
    with pytest.raises(NotFound):
        review_candidates(missing, app)
