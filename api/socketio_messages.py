"""What a Socket.IO client hears: the hub's messages, in the rooms and shapes the pages read.

The hub publishes `{"event", "room", "data"}` (projections/live_messages.py) in rooms named
`kind:<id>`; the original platform's Socket.IO rooms are `kind_<id>` (contract section 4). The
event names and data stay as they are, with two additions the pages need:

- `detection_event`: Test Execution lists one detection per event and reads `id`, `classLabel`,
  `confidence`, `timestamp` and `validationResult` at the top; the newest frame's most confident
  detection is lifted there (the full list stays in `detections`; `classLabel` and `confidence`
  are null when only the frames folded into it had detections). A message that carries no
  detection at all gives no Socket.IO event: the page would list an empty row, and the
  dashboard counts each event as a detection.
- `test_session_update`: the page replaces its session with the payload, then stops it by
  `id`; `id` is the session id.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import msgspec

ROOM_KINDS = ("project", "video", "test_session", "annotation_session", "annotation")
_CLIENT_ROOM = re.compile(
    rf"^(?:dashboard|(?:{'|'.join(ROOM_KINDS)})[_:][0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
MAX_ROOM_NAME = 64


class Outgoing(NamedTuple):
    event: str
    room: str
    data: dict[str, Any]


class _HubMessage(msgspec.Struct):
    event: str
    data: dict[str, Any]


_decoder = msgspec.json.Decoder(_HubMessage)


def socketio_room(hub_room: str) -> str:
    """`test_session_<id>` for the hub's `test_session:<id>`; `dashboard` stays."""
    return hub_room.replace(":", "_", 1)


def client_room(name: object) -> str | None:
    """A room a client may join, in Socket.IO form (either spelling accepted), or None."""
    if not isinstance(name, str) or len(name) > MAX_ROOM_NAME or not _CLIENT_ROOM.match(name):
        return None
    return socketio_room(name).lower()


def _confidence(detection: dict[str, Any]) -> float:
    value = detection.get("confidence")
    return value if isinstance(value, int | float) else 0.0


def _detection_event(data: dict[str, Any]) -> dict[str, Any] | None:
    detections = data.get("detections") or []
    if not detections and not data.get("coalescedDetections"):
        return None
    best: dict[str, Any] = max(detections, key=_confidence, default={})
    return {
        **data,
        "id": f"{data['sessionId']}:{data['deviceId']}:{data['seq']}",
        "classLabel": best.get("classLabel"),
        "confidence": best.get("confidence"),
        "validationResult": best.get("validationResult", "PENDING"),
    }


def translate(hub_room: str, message: bytes) -> Outgoing | None:
    """The Socket.IO emit for one hub message, or None when the pages have no use for it."""
    decoded = _decoder.decode(message)
    data: dict[str, Any] | None = decoded.data
    if decoded.event == "detection_event":
        data = _detection_event(decoded.data)
    elif decoded.event == "test_session_update":
        data = {"id": decoded.data.get("sessionId"), **decoded.data}
    if data is None:
        return None
    return Outgoing(decoded.event, socketio_room(hub_room), data)
