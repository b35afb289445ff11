"""Devices: cameras (or their gateways) that publish detections over NATS, one user each.

A device's id is its NATS user name and the last token of the subjects it may publish on, so
the id a frame carries is the one NATS authenticated. Only a bcrypt hash of its password is
ever recorded; the password is shown once, when it is made.
"""

from __future__ import annotations

import re
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from domain.errors import Conflict, InvalidValue
from domain.events import VerityAggregate
from domain.limits import DEVICE_NAME_PATTERN, MAX_DEVICE_NAME

SERVICE_USER = "verity-service"
"""The NATS user Verity's own processes connect as; no device may take the name."""
_NAME = re.compile(DEVICE_NAME_PATTERN)


class DeviceStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


def device_aggregate_id(device_id: str) -> UUID:
    """One aggregate per device id: registering a taken id is a concurrent-creation conflict."""
    return uuid5(NAMESPACE_URL, f"verity:device:{device_id}")


def check_device_id(device_id: str) -> None:
    if not 1 <= len(device_id) <= MAX_DEVICE_NAME or not _NAME.match(device_id):
        raise InvalidValue(
            "name",
            f"name: 1-{MAX_DEVICE_NAME} letters, digits, '_' or '-', starting with a letter"
            " or digit",
        )
    if device_id == SERVICE_USER:
        raise InvalidValue("name", f"name: {SERVICE_USER!r} is Verity's own NATS user")


def check_password_hash(password_hash: str) -> None:
    """A bcrypt hash (what nats-server verifies), never a password by mistake."""
    if not password_hash.startswith("$2") or len(password_hash) != 60:
        raise InvalidValue("password", "password: only a bcrypt hash is recorded")


class Device(VerityAggregate):
    """registered (active) -> credentials rotated* -> disabled; disabled is final."""

    class Registered(VerityAggregate.Created):
        device_id: str
        password_hash: str

    class CredentialsRotated(VerityAggregate.Event):
        password_hash: str

    class Disabled(VerityAggregate.Event):
        reason: str = ""

    @event(Registered)
    def __init__(self, device_id: str, password_hash: str) -> None:
        self.device_id = device_id
        self.password_hash = password_hash
        self.status = DeviceStatus.ACTIVE

    def _ensure_active(self, what: str) -> None:
        if self.status is not DeviceStatus.ACTIVE:
            raise Conflict(f"Cannot {what} device {self.device_id}: it is {self.status.value}")

    def rotate(self, password_hash: str) -> None:
        self._ensure_active("rotate the credentials of")
        check_password_hash(password_hash)
        self._rotated(password_hash=password_hash)

    @event(CredentialsRotated)
    def _rotated(self, password_hash: str) -> None:
        self.password_hash = password_hash

    def disable(self, reason: str = "") -> None:
        self._ensure_active("disable")
        self._disabled(reason=reason)

    @event(Disabled)
    def _disabled(self, reason: str) -> None:
        self.status = DeviceStatus.DISABLED


def register_device(device_id: str, password_hash: str) -> Device:
    check_device_id(device_id)
    check_password_hash(password_hash)
    device: Device = Device._create(
        Device.Registered,
        id=device_aggregate_id(device_id),
        device_id=device_id,
        password_hash=password_hash,
    )
    return device
