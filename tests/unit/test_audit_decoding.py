"""Audit decoding without a server: every aggregate type covered, events as plain JSON,
field-level diffs, input checks, and the v1 -> v2 upcast of Video.Uploaded."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent

from commands.codec import MsgspecMapper
from domain.catalogue import aggregate_classes
from domain.errors import InvalidValue
from domain.limits import MAX_AUDIT_LIST_ITEMS
from domain.projects import CameraView, Project, ProjectChanges, SignalType
from domain.videos import Video
from projections.audit_decoding import (
    aggregate_topics,
    audit_event,
    field_changes,
    flatten,
    topics_named,
)
from projections.audit_filters import parse_as_of, parse_log_query
from tests.audit_aggregates import SAMPLES

pytestmark = pytest.mark.unit


def test_every_aggregate_type_has_an_audit_sample() -> None:
    """A new VerityAggregate subclass fails here until tests/audit_aggregates.py builds one,
    and with it the per-type history and as-of tests run for it."""
    assert set(SAMPLES) == set(aggregate_classes())
    assert len(aggregate_topics()) == len(SAMPLES)
    assert all(aggregate_topics().values())


@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda c: c.__name__)
def test_every_event_of_a_sample_decodes_to_plain_json(kind: type) -> None:
    build, _ = SAMPLES[kind]
    for event in build().collect_events():
        described = audit_event(event, 1)
        assert described.topic in aggregate_topics()[described.aggregate_type]
        encoded = msgspec.json.encode(described)
        assert b"_id" not in encoded.split(b'"payload"')[1], "payload keys are camelCase"


def test_event_type_spellings() -> None:
    topic = "domain.videos:Video.Uploaded"
    assert topics_named(topic) == topics_named("Video.Uploaded") == (topic,)
    assert topics_named("video.uploaded") == topics_named("uploaded") == (topic,)
    assert topics_named("video.exploded") == ()


def test_frame_batches_and_large_payloads_are_summarised() -> None:
    batch = SAMPLES[next(c for c in SAMPLES if c.__name__ == "FrameBatch")][0]()
    summary = audit_event(batch.collect_events()[0], 9)
    assert summary.summarised and summary.payload["frames"] == 3
    assert summary.payload["detections"] == 3 and summary.payload["seqRange"] == [0, 2]
    project = Project(
        name="p", camera_model="c", camera_view=CameraView.MULTI_ANGLE, signal_type=SignalType.GPIO
    )
    project.update(ProjectChanges(description="x" * 100_000))
    big = audit_event(project.collect_events()[1], 10)
    assert big.summarised and big.payload["fields"] == ["changes"]
    assert big.payload["bytes"] > 100_000 and len(big.payload["sha256"]) == 64


def test_nested_values_flatten_to_paths_and_diff_per_path() -> None:
    before = {"box": {"x": 1, "y": 2}, "tags": ["a"], "name": "n"}
    after = {"box": {"x": 1, "y": 3}, "tags": ["a", "b"], "name": "n"}
    assert flatten(after) == {"box.x": 1, "box.y": 3, "tags[0]": "a", "tags[1]": "b", "name": "n"}
    changes = {c.path: (c.before, c.after) for c in field_changes(before, after)}
    assert changes == {"box.y": (2, 3), "tags[1]": (None, "b")}
    long = list(range(MAX_AUDIT_LIST_ITEMS + 1))
    flat = flatten({"frames": long})
    assert list(flat) == ["frames"] and flat["frames"]["items"] == len(long)
    edited = field_changes({"frames": long}, {"frames": [*long[:-1], -1]})
    assert [c.path for c in edited] == ["frames"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"after": "x"}, "after"),
        ({"after": "1" * 25}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"actor": "\x00"}, "actor"),
        ({"aggregate_id": "123"}, "aggregateId"),
        ({"aggregate_type": "nope"}, "aggregateType"),
        ({"since": "soon"}, "from"),
        ({"until": "2026-02-30"}, "to"),
        ({"since": "0001-01-01T00:00:00+14:00"}, "from"),
    ],
)
def test_bad_query_values_name_their_field(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        parse_log_query(**kwargs)
    assert raised.value.field == field and field in raised.value.detail


def test_as_of_is_a_version_or_a_time() -> None:
    assert parse_as_of("3") is not None and parse_as_of("3").version == 3  # type: ignore[union-attr]
    when = parse_as_of("2026-01-01T10:00:00")
    assert when is not None and when.time == datetime(2026, 1, 1, 10, tzinfo=UTC)
    for junk in ("0", "-2", "1e3", "then", "\x00"):
        with pytest.raises(InvalidValue):
            parse_as_of(junk)


def test_a_v1_upload_decodes_as_v2() -> None:
    ident = uuid4()
    v1 = {
        "timestamp": datetime.now(UTC),
        "meta": {"actor": "old", "correlation_id": None, "causation_id": None},
        "originator_topic": "domain.videos:Video",
        "project_id": uuid4(),
        "filename": "a.mp4",
        "original_name": "a.mp4",
        "size": 77,
        "sha256": "0",
    }
    stored = StoredEvent(
        originator_id=ident,
        originator_version=1,
        topic="domain.videos:Video.Uploaded",
        state=msgspec.json.encode(v1),
    )
    event = MsgspecMapper().to_domain_event(stored)
    assert isinstance(event, Video.Uploaded) and event.size_bytes == 77
    video = event.mutate(None)
    assert isinstance(video, Video) and video.size_bytes == 77
    again = MsgspecMapper().to_stored_event(event)
    assert msgspec.json.decode(again.state)["class_version"] == 2


def test_credential_digests_are_never_shown() -> None:
    from projections.audit_decoding import REDACTED, aggregate_state, payload_of
    from tests.audit_aggregates import _device

    device = _device()
    registered = device.collect_events()[0]
    payload, _ = payload_of(registered)
    assert payload["passwordHash"] == REDACTED and payload["deviceId"] == "audit-cam"
    assert aggregate_state(device)["passwordHash"] == REDACTED


def test_an_api_tokens_digest_is_never_shown() -> None:
    from projections.audit_decoding import REDACTED, aggregate_state, payload_of
    from tests.audit_aggregates import _api_token

    token = _api_token()
    issued = token.collect_events()[0]
    assert payload_of(issued)[0]["digest"] == REDACTED
    assert aggregate_state(token)["digest"] == REDACTED
