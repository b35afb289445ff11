"""Annotation rules, revert and track interpolation, on the in-memory event store."""

from __future__ import annotations

from uuid import uuid4

import pytest

from commands.application import Verity
from domain.annotation_sessions import AnnotationSession, SessionChanges
from domain.annotations import (
    Annotation,
    AnnotationChanges,
    AnnotationDraft,
    AnnotationState,
    BoundingBox,
    Source,
    check_draft,
)
from domain.errors import Conflict, InvalidValue, NotFound
from domain.tracks import interpolate_track
from domain.vru import VruType, vru_type_of

pytestmark = pytest.mark.unit


def draft(**overrides: object) -> AnnotationDraft:
    values: dict[str, object] = {
        "frame_number": 3,
        "timestamp": 0.1,
        "vru_type": VruType.PEDESTRIAN,
        "box": BoundingBox(10, 5, 20, 40),
    }
    values.update(overrides)
    return AnnotationDraft(**values)  # type: ignore[arg-type]


@pytest.fixture
def app() -> Verity:
    return Verity(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def test_aliases_map_to_canonical_classes_and_unknown_names_the_field() -> None:
    assert vru_type_of("wheelchair") is VruType.WHEELCHAIR_USER
    assert vru_type_of("Scooter") is VruType.SCOOTER_RIDER
    with pytest.raises(InvalidValue) as err:
        vru_type_of("truck")
    assert err.value.field == "vru_type" and "pedestrian" in err.value.detail


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"frame_number": -1}, "frame_number"),
        ({"timestamp": -0.5}, "timestamp"),
        ({"box": BoundingBox(0, 0, 0, 5)}, "box.width"),
        ({"box": BoundingBox(0, 0, 5, -1)}, "box.height"),
        ({"box": BoundingBox(-3, 0, 5, 5)}, "box.x"),
        ({"box": BoundingBox(60, 0, 10, 5)}, "box.width"),
        ({"box": BoundingBox(0, 40, 10, 10)}, "box.height"),
        ({"confidence": 1.5}, "confidence"),
        ({"end_timestamp": 0.05}, "end_timestamp"),
        ({"notes": "a\x00b"}, "notes"),
    ],
)
def test_bad_drafts_are_refused_naming_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValue) as err:
        check_draft(draft(**overrides), (64, 48))
    assert err.value.field == field


def test_box_outside_unknown_resolution_is_only_checked_for_sign() -> None:
    check_draft(draft(box=BoundingBox(1000, 1000, 5, 5)), None)  # accepted: size unknown
    with pytest.raises(InvalidValue):
        check_draft(draft(box=BoundingBox(1000, 1000, 5, 5)), (64, 48))
    with pytest.raises(InvalidValue):
        check_draft(draft(box=BoundingBox(-1, 0, 5, 5)), None)


def test_frames_beyond_a_known_length_are_refused_naming_the_field() -> None:
    check_draft(draft(frame_number=89), (64, 48), 90)
    check_draft(draft(frame_number=900), (64, 48), None)  # accepted: length unknown
    with pytest.raises(InvalidValue, match="beyond the video's 90 frames") as err:
        check_draft(draft(frame_number=900), (64, 48), 90)
    assert err.value.field == "frame_number"
    annotation = Annotation.create(uuid4(), draft())
    with pytest.raises(InvalidValue) as err:
        annotation.update(AnnotationChanges(frame_number=90), None, 90)
    assert err.value.field == "frame_number"
    assert annotation.update(AnnotationChanges(notes="n"), None, 2)  # frame untouched


def test_annotation_session_frames_stay_within_the_video() -> None:
    session = AnnotationSession.start(uuid4(), uuid4(), None, 90)
    assert session.update(SessionChanges(current_frame=90), 90)
    for changes, field in (
        (SessionChanges(current_frame=900), "current_frame"),
        (SessionChanges(total_frames=900, current_frame=900), "total_frames"),
        (SessionChanges(total_frames=None, current_frame=900), "current_frame"),
    ):
        with pytest.raises(InvalidValue) as err:
            session.update(changes, 90)
        assert err.value.field == field


def test_edits_record_only_changed_fields_and_source_survives(app: Verity) -> None:
    a = Annotation.create(uuid4(), draft(source=Source.DETECTOR))
    assert not a.update(AnnotationChanges(vru_type=VruType.PEDESTRIAN), None)
    a.update(AnnotationChanges(box=BoundingBox(1, 1, 5, 5)), (64, 48))
    a.update(AnnotationChanges(vru_type=VruType.CYCLIST, notes="bike"), None)
    a.update(AnnotationChanges(occluded=True), None)
    app.save(a)
    events = list(app.events.get(a.id))
    assert [type(e).__name__ for e in events] == ["Created", "BoxMoved", "Changed", "FlagsChanged"]
    assert events[2].changes.as_dict() == {"vru_type": VruType.CYCLIST, "notes": "bike"}
    assert all(e.video_id == a.video_id for e in events)
    assert app.repository.get(a.id).state().source == "detector"


def test_deleted_annotation_cannot_be_edited_until_restored(app: Verity) -> None:
    a = Annotation.create(uuid4(), draft())
    a.delete()
    with pytest.raises(NotFound):
        a.update(AnnotationChanges(notes="x"), None)
    with pytest.raises(NotFound):
        a.validate(True)
    a.restore()
    with pytest.raises(Conflict):
        a.restore()
    assert a.validate(True) and not a.validate(True)


def test_revert_to_version_two_after_five_edits(app: Verity) -> None:
    a = Annotation.create(uuid4(), draft())
    a.update(AnnotationChanges(box=BoundingBox(2, 2, 5, 5)), None)  # v2
    a.update(AnnotationChanges(notes="n"), None)
    a.update(AnnotationChanges(vru_type=VruType.CYCLIST), None)
    a.validate(True)
    a.update(AnnotationChanges(difficult=True), None)  # v6
    app.save(a)
    v2 = app.repository.get(a.id, version=2).state()
    current = app.repository.get(a.id)
    current.revert_to(v2)
    app.save(current)
    after = app.repository.get(a.id).state()
    assert after.version == 7
    strip = {"version"}
    assert {f: getattr(after, f) for f in after.__struct_fields__ if f not in strip} == {
        f: getattr(v2, f) for f in v2.__struct_fields__ if f not in strip
    }
    with pytest.raises(InvalidValue):
        current.revert_to(
            AnnotationState(**{**{f: getattr(v2, f) for f in v2.__struct_fields__}, "version": 99})
        )


def keyframe(frame: int, box: BoundingBox | None, track: str = "T1") -> AnnotationState:
    return AnnotationState(
        id=uuid4(),
        video_id=uuid4(),
        version=1,
        frame_number=frame,
        timestamp=frame / 10,
        end_timestamp=None,
        vru_type="pedestrian",
        box=box,
        occluded=False,
        truncated=False,
        difficult=False,
        validated=True,
        deleted=False,
        source="manual",
        detection_id=track,
        annotator=None,
        notes=None,
    )


def test_track_keyframes_zero_and_ten_interpolate_eleven_boxes() -> None:
    k0, k10 = keyframe(0, BoundingBox(0, 0, 10, 10)), keyframe(10, BoundingBox(10, 20, 20, 10))
    boxes = interpolate_track([k10, k0])
    assert [b.frame_number for b in boxes] == list(range(11))
    assert [b.keyframe for b in boxes] == [True] + [False] * 9 + [True]
    assert boxes[5].box == BoundingBox(5, 10, 15, 10)
    assert boxes[5].timestamp == pytest.approx(0.5)


def test_an_outside_keyframe_stops_interpolation() -> None:
    frames = [
        keyframe(0, BoundingBox(0, 0, 10, 10)),
        keyframe(3, None),
        keyframe(6, BoundingBox(0, 0, 10, 10)),
        keyframe(8, BoundingBox(2, 0, 10, 10)),
    ]
    boxes = interpolate_track(frames)
    assert [b.frame_number for b in boxes] == [0, 3, 6, 7, 8]
