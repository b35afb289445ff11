"""Read model of devices: who may publish detections over NATS, and with which password hash.

The embedded NATS server's users are written from `active_device_users`; `verity devices list`
reads `list_devices`. Password hashes never leave this module's queries for an HTTP answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from domain.devices import Device, DeviceStatus
from projections.base import Statement

_INSERT = (
    "INSERT INTO rm_devices (id, device_id, status, password_hash, created_at, created_by,"
    " version) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_ROTATE = "UPDATE rm_devices SET password_hash = %s, updated_at = %s, version = %s WHERE id = %s"
_DISABLE = (
    "UPDATE rm_devices SET status = %s, disabled_reason = %s, updated_at = %s, version = %s"
    " WHERE id = %s"
)


class DevicesProjection:
    name: str = "devices_v1"
    event_classes: tuple[type[Any], ...] = (
        Device.Registered,
        Device.CredentialsRotated,
        Device.Disabled,
    )
    tables: tuple[str, ...] = ("rm_devices",)

    def handle(self, event: Any) -> Iterable[Statement]:
        if isinstance(event, Device.Registered):
            yield (
                _INSERT,
                (
                    event.originator_id,
                    event.device_id,
                    DeviceStatus.ACTIVE.value,
                    event.password_hash,
                    event.timestamp,
                    event.meta.actor,
                    event.originator_version,
                ),
            )
        elif isinstance(event, Device.CredentialsRotated):
            yield (
                _ROTATE,
                (
                    event.password_hash,
                    event.timestamp,
                    event.originator_version,
                    event.originator_id,
                ),
            )
        elif isinstance(event, Device.Disabled):
            yield (
                _DISABLE,
                (
                    DeviceStatus.DISABLED.value,
                    event.reason,
                    event.timestamp,
                    event.originator_version,
                    event.originator_id,
                ),
            )


class DeviceRow(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    status: str
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime | None
    created_by: str
    id: UUID


class DeviceUser(msgspec.Struct, frozen=True, kw_only=True):
    """An active device's NATS user: its id and the bcrypt hash of its password."""

    device_id: str
    password_hash: str


_ROW_COLUMNS = "device_id, status, disabled_reason, created_at, updated_at, created_by, id"


async def list_devices(conn: AsyncConnection[Any]) -> list[DeviceRow]:
    async with conn.cursor(row_factory=class_row(DeviceRow)) as cur:
        await cur.execute(f"SELECT {_ROW_COLUMNS} FROM rm_devices ORDER BY device_id")
        return await cur.fetchall()


async def get_device(conn: AsyncConnection[Any], device_id: str) -> DeviceRow | None:
    async with conn.cursor(row_factory=class_row(DeviceRow)) as cur:
        await cur.execute(
            f"SELECT {_ROW_COLUMNS} FROM rm_devices WHERE device_id = %s", (device_id,)
        )
        return await cur.fetchone()


async def active_device_users(conn: AsyncConnection[Any]) -> list[DeviceUser]:
    async with conn.cursor(row_factory=class_row(DeviceUser)) as cur:
        await cur.execute(
            "SELECT device_id, password_hash FROM rm_devices WHERE status = %s ORDER BY device_id",
            (DeviceStatus.ACTIVE.value,),
        )
        return await cur.fetchall()
