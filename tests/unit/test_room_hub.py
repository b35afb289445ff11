"""The hub's taps hear every published message with its room, members or not."""

from __future__ import annotations

import pytest

from api.ws import Client, RoomHub

pytestmark = pytest.mark.unit


def test_a_tap_hears_every_room_and_members_still_get_theirs() -> None:
    hub = RoomHub()
    heard: list[tuple[str, bytes]] = []
    hub.add_tap(lambda room, message: heard.append((room, message)))
    member = Client()
    hub.join(member, "dashboard")

    hub.publish("dashboard", b"a")
    hub.publish("video:00000000-0000-0000-0000-000000000001", b"b")

    assert heard == [("dashboard", b"a"), ("video:00000000-0000-0000-0000-000000000001", b"b")]
    assert member.queue.get_nowait() == b"a"
    assert member.queue.empty()
