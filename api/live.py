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
}


def _rooms(env: dict[str, Any]) -> list[str]:
    aggregate, ident, data = env["aggregate"], env["aggregateId"], env.get("data") or {}
    rooms = [f"{aggregate}:{ident}"]
    if aggregate == "project" or (aggregate == "video" and env["type"] == "uploaded"):
        rooms.append("dashboard")
    rooms.extend(f"project:{data[k]}" for k in ("projectId", "previousProjectId") if k in data)
    return rooms


def ws_messages(env: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Encoded `{"event", "room", "data"}` messages for every room that should hear `env`."""
    aggregate, kind = env["aggregate"], env["type"]
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
