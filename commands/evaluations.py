"""Write side of evaluations: score a session and record the result with what it was scored on.

Re-running with ``pinned`` ground truth loads exactly the annotation versions an earlier
evaluation used, so the figures come out identical however the annotations changed since;
``latest`` reads the ground truth as it is now and reports what moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from uuid import UUID, uuid4

import msgspec
import numpy as np
from eventsourcing.application import AggregateNotFoundError

from commands.application import Position, Verity
from commands.criteria import criteria_of
from commands.evaluation_inputs import (
    AnnotationLike,
    DetectionInput,
    DetectionLike,
    EvaluationSources,
    GroundTruthInput,
    Interpolator,
    SessionLike,
    comparison_rows,
    detections_of,
    ground_truth_of,
)
from domain.annotations import Annotation, AnnotationState
from domain.errors import Conflict, NotFound
from domain.evaluation import (
    EvaluationConfig,
    EvaluationReport,
    FrameCounts,
    Verdict,
    evaluate,
    operating_point_pairs,
    verdict,
)
from domain.evaluations import (
    DetectionsPin,
    Evaluation,
    GroundTruthPin,
    Trigger,
    completion_evaluation_id,
)
from domain.tracks import interpolate_track

_SMALLEST_IOU = float(np.nextafter(0.0, 1.0))
HISTORY_READERS = 6
"""Threads reading pinned annotation versions (below the event store's pool size)."""


class GroundTruthChoice(StrEnum):
    PINNED = "pinned"
    LATEST = "latest"


class EvaluateSession(msgspec.Struct, frozen=True, kw_only=True):
    session_id: UUID
    trigger: Trigger = Trigger.REQUESTED
    confidence_threshold: float | None = None
    confidence_level: float = 0.95
    id: UUID = msgspec.field(default_factory=uuid4)


class RerunEvaluation(msgspec.Struct, frozen=True, kw_only=True):
    evaluation_id: UUID
    """The earlier evaluation to re-run (same parameters)."""
    ground_truth: GroundTruthChoice
    id: UUID = msgspec.field(default_factory=uuid4)


class Headline(msgspec.Struct, frozen=True, kw_only=True):
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    accuracy: float | None
    ap: float | None
    ap50: float | None
    ap75: float | None


class Change(msgspec.Struct, frozen=True, kw_only=True):
    before: float | None
    after: float | None
    delta: float | None


class GroundTruthChanges(msgspec.Struct, frozen=True, kw_only=True):
    """Annotation versions in the new pin compared with the old one."""

    added: int
    removed: int
    changed: int
    unchanged: int


class Evaluated(msgspec.Struct, frozen=True, kw_only=True):
    evaluation_id: UUID
    position: Position | None
    report: EvaluationReport
    verdict: Verdict | None
    ground_truth: GroundTruthPin
    detections: DetectionsPin


class Rerun(msgspec.Struct, frozen=True, kw_only=True):
    evaluated: Evaluated
    based_on: UUID
    ground_truth: GroundTruthChoice
    previous: Headline
    current: Headline
    changes: dict[str, Change]
    ground_truth_changes: GroundTruthChanges


def headline(report: EvaluationReport) -> Headline:
    c, coco = report.counts, report.coco
    return Headline(
        tp=c.tp,
        fp=c.fp,
        fn=c.fn,
        precision=c.precision,
        recall=c.recall,
        f1=c.f1,
        accuracy=c.accuracy,
        ap=coco.ap,
        ap50=coco.ap50,
        ap75=coco.ap75,
    )


def config_for(
    session: SessionLike, confidence_threshold: float | None, confidence_level: float
) -> EvaluationConfig:
    return EvaluationConfig(
        iou_threshold=max(float(session.iou_threshold), _SMALLEST_IOU),
        temporal_tolerance_ms=float(session.tolerance_ms),
        confidence_threshold=confidence_threshold,
        confidence_level=confidence_level,
    )


def _session(sources: EvaluationSources, session_id: UUID) -> SessionLike:
    session = sources.session(session_id)
    if session is None:
        raise NotFound("Test session", session_id, f"Test session {session_id} not found")
    return session


def _no_ground_truth(session: SessionLike) -> Conflict:
    return Conflict(
        f"Test session {session.id} cannot be evaluated: video {session.video_id} has no ground "
        "truth (no annotation that is human-made (manual or imported) or a validated detector "
        "candidate). Annotate the video first."
    )


def _score(
    app: Verity,
    evaluation_id: UUID,
    session: SessionLike,
    config: EvaluationConfig,
    gt: GroundTruthInput,
    det: DetectionInput,
    detections: Sequence[DetectionLike],
    gt_position: int,
    trigger: Trigger,
    based_on: UUID | None = None,
) -> Evaluated:
    if len(gt.gt) == 0:
        raise _no_ground_truth(session)
    try:
        report = evaluate(gt.gt, det.det, config)
        pairs, keep = operating_point_pairs(gt.gt, det.det, config)
    except ValueError as err:  # the engine refuses data it cannot score; say which
        msg = f"Test session {session.id} cannot be scored: {err}"
        raise Conflict(msg) from None
    rows = comparison_rows(
        gt, det, pairs.gt.tolist(), pairs.det.tolist(), pairs.value.tolist(), keep.tolist()
    )
    criteria = criteria_of(app, session.project_id)
    judged = verdict(report, criteria) if criteria is not None else None
    ground_truth = GroundTruthPin(position=gt_position, annotations=gt.pins)
    received = [r for d in detections if (r := getattr(d, "received_at", None)) is not None]
    pinned_detections = DetectionsPin(
        count=len(detections), last_received_at=max(received) if received else None
    )
    evaluation = Evaluation._create(
        Evaluation.Requested,
        id=evaluation_id,
        session_id=session.id,
        project_id=session.project_id,
        video_id=session.video_id,
        config=config,
        ground_truth=ground_truth,
        detections=pinned_detections,
        trigger=trigger,
        based_on=based_on,
    )
    stored = msgspec.structs.replace(
        report, frame_counts=FrameCounts(frames=(), tp=(), fp=(), fn=())
    )
    evaluation.record(stored, judged, rows, criteria)
    position = app.commit(evaluation)
    return Evaluated(
        evaluation_id=evaluation_id,
        position=position,
        report=report,
        verdict=judged,
        ground_truth=ground_truth,
        detections=pinned_detections,
    )


def evaluate_session(
    cmd: EvaluateSession,
    app: Verity,
    sources: EvaluationSources,
    interpolate: Interpolator | None = interpolate_track,
) -> Evaluated:
    """Score the session's detections so far against the video's current ground truth."""
    session = _session(sources, cmd.session_id)
    position = sources.position()
    annotations = sources.annotations(session.video_id)
    detections = sources.detections(session.id)
    gt = build_ground_truth(annotations, interpolate)
    det = detections_of(
        detections, fps=sources.frame_rate(session.video_id), epoch=session.started_at
    )
    config = config_for(session, cmd.confidence_threshold, cmd.confidence_level)
    return _score(app, cmd.id, session, config, gt, det, detections, position, cmd.trigger)


def evaluate_on_completion(
    cmd: EvaluateSession,
    app: Verity,
    sources: EvaluationSources,
    interpolate: Interpolator | None = interpolate_track,
) -> Evaluated | str | None:
    """The completion evaluation (id from the session), recorded once.

    None when it already exists; when the session cannot be evaluated (no ground truth) the
    refusal is recorded as a failed evaluation and its reason returned, so the results
    endpoints can say what is missing instead of waiting forever.
    """
    ident = completion_evaluation_id(cmd.session_id)
    if app.exists(ident):
        return None
    cmd = msgspec.structs.replace(cmd, id=ident, trigger=Trigger.COMPLETED)
    try:
        return evaluate_session(cmd, app, sources, interpolate)
    except Conflict as refused:
        session = _session(sources, cmd.session_id)
        evaluation = Evaluation._create(
            Evaluation.Requested,
            id=ident,
            session_id=session.id,
            project_id=session.project_id,
            video_id=session.video_id,
            config=config_for(session, cmd.confidence_threshold, cmd.confidence_level),
            ground_truth=GroundTruthPin(position=sources.position(), annotations=()),
            detections=DetectionsPin(
                count=getattr(session, "detection_count", None)
                or len(sources.detections(session.id))
            ),
            trigger=Trigger.COMPLETED,
        )
        evaluation.fail(refused.detail)
        app.commit(evaluation)
        return refused.detail


def build_ground_truth(
    annotations: Sequence[AnnotationLike], interpolate: Interpolator | None
) -> GroundTruthInput:
    return ground_truth_of(annotations, track_of=_track_key, interpolate=interpolate)


def _track_key(a: AnnotationLike) -> object:
    """Annotations sharing a `detection_id` are keyframes of one track."""
    return getattr(a, "detection_id", None)


def rerun_evaluation(
    cmd: RerunEvaluation,
    app: Verity,
    sources: EvaluationSources,
    interpolate: Interpolator | None = interpolate_track,
) -> Rerun:
    """Re-run an earlier evaluation with its parameters, on pinned or latest ground truth."""
    previous = app.load(Evaluation, cmd.evaluation_id)
    if previous.report is None:
        raise Conflict(f"Evaluation {cmd.evaluation_id} has no recorded result to compare with")
    session = _session(sources, previous.session_id)
    detections = pinned_detections(sources.detections(session.id), previous.detections)
    pinned_count = previous.detections.count
    if len(detections) != pinned_count:
        raise Conflict(
            f"Evaluation {cmd.evaluation_id} used {pinned_count} detections but the session "
            f"now has {len(detections)}; it cannot be reproduced"
        )
    if cmd.ground_truth is GroundTruthChoice.PINNED:
        pins = previous.ground_truth.annotations
        # one event-store read per pinned version: overlap the round trips
        with ThreadPoolExecutor(HISTORY_READERS) as readers:
            annotations: Sequence[AnnotationLike] = list(
                readers.map(lambda p: sources.annotation_at(p.id, p.version), pins)
            )
        position = previous.ground_truth.position
        trigger = Trigger.PINNED
    else:
        annotations = sources.annotations(session.video_id)
        position = sources.position()
        trigger = Trigger.LATEST
    gt = build_ground_truth(annotations, interpolate)
    det = detections_of(
        detections, fps=sources.frame_rate(session.video_id), epoch=session.started_at
    )
    evaluated = _score(
        app,
        cmd.id,
        session,
        previous.config,
        gt,
        det,
        detections,
        position,
        trigger,
        based_on=previous.id,
    )
    before, after = headline(previous.report), headline(evaluated.report)
    return Rerun(
        evaluated=evaluated,
        based_on=previous.id,
        ground_truth=cmd.ground_truth,
        previous=before,
        current=after,
        changes=headline_changes(before, after),
        ground_truth_changes=pin_changes(previous.ground_truth, evaluated.ground_truth),
    )


def pinned_detections(
    detections: Sequence[DetectionLike], pin: DetectionsPin
) -> Sequence[DetectionLike]:
    """The detections a pin names: those received by its time (else the first `count`)."""
    last = pin.last_received_at
    if last is None:
        return detections[: pin.count]
    return [d for d in detections if (r := getattr(d, "received_at", None)) is None or r <= last]


def headline_changes(before: Headline, after: Headline) -> dict[str, Change]:
    out: dict[str, Change] = {}
    for name in Headline.__struct_fields__:
        a, b = getattr(before, name), getattr(after, name)
        delta = None if a is None or b is None else b - a
        out[name] = Change(before=a, after=b, delta=delta)
    return out


def pin_changes(old: GroundTruthPin, new: GroundTruthPin) -> GroundTruthChanges:
    was = {p.id: p.version for p in old.annotations}
    now = {p.id: p.version for p in new.annotations}
    common = was.keys() & now.keys()
    changed = sum(1 for k in common if was[k] != now[k])
    return GroundTruthChanges(
        added=len(now.keys() - was.keys()),
        removed=len(was.keys() - now.keys()),
        changed=changed,
        unchanged=len(common) - changed,
    )


def annotation_history(app: Verity) -> Callable[[UUID, int], AnnotationState]:
    """Reads one past version of an annotation from the event store."""

    def at(annotation_id: UUID, version: int) -> AnnotationState:
        try:
            annotation: object = app.repository.get(annotation_id, version=version)
        except AggregateNotFoundError:
            raise NotFound(
                "Annotation", annotation_id, f"Annotation {annotation_id} v{version} not found"
            ) from None
        if not isinstance(annotation, Annotation):
            raise NotFound("Annotation", annotation_id)
        return annotation.state()

    return at
