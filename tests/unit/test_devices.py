"""Devices: the aggregate's rules, the NATS users and permissions written for them, the files."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from uuid import uuid4

import pytest

from commands.detections import OpenSessions
from commands.device_credentials import hash_password, password_matches
from domain.devices import SERVICE_USER, DeviceStatus, register_device
from domain.errors import Conflict, InvalidValue
from projections.devices import DeviceUser
from verity.nats_access import NatsAccess, authorization, device_permissions

pytestmark = pytest.mark.unit

HASH = hash_password("secret")


@pytest.mark.parametrize(
    "name", ["", "a.b", "a b", "cam*", "cam>", "-cam", "x" * 65, "é", SERVICE_USER]
)
def test_a_device_id_must_be_one_safe_subject_token(name: str) -> None:
    with pytest.raises(InvalidValue, match="name"):
        register_device(name, HASH)


def test_only_a_bcrypt_hash_is_recorded() -> None:
    with pytest.raises(InvalidValue, match="bcrypt"):
        register_device("cam-1", "plain password")
    device = register_device("cam-1", HASH)
    assert device.password_hash == HASH and password_matches("secret", HASH)
    with pytest.raises(InvalidValue, match="bcrypt"):
        device.rotate("another plain one")


def test_a_disabled_device_stays_disabled() -> None:
    device = register_device("cam_2", HASH)
    device.rotate(hash_password("new"))
    device.disable("stolen")
    assert device.status is DeviceStatus.DISABLED
    with pytest.raises(Conflict, match="disabled"):
        device.rotate(HASH)
    with pytest.raises(Conflict, match="disabled"):
        device.disable()


def test_a_device_may_publish_only_its_own_subjects_and_hear_only_its_inbox() -> None:
    assert device_permissions("verity.detections", "cam-1") == {
        "publish": {"allow": ["verity.detections.*.cam-1"]},
        "subscribe": {"allow": ["_INBOX_cam-1.>"]},
    }
    users = authorization("p.detections", "$2b$svc", [DeviceUser(device_id="b", password_hash="h")])
    assert users["users"][0] == {"user": SERVICE_USER, "password": "$2b$svc"}  # unrestricted
    assert users["users"][1]["permissions"]["publish"] == {"allow": ["p.detections.*.b"]}


def test_credentials_and_config_are_private_and_made_once(tmp_path: Path) -> None:
    access = NatsAccess(tmp_path, "verity.detections")
    service = access.service
    assert NatsAccess(tmp_path, "verity.detections").service == service  # kept, not remade
    cam = DeviceUser(device_id="cam-1", password_hash=HASH)
    assert access.write([cam]) is True
    assert access.write([cam]) is False  # unchanged: no reload needed
    for path in (access.credentials_path, access.config_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = access.config_path.read_text()
    assert service.password not in config  # the service password only as its hash
    assert "secret" not in config
    assert access.devices() == [cam]
    service_entry = json.loads(config)["authorization"]["users"][0]
    assert password_matches(service.password, service_entry["password"])


def test_open_sessions_are_loaded_again_once_a_second() -> None:
    now = [100.0]
    known = OpenSessions(clock=lambda: now[0])
    sid = uuid4()
    known.remember(sid, None, frozenset({"cam-1"}))
    assert known.knows(sid) and known.allowed[sid] == {"cam-1"}
    assert known.restricted == {sid}
    now[0] += OpenSessions.REFRESH
    assert not known.knows(sid)  # its allowed devices may have changed: load it again
    known.remember(sid, None, frozenset())  # the list was emptied meanwhile
    assert known.knows(sid) and not known.restricted
