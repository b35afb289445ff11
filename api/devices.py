"""Devices over HTTP (admins): register, rotate, disable, list; the same as `verity devices`.

Registering or rotating answers the device's NATS credentials once; only the bcrypt hash is
stored. `verity serve` admits the device to its embedded NATS within moments (reloading it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api.inputs import InputDTO
from api.services import Services, caught_up, execute, services_of
from commands.device_credentials import hash_password, new_password
from commands.devices import (
    DisableDevice,
    RegisterDevice,
    RotateDeviceCredentials,
    disable,
    register,
    rotate_credentials,
)
from domain.errors import NotFound
from domain.limits import DeviceName, Text
from projections.devices import DeviceRow, get_device, list_devices


class DeviceIn(msgspec.Struct, kw_only=True):
    name: DeviceName
    """The device id: its NATS user and the `deviceId` of its frames."""


class DisableIn(msgspec.Struct, kw_only=True):
    reason: Text = ""


class DeviceOut(msgspec.Struct, kw_only=True, rename="camel"):
    device_id: str
    status: str
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime | None
    created_by: str


class DeviceCredentialsOut(msgspec.Struct, kw_only=True, rename="camel"):
    """Shown once: the password is stored nowhere but as its hash."""

    device_id: str
    nats_url: str | None
    user: str
    password: str
    subject: str
    """Where it publishes (`<sessionId>` replaced by the session's id)."""
    inbox_prefix: str
    """The reply-inbox prefix to connect with, for JetStream publish acks."""


def _out(row: DeviceRow) -> DeviceOut:
    return DeviceOut(
        device_id=row.device_id,
        status=row.status,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        created_by=row.created_by,
    )


async def _row(services: Services, device_id: str) -> DeviceRow:
    async with services.read_pool.connection() as conn:
        row = await get_device(conn, device_id)
    if row is None:
        raise NotFound("Device", device_id, f"Device {device_id} not found")
    return row


def _credentials(services: Services, device_id: str, password: str) -> DeviceCredentialsOut:
    subject = services.config.detections_subject
    return DeviceCredentialsOut(
        device_id=device_id,
        nats_url=services.config.nats_url,
        user=device_id,
        password=password,
        subject=f"{subject}.<sessionId>.{device_id}",
        inbox_prefix=f"_INBOX_{device_id}",
    )


class DevicesController(Controller):
    path = "/api/admin/devices"
    tags = ["devices"]

    @get(operation_id="listDevices", summary="Registered devices and their status")
    async def list_all(self, state: State) -> list[DeviceOut]:
        async with services_of(state).read_pool.connection() as conn:
            return [_out(r) for r in await list_devices(conn)]

    @post(
        operation_id="registerDevice",
        summary="Register a device; answers its NATS credentials once (409 if the id is taken)",
        status_code=201,
        dto=InputDTO[DeviceIn],
        return_dto=None,
    )
    async def add(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[DeviceIn]
    ) -> DeviceCredentialsOut:
        services = services_of(state)
        password = new_password()
        hashed = await anyio.to_thread.run_sync(hash_password, password)
        cmd = RegisterDevice(device_id=data.name, password_hash=hashed)
        position = await execute(services, request, register, cmd)
        await caught_up(services, position, "devices_v1")
        return _credentials(services, data.name, password)

    @post(
        "/{name:str}/rotate",
        operation_id="rotateDeviceCredentials",
        summary="A new password for the device; the old one stops working (409 if disabled)",
        status_code=200,
    )
    async def rotate(
        self, state: State, request: Request[Any, Any, Any], name: FromPath[str]
    ) -> DeviceCredentialsOut:
        services = services_of(state)
        password = new_password()
        hashed = await anyio.to_thread.run_sync(hash_password, password)
        cmd = RotateDeviceCredentials(device_id=name, password_hash=hashed)
        position = await execute(services, request, rotate_credentials, cmd)
        await caught_up(services, position, "devices_v1")
        return _credentials(services, name, password)

    @post(
        "/{name:str}/disable",
        operation_id="disableDevice",
        summary="Remove the device's NATS user for good; its connection is closed",
        status_code=200,
    )
    async def disable(
        self,
        state: State,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        data: JSONBody[DisableIn | None] = None,
    ) -> DeviceOut:
        services = services_of(state)
        cmd = DisableDevice(device_id=name, reason=data.reason if data is not None else "")
        position = await execute(services, request, disable, cmd)
        await caught_up(services, position, "devices_v1")
        return _out(await _row(services, name))
