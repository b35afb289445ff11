"""Relayed events' subjects, and which of them the WebSocket fan-out subscribes to."""

from __future__ import annotations

from api.live import _NAMES, SILENT
from domain.detections import DeviceFrame, FrameBatch
from domain.events import VerityAggregate
from domain.test_sessions import TestSession
from workers.envelopes import aggregate_names, names_of, snake


def _all_aggregates() -> set[type[VerityAggregate]]:
    found: set[type[VerityAggregate]] = set()
    todo = list(VerityAggregate.__subclasses__())
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_aggregate_has_a_subject_token() -> None:
    names = aggregate_names()
    assert names == sorted(set(names))
    assert {snake(cls.__name__) for cls in _all_aggregates()} == set(names)
    assert {"project", "video", "annotation", "test_session", "device_frame"} <= set(names)


def test_the_fan_out_hears_every_room_event_and_no_frame() -> None:
    heard = set(aggregate_names()) - SILENT
    assert {aggregate for aggregate, _ in _NAMES} <= heard
    assert snake(DeviceFrame.__name__) not in heard
    assert snake(FrameBatch.__name__) not in heard
    assert "test_session" in heard


def test_an_event_subject_starts_with_its_aggregate_token() -> None:
    event = TestSession.Started  # the class is enough: names come from its qualified name
    assert names_of(object.__new__(event)) == ("test_session", "started")
