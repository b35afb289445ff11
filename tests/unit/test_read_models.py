"""The names write routes wait for (api/services.py ReadModel) are the read models there are."""

from __future__ import annotations

from typing import get_args

import pytest

from api.services import ReadModel
from verity.bootstrap import PROJECTIONS

pytestmark = pytest.mark.unit


def test_the_read_model_names_routes_wait_for_are_the_projections_names() -> None:
    assert sorted(get_args(ReadModel)) == sorted(cls().name for cls in PROJECTIONS)
