"""The access table: what each role may do, and that anonymous-with-no-role may do nothing."""

from __future__ import annotations

import pytest

from domain.access import GRANTS, Permission, Role, anonymous, may

pytestmark = pytest.mark.unit


def test_admin_may_everything_and_every_other_role_is_narrower() -> None:
    admin = anonymous(Role.ADMIN)
    assert all(may(admin, p) for p in Permission)
    for role in Role:
        if role is not Role.ADMIN:
            assert GRANTS[role] < GRANTS[Role.ADMIN], role


def test_auditor_reads_and_audits_but_writes_nothing() -> None:
    auditor = anonymous(Role.AUDITOR)
    assert {p for p in Permission if may(auditor, p)} == {Permission.READ, Permission.AUDIT}


def test_a_device_only_ingests_and_no_role_means_nothing() -> None:
    assert {p for p in Permission if may(anonymous(Role.DEVICE), p)} == {Permission.INGEST}
    assert not any(may(anonymous(None), p) for p in Permission)
