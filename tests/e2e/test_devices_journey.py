"""Devices over HTTP: credentials once, only hashes kept, refusals that name what is wrong."""

from __future__ import annotations

import pytest

from commands.device_credentials import password_matches
from commands.devices import load_device
from tests.e2e.helpers import api_client
from verity.bootstrap import open_application
from verity.settings import Settings

pytestmark = pytest.mark.e2e

DEVICES = "/api/admin/devices"


def test_a_device_is_registered_once_rotated_and_disabled_for_good(settings: Settings) -> None:
    with api_client(settings) as client:
        added = client.post(DEVICES, json={"name": "cam-1"})
        assert added.status_code == 201
        creds = added.json()
        assert creds["user"] == creds["deviceId"] == "cam-1"
        assert creds["subject"] == f"{settings.nats_prefix}.detections.<sessionId>.cam-1"
        assert creds["inboxPrefix"] == "_INBOX_cam-1"
        assert "@" not in creds["natsUrl"]  # never the service user's credentials
        listed = client.get(DEVICES).json()
        assert listed[0]["status"] == "active"
        assert creds["password"] not in client.get(DEVICES).text
        assert "password" not in str(listed).lower()  # no hash either

        again = client.post(DEVICES, json={"name": "cam-1"})
        assert again.status_code == 409 and "already registered" in again.json()["detail"]
        for bad in ("cam.1", "cam 1", "x" * 65, "", "verity-service"):
            refused = client.post(DEVICES, json={"name": bad})
            assert refused.status_code == 422 and "name" in refused.json()["detail"], bad
        assert client.post(f"{DEVICES}/nobody/rotate").status_code == 404

        rotated = client.post(f"{DEVICES}/cam-1/rotate").json()
        assert rotated["password"] != creds["password"]
        disabled = client.post(f"{DEVICES}/cam-1/disable", json={"reason": "stolen"}).json()
        assert disabled["status"] == "disabled" and disabled["disabledReason"] == "stolen"
        assert client.post(f"{DEVICES}/cam-1/rotate").status_code == 409
        assert client.post(f"{DEVICES}/cam-1/disable").status_code == 409


def test_the_stored_hash_is_bcrypt_of_the_answered_password(settings: Settings) -> None:
    with api_client(settings) as client:
        creds = client.post(DEVICES, json={"name": "cam-hash"}).json()
    assert settings.database_url is not None
    app = open_application(settings.database_url)
    try:
        device = load_device(app, "cam-hash")
    finally:
        app.close()
    assert device.password_hash.startswith("$2b$")
    assert password_matches(creds["password"], device.password_hash)
