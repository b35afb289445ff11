"""Which WebSocket messages (contract section 4 names) each stored event becomes.

Pure: an event envelope from NATS in, (room, message) pairs out.
"""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()

# (aggregate, event type) -> (contract event name, rooms built from the envelope)
_NAMES: dict[tuple[str, str], str] = {
    ("project", "created"): "project_created",
    ("project", "updated"): "project_updated",
    ("project", "deleted"): "project_deleted",
    ("video", "uploaded"): "video_uploaded",
    ("video", "metadata_extracted"): "video_processed",
    ("video", "linked"): "video_linked",
    ("video", "unlinked"): "video_unlinked",
    ("video", "deleted"): "video_deleted",
    ("annotation", "created"): "annotation_created",
    ("annotation", "box_moved"): "annotation_updated",
    ("annotation", "class_changed"): "annotation_updated",
    ("annotation", "flags_changed"): "annotation_updated",
    ("annotation", "changed"): "annotation_updated",
    ("annotation", "reverted"): "annotation_updated",
    ("annotation", "restored"): "annotation_updated",
    ("annotation", "validated"): "annotation_validated",
    ("annotation", "unvalidated"): "annotation_validated",
    ("annotation_session", "created"): "annotation_session_created",
    ("annotation_session", "updated"): "annotation_progress_update",
    ("annotation_import", "started"): "import_progress",
    ("annotation_import", "progressed"): "import_progress",
    ("annotation_import", "completed"): "import_progress",
    ("annotation_import", "failed"): "import_progress",
}


def _rooms(env: dict[str, Any]) -> list[str]:
    aggregate, ident, data = env["aggregate"], env["aggregateId"], env.get("data") or {}
    rooms = [f"{aggregate}:{ident}"]
    if aggregate == "project" or (aggregate == "video" and env["type"] == "uploaded"):
        rooms.append("dashboard")
    rooms.extend(f"project:{data[k]}" for k in ("projectId", "previousProjectId") if k in data)
    if aggregate.startswith("annotation") and "videoId" in data:
        rooms.append(f"video:{data['videoId']}")
    return rooms


SILENT = frozenset({"device_frame", "frame_batch"})
"""Aggregates whose events reach WebSockets another way: detections arrive coalesced on the
live subject (workers/live.py), not one message per stored frame."""

_SESSION_STATUS = {
    "created": "created",
    "started": "running",
    "stopped": "stopped",
    "completed": "completed",
    "failed": "failed",
}
_SESSION_DASHBOARD = {
    "started": "test_session_started",
    "completed": "test_session_completed",
    "failed": "test_session_failed",
}


def _test_session_messages(env: dict[str, Any]) -> list[tuple[str, bytes]]:
    """`test_session_update` in the session's room; started/completed on the dashboard."""
    ident, kind, data = env["aggregateId"], env["type"], env.get("data") or {}
    status = _SESSION_STATUS.get(kind, kind)
    body = {
        "sessionId": ident,
        "session_id": ident,
        "status": status,
        "message": f"Test session {status}",
        **data,
        "timestamp": env["occurredAt"],
        "version": env["version"],
        "position": env["position"],
        "actor": env["actor"],
    }
    messages = [(f"test_session:{ident}", "test_session_update")]
    if kind in _SESSION_DASHBOARD:
        messages.append(("dashboard", _SESSION_DASHBOARD[kind]))
    if "projectId" in data:
        messages.append((f"project:{data['projectId']}", "test_session_created"))
    return [
        (room, _encoder.encode({"event": name, "room": room, "data": body}))
        for room, name in messages
    ]


def ws_messages(env: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Encoded `{"event", "room", "data"}` messages for every room that should hear `env`."""
    aggregate, kind = env["aggregate"], env["type"]
    if aggregate in SILENT:
        return []
    if aggregate == "test_session":
        return _test_session_messages(env)
    name = _NAMES.get((aggregate, kind), f"{aggregate}_{kind}")
    id_key = f"{aggregate.split('_')[0]}Id" if "_" not in aggregate else "id"
    data = {
        id_key: env["aggregateId"],
        **(env.get("data") or {}),
        "timestamp": env["occurredAt"],
        "version": env["version"],
        "position": env["position"],
        "actor": env["actor"],
    }
    return [
        (room, _encoder.encode({"event": name, "room": room, "data": data}))
        for room in dict.fromkeys(_rooms(env))
    ]
