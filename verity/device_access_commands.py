"""`verity devices add|rotate|disable|list|nats-config`: the devices that may publish detections.

The password is printed once and kept nowhere but as a bcrypt hash in the device's events.
`verity serve` (owning the embedded NATS) admits a new device, or drops a disabled one, within
moments of the event, without a restart; an external server gets the users block
`nats-config` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import uuid4

from verity.settings import Settings

if TYPE_CHECKING:
    from commands.application import Verity
    from projections.devices import DeviceUser

C = TypeVar("C")


def _store(settings: Settings, handler: Callable[[C, Verity], Any], cmd: C) -> str:
    """Run one device command against the event store; the NATS URL devices connect to."""
    from commands.context import run_as  # noqa: PLC0415 - keep the CLI's start light
    from domain.events import EventMeta  # noqa: PLC0415
    from verity.bootstrap import open_application, servers  # noqa: PLC0415
    from verity.nats_access import without_credentials  # noqa: PLC0415

    with servers(settings) as endpoints:
        app = open_application(endpoints.database_url)
        try:
            run_as(EventMeta(actor="cli", correlation_id=uuid4()), handler, cmd, app)
        finally:
            app.close()
        return without_credentials(endpoints.nats_url)


def _print_credentials(settings: Settings, url: str, device_id: str, password: str) -> None:
    from verity.nats_access import device_inbox, device_subject  # noqa: PLC0415

    subject = device_subject(settings.detections_subject, "<sessionId>", device_id)
    print(f"NATS URL:     {url}")
    print(f"user:         {device_id}")
    print(f"password:     {password}")
    print(f"publish on:   {subject}")
    print(f"inbox prefix: {device_inbox(device_id)}  (for JetStream publish acks)")
    print("The password is shown only now; `verity devices rotate` makes a new one.")


def devices_add_command(settings: Settings, name: str) -> None:
    from commands.device_credentials import hash_password, new_password  # noqa: PLC0415
    from commands.devices import RegisterDevice, register  # noqa: PLC0415
    from domain.devices import check_device_id  # noqa: PLC0415

    check_device_id(name)  # before the servers start
    password = new_password()
    cmd = RegisterDevice(device_id=name, password_hash=hash_password(password))
    url = _store(settings, register, cmd)
    _print_credentials(settings, url, name, password)


def devices_rotate_command(settings: Settings, name: str) -> None:
    from commands.device_credentials import hash_password, new_password  # noqa: PLC0415
    from commands.devices import RotateDeviceCredentials, rotate_credentials  # noqa: PLC0415

    password = new_password()
    cmd = RotateDeviceCredentials(device_id=name, password_hash=hash_password(password))
    url = _store(settings, rotate_credentials, cmd)
    _print_credentials(settings, url, name, password)


def devices_disable_command(settings: Settings, name: str, reason: str) -> None:
    from commands.devices import DisableDevice, disable  # noqa: PLC0415

    _store(settings, disable, DisableDevice(device_id=name, reason=reason))
    print(f"device {name} disabled: its NATS user is removed and its connection closed")


def _project_devices(settings: Settings, database_url: str) -> None:
    """Bring the devices read model up to date (only `serve` projects continuously)."""
    from psycopg_pool import ConnectionPool  # noqa: PLC0415

    from projections.devices import DevicesProjection  # noqa: PLC0415
    from verity.bootstrap import open_application, projection_runners  # noqa: PLC0415

    app = open_application(database_url)
    try:
        with ConnectionPool(database_url, min_size=1, max_size=1) as pool:
            for runner in projection_runners(app, pool, settings.projection_batch_size):
                if runner.name == DevicesProjection.name:
                    runner.catch_up()
    finally:
        app.close()


def devices_list_command(settings: Settings) -> None:
    import asyncio  # noqa: PLC0415

    from psycopg import AsyncConnection  # noqa: PLC0415

    from projections.devices import DeviceRow, list_devices  # noqa: PLC0415
    from verity.bootstrap import servers  # noqa: PLC0415

    with servers(settings) as endpoints:
        _project_devices(settings, endpoints.database_url)

        async def read() -> list[DeviceRow]:
            async with await AsyncConnection.connect(endpoints.database_url) as conn:
                return await list_devices(conn)

        rows = asyncio.run(read())
    for row in rows:
        why = f" ({row.disabled_reason})" if row.disabled_reason else ""
        print(f"{row.device_id}\t{row.status}{why}\tsince {row.created_at:%Y-%m-%d %H:%M}")
    if not rows:
        print("no devices")


def nats_config_command(settings: Settings) -> None:
    """The `authorization` block for an external nats-server: the service user (with the
    hash of VERITY_NATS_PASSWORD) and every active device."""
    import asyncio  # noqa: PLC0415

    from psycopg import AsyncConnection  # noqa: PLC0415

    from commands.device_credentials import hash_password  # noqa: PLC0415
    from domain.devices import SERVICE_USER  # noqa: PLC0415
    from projections.devices import active_device_users  # noqa: PLC0415
    from verity.bootstrap import servers  # noqa: PLC0415
    from verity.nats_access import authorization_text  # noqa: PLC0415

    with servers(settings) as endpoints:
        _project_devices(settings, endpoints.database_url)

        async def users() -> list[DeviceUser]:
            async with await AsyncConnection.connect(endpoints.database_url) as conn:
                return await active_device_users(conn)

        devices = asyncio.run(users())
    service = (
        hash_password(settings.nats_password)
        if settings.nats_password
        else "<bcrypt hash of VERITY_NATS_PASSWORD>"
    )
    user = settings.nats_user or SERVICE_USER
    print(authorization_text(settings.detections_subject, service, devices, user), end="")


def add_devices_parser(sub: Any) -> None:
    """`verity devices ...` on the CLI's subcommands."""
    devices = sub.add_parser("devices", help="devices that publish detections over NATS")
    device_sub = devices.add_subparsers(dest="devices_command", required=True)
    add = device_sub.add_parser("add", help="register a device; prints its credentials once")
    add.add_argument("name", help="device id: its NATS user and the deviceId of its frames")
    rotate = device_sub.add_parser("rotate", help="new password; the old one stops working")
    rotate.add_argument("name")
    disable = device_sub.add_parser("disable", help="remove its NATS user (for good)")
    disable.add_argument("name")
    disable.add_argument("--reason", default="")
    device_sub.add_parser("list", help="registered devices and their status")
    device_sub.add_parser("nats-config", help="the authorization block for an external nats-server")


def devices_command(settings: Settings, args: Any) -> None:
    from domain.errors import DomainError  # noqa: PLC0415

    try:
        if args.devices_command == "add":
            devices_add_command(settings, args.name)
        elif args.devices_command == "rotate":
            devices_rotate_command(settings, args.name)
        elif args.devices_command == "disable":
            devices_disable_command(settings, args.name, args.reason)
        elif args.devices_command == "list":
            devices_list_command(settings)
        else:
            nats_config_command(settings)
    except DomainError as err:
        raise SystemExit(f"verity devices {args.devices_command}: {err.detail}") from None
