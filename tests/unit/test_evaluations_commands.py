"""Evaluation handlers on the in-memory store with fake sources: pins, re-runs, bad input."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest

from commands.application import Verity
from commands.criteria import ConfigureCriteria, configure_criteria
from commands.evaluation_inputs import ground_truth_of
from commands.evaluations import (
    EvaluateSession,
    GroundTruthChoice,
    RerunEvaluation,
    evaluate_session,
    rerun_evaluation,
)
from domain.criteria import CriteriaValues
from domain.errors import Conflict, InvalidValue, NotFound
from domain.evaluations import Evaluation, Status
from domain.ground_truth import counts_as_ground_truth
from domain.projects import CameraView, Project, SignalType

pytestmark = pytest.mark.unit

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Ann:
    id: UUID
    version: int
    frame_number: int
    timestamp: float
    vru_type: str
    box: Box | None
    validated: bool = False
    deleted: bool = False
    source: str = "manual"
    difficult: bool = False


@dataclass(frozen=True)
class Det:
    id: UUID
    frame_number: int | None
    timestamp: float
    class_label: str
    confidence: float | None
    box: tuple[float, float, float, float] | None
    captured_at: datetime | None = None
    received_at: datetime | None = None
    track_id: str | None = None


@dataclass(frozen=True)
class Session:
    id: UUID
    project_id: UUID
    video_id: UUID
    status: str = "completed"
    tolerance_ms: int = 100
    iou_threshold: float = 0.5
    started_at: datetime | None = START


@dataclass
class FakeSources:
    """Read models in memory; every annotation edit keeps the old version, as the store does."""

    sessions: dict[UUID, Session] = field(default_factory=dict)
    history: dict[UUID, list[Ann]] = field(default_factory=dict)
    dets: dict[UUID, list[Det]] = field(default_factory=dict)

    def session(self, session_id: UUID) -> Session | None:
        return self.sessions.get(session_id)

    def annotations(self, video_id: UUID) -> Sequence[Ann]:
        return [versions[-1] for versions in self.history.values()]

    def annotation_at(self, annotation_id: UUID, version: int) -> Ann:
        return self.history[annotation_id][version - 1]

    def detections(self, session_id: UUID) -> Sequence[Det]:
        return self.dets.get(session_id, [])

    def position(self) -> int:
        return sum(len(v) for v in self.history.values())

    def frame_rate(self, video_id: UUID) -> float | None:
        return 10.0

    def annotate(self, **kw: Any) -> Ann:
        a = Ann(id=uuid4(), version=1, **kw)
        self.history[a.id] = [a]
        return a

    def edit(self, a: Ann, **changes: Any) -> Ann:
        current = self.history[a.id][-1]
        new = replace(current, version=current.version + 1, **changes)
        self.history[a.id].append(new)
        return new


@pytest.fixture
def app() -> Iterator[Verity]:
    application = Verity()
    yield application
    application.close()


def make_project(app: Verity) -> UUID:
    p = Project(
        name="p", camera_model="m", camera_view=CameraView.MULTI_ANGLE, signal_type=SignalType.GPIO
    )
    app.commit(p)
    return p.id


def scene(app: Verity) -> tuple[FakeSources, Session, list[Ann]]:
    """Three people on frames 0..2; two found well, one false alarm, one miss."""
    src = FakeSources()
    session = Session(id=uuid4(), project_id=make_project(app), video_id=uuid4())
    src.sessions[session.id] = session
    anns = [
        src.annotate(
            frame_number=f, timestamp=f / 10, vru_type="pedestrian", box=Box(10, 10, 50, 80)
        )
        for f in range(3)
    ]
    src.dets[session.id] = [
        Det(uuid4(), 0, 0.0, "pedestrian", 0.9, (11, 10, 50, 80), START + timedelta(seconds=0.05)),
        Det(uuid4(), 1, 0.1, "pedestrian", 0.8, (10, 11, 50, 80), START + timedelta(seconds=0.17)),
        Det(uuid4(), 1, 0.1, "cyclist", 0.4, (300, 300, 40, 40)),
    ]
    return src, session, anns


def test_evaluation_scores_records_pins_and_outcomes(app: Verity) -> None:
    src, session, anns = scene(app)
    done = evaluate_session(EvaluateSession(session_id=session.id), app, src)
    c = done.report.counts
    assert (c.tp, c.fp, c.fn) == (2, 1, 1)
    assert c.precision == pytest.approx(2 / 3)
    assert c.recall == pytest.approx(2 / 3)
    assert done.report.latency.count == 2
    assert done.report.latency.p50_ms == pytest.approx(60.0)
    assert {(p.id, p.version) for p in done.ground_truth.annotations} == {(a.id, 1) for a in anns}
    assert done.detections.count == 3
    stored = app.load(Evaluation, done.evaluation_id)
    assert stored.report is not None and stored.report.counts == c
    events = list(app.events.get(done.evaluation_id))
    rows = [r for e in events if isinstance(e, Evaluation.OutcomesRecorded) for r in e.rows]
    assert sorted(r.status for r in rows) == [Status.FN, Status.FP, Status.TP, Status.TP]
    tp = next(r for r in rows if r.status is Status.TP and r.frame == 0)
    assert tp.iou is not None and tp.iou > 0.9
    assert tp.gt_ref == str(anns[0].id)
    assert done.verdict is None  # no criteria configured


def test_ground_truth_rule() -> None:
    base = {"frame_number": 0, "timestamp": 0.0, "vru_type": "pedestrian", "box": None}
    assert counts_as_ground_truth(Ann(id=uuid4(), version=1, source="manual", **base))
    assert counts_as_ground_truth(Ann(id=uuid4(), version=1, source="imported", **base))
    assert not counts_as_ground_truth(Ann(id=uuid4(), version=1, source="detector", **base))
    assert counts_as_ground_truth(
        Ann(id=uuid4(), version=1, source="detector", validated=True, **base)
    )
    assert not counts_as_ground_truth(Ann(id=uuid4(), version=1, deleted=True, **base))
    gt = ground_truth_of([Ann(id=uuid4(), version=3, source="detector", **base)])
    assert len(gt.gt) == 0 and gt.pins == ()


def test_pinned_rerun_is_identical_after_edits_and_latest_shows_the_change(app: Verity) -> None:
    src, session, anns = scene(app)
    first = evaluate_session(EvaluateSession(session_id=session.id), app, src)
    # The missed person on frame 2 was a mistake: delete it; and move frame 1's box away.
    src.edit(anns[2], deleted=True)
    src.edit(anns[1], box=Box(500, 500, 50, 80))

    pinned = rerun_evaluation(
        RerunEvaluation(evaluation_id=first.evaluation_id, ground_truth=GroundTruthChoice.PINNED),
        app,
        src,
    )
    assert msgspec.json.encode(pinned.current) == msgspec.json.encode(pinned.previous)
    assert all(ch.delta in (0, 0.0, None) for ch in pinned.changes.values())
    assert pinned.evaluated.ground_truth == first.ground_truth
    assert pinned.ground_truth_changes.changed == 0

    latest = rerun_evaluation(
        RerunEvaluation(evaluation_id=first.evaluation_id, ground_truth=GroundTruthChoice.LATEST),
        app,
        src,
    )
    # Now: frame 0 matched, frame 1's detection misses the moved box (FP) and the box is FN,
    # frame 2 is gone. TP 1, FP 2, FN 1.
    assert (latest.current.tp, latest.current.fp, latest.current.fn) == (1, 2, 1)
    assert latest.changes["tp"].delta == -1
    assert latest.changes["recall"].after == pytest.approx(0.5)
    assert (latest.ground_truth_changes.removed, latest.ground_truth_changes.changed) == (1, 1)
    assert {(p.id, p.version) for p in latest.evaluated.ground_truth.annotations} == {
        (anns[0].id, 1),
        (anns[1].id, 2),
    }


def test_no_ground_truth_is_a_conflict_naming_what_is_missing(app: Verity) -> None:
    src, session, anns = scene(app)
    for a in anns:
        src.edit(a, deleted=True)
    with pytest.raises(Conflict, match="no ground truth"):
        evaluate_session(EvaluateSession(session_id=session.id), app, src)


def test_unknown_session_is_not_found(app: Verity) -> None:
    with pytest.raises(NotFound):
        evaluate_session(EvaluateSession(session_id=uuid4()), app, FakeSources())


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (CriteriaValues(min_precision=1.2), "min_precision"),
        (CriteriaValues(min_recall=-0.1), "min_recall"),
        (CriteriaValues(min_f1_score=float("nan")), "min_f1_score"),
        (CriteriaValues(max_latency_ms=0), "max_latency_ms"),
        (CriteriaValues(max_latency_ms=-5), "max_latency_ms"),
    ],
)
def test_criteria_out_of_range_name_the_field(
    app: Verity, values: CriteriaValues, field: str
) -> None:
    project_id = make_project(app)
    with pytest.raises(InvalidValue) as err:
        configure_criteria(ConfigureCriteria(project_id=project_id, values=values), app)
    assert err.value.field == field
    assert field in err.value.detail


def test_criteria_give_a_verdict(app: Verity) -> None:
    src, session, _ = scene(app)
    configure_criteria(
        ConfigureCriteria(
            project_id=session.project_id,
            values=CriteriaValues(min_precision=0.9, min_recall=0.01, max_latency_ms=1000.0),
        ),
        app,
    )
    done = evaluate_session(EvaluateSession(session_id=session.id), app, src)
    assert done.verdict is not None
    names = [c.name for c in done.verdict.criteria]
    assert names == ["precision", "recall", "latency_p95_ms"]
    # 2 of 3 detections right: too few to prove precision >= 0.9 or to refute it.
    assert done.verdict.outcome.value in {"INCONCLUSIVE", "FAIL"}
