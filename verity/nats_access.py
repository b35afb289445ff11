"""Who may do what on NATS: Verity's service user and one user per registered device.

The embedded server starts from a generated config (JSON, which nats-server reads as its own
format) with an `authorization` block: the service user may do anything (Verity's processes
relay, ingest, run workers and manage streams), each active device may only publish its own
detections. Passwords appear there only as bcrypt hashes. The same block, printed by
`verity devices nats-config`, is what an operator pastes into an external server's config.

A device publishes on `<prefix>.detections.<sessionId>.<deviceId>` and nowhere else, so the
device id a frame carries is the one NATS authenticated (the ingest refuses a frame whose
`deviceId` is not the subject's). It may subscribe only to its own reply inbox
`_INBOX_<deviceId>.>`: a JetStream publish is a core publish with a reply subject to which the
server sends the ack (no `$JS.API` call), and a device that sets that inbox prefix
(`inbox_prefix` in nats-py, `CustomInboxPrefix` in nats.go) gets the ack while never seeing
another client's replies (pull-consumer deliveries and API answers travel on `_INBOX.>`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from commands.device_credentials import hash_password, new_password
from domain.devices import SERVICE_USER
from projections.devices import DeviceUser

CONFIG_NAME = "nats-auth.conf"
CREDENTIALS_NAME = "service-credentials.json"
SERVER_NAME = "verity-embedded"


class NatsCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """What a client connects with: a user and its password (never logged)."""

    user: str
    password: str

    def connect_options(self) -> dict[str, str]:
        return {"user": self.user, "password": self.password}


class _StoredService(msgspec.Struct, frozen=True, kw_only=True):
    user: str
    password: str
    password_hash: str


def without_credentials(url: str) -> str:
    """`url` less any user, password or token in it: what a device may be told."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host = parts.hostname or "localhost"
    netloc = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{netloc}:{parts.port or 4222}"


def device_inbox(device_id: str) -> str:
    """The reply-inbox prefix a device connects with (JetStream publish acks arrive there)."""
    return f"_INBOX_{device_id}"


def device_subject(detections_subject: str, session_id: str, device_id: str) -> str:
    return f"{detections_subject}.{session_id}.{device_id}"


def device_permissions(detections_subject: str, device_id: str) -> dict[str, Any]:
    return {
        "publish": {"allow": [device_subject(detections_subject, "*", device_id)]},
        "subscribe": {"allow": [f"{device_inbox(device_id)}.>"]},
    }


def authorization(
    detections_subject: str,
    service_hash: str,
    devices: Sequence[DeviceUser],
    service_user: str = SERVICE_USER,
) -> dict[str, Any]:
    """The `authorization` block: the service user (no restriction) and each device's user."""
    users: list[dict[str, Any]] = [{"user": service_user, "password": service_hash}]
    users.extend(
        {
            "user": d.device_id,
            "password": d.password_hash,
            "permissions": device_permissions(detections_subject, d.device_id),
        }
        for d in sorted(devices, key=lambda d: d.device_id)
    )
    return {"users": users}


def authorization_text(
    detections_subject: str,
    service_hash: str,
    devices: Sequence[DeviceUser],
    service_user: str = SERVICE_USER,
) -> str:
    """The block as nats-server config text, to paste into an external server's config."""
    block = authorization(detections_subject, service_hash, devices, service_user)
    return "authorization: " + json.dumps(block, indent=2) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Write `text` readable by its owner only (0600), replacing `path` atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class NatsAccess:
    """The embedded server's authorization: the service credentials (made once, 0600) and the
    config file listing the device users, rewritten when they change."""

    def __init__(self, folder: Path, detections_subject: str) -> None:
        self.folder = folder
        self.detections_subject = detections_subject
        self.config_path = folder / CONFIG_NAME
        self.credentials_path = folder / CREDENTIALS_NAME
        self._service: _StoredService | None = None

    def _stored_service(self) -> _StoredService:
        if self._service is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                raw = self.credentials_path.read_bytes()
            except FileNotFoundError:
                password = new_password()
                stored = _StoredService(
                    user=SERVICE_USER, password=password, password_hash=hash_password(password)
                )
                _write_private(self.credentials_path, msgspec.json.encode(stored).decode())
            else:
                stored = msgspec.json.decode(raw, type=_StoredService)
            self._service = stored
        return self._service

    @property
    def service(self) -> NatsCredentials:
        stored = self._stored_service()
        return NatsCredentials(user=stored.user, password=stored.password)

    def devices(self) -> list[DeviceUser]:
        """The device users the config file lists now (none before the first write)."""
        try:
            config = json.loads(self.config_path.read_text())
        except (FileNotFoundError, ValueError):
            return []
        return [
            DeviceUser(device_id=u["user"], password_hash=u["password"])
            for u in config["authorization"]["users"]
            if u["user"] != SERVICE_USER
        ]

    def write(self, devices: Sequence[DeviceUser]) -> bool:
        """Write the config for `devices`; whether it changed (then the server must reload)."""
        block = authorization(
            self.detections_subject, self._stored_service().password_hash, devices
        )
        # server_name also in the file: a reload compares it with the file's (the flag alone
        # reads as a change, which nats-server refuses to reload)
        config = {"server_name": SERVER_NAME, "authorization": block}
        text = json.dumps(config, indent=2) + "\n"
        try:
            if self.config_path.read_text() == text:
                return False
        except FileNotFoundError:
            pass
        _write_private(self.config_path, text)
        return True
