"""Write side of devices: register, rotate credentials, disable."""

from __future__ import annotations

import msgspec

from commands.application import Position, Verity
from domain.devices import Device, check_device_id, device_aggregate_id, register_device
from domain.errors import Conflict, NotFound, check_text


class RegisterDevice(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    password_hash: str


class RotateDeviceCredentials(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    password_hash: str


class DisableDevice(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    reason: str = ""


def load_device(app: Verity, device_id: str) -> Device:
    return app.load(Device, device_aggregate_id(device_id), f"Device {device_id}")


def register(cmd: RegisterDevice, app: Verity) -> Position | None:
    check_device_id(cmd.device_id)
    try:
        load_device(app, cmd.device_id)
    except NotFound:
        return app.commit(register_device(cmd.device_id, cmd.password_hash))
    raise Conflict(f"Device {cmd.device_id} is already registered")


def rotate_credentials(cmd: RotateDeviceCredentials, app: Verity) -> Position | None:
    device = load_device(app, cmd.device_id)
    device.rotate(cmd.password_hash)
    return app.commit(device)


def disable(cmd: DisableDevice, app: Verity) -> Position | None:
    check_text("reason", cmd.reason)
    device = load_device(app, cmd.device_id)
    device.disable(cmd.reason)
    return app.commit(device)
