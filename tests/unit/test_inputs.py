"""Request bodies: both casings in, errors that name the field and the allowed values."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from api.inputs import InputError, decode_input
from api.projects import ProjectIn
from domain.casing import to_camel, to_snake
from domain.projects import CameraView

pytestmark = pytest.mark.unit


def test_camel_and_snake_spellings_are_both_accepted() -> None:
    camel = decode_input(
        b'{"name":"a","cameraModel":"m","cameraView":"Multi-angle","signalType":"GPIO"}',
        ProjectIn,
    )
    snake = decode_input(
        b'{"name":"a","camera_model":"m","camera_view":"Multi-angle","signal_type":"GPIO"}',
        ProjectIn,
    )
    assert camel == snake
    assert camel.camera_view is CameraView.MULTI_ANGLE


def test_enum_error_names_field_and_allowed_values() -> None:
    with pytest.raises(InputError) as err:
        decode_input(
            b'{"name":"a","cameraModel":"m","cameraView":"Side","signalType":"GPIO"}', ProjectIn
        )
    assert err.value.status_code == 422
    assert err.value.detail.startswith("cameraView: Invalid enum value 'Side'")
    assert "Front-facing VRU" in err.value.detail


def test_missing_field_is_named_in_camel_case() -> None:
    with pytest.raises(InputError, match="cameraModel: field is required"):
        decode_input(b'{"name":"a","cameraView":"Multi-angle","signalType":"GPIO"}', ProjectIn)


def test_malformed_json_is_a_400() -> None:
    with pytest.raises(InputError) as err:
        decode_input(b"{nope", ProjectIn)
    assert err.value.status_code == 400


class Box(msgspec.Struct):
    top_left: Annotated[int, msgspec.Meta(ge=0)]


class Outer(msgspec.Struct):
    bounding_box: Box


def test_nested_structs_are_normalised() -> None:
    assert decode_input(b'{"boundingBox":{"topLeft":3}}', Outer).bounding_box.top_left == 3
    with pytest.raises(InputError, match=r"boundingBox\.topLeft"):
        decode_input(b'{"boundingBox":{"topLeft":-1}}', Outer)


@pytest.mark.parametrize(("snake", "camel"), [("camera_view", "cameraView"), ("id", "id")])
def test_case_conversions(snake: str, camel: str) -> None:
    assert to_camel(snake) == camel
    assert to_snake(camel) == snake


@pytest.mark.parametrize(
    "body",
    [b"1e400", b'{"name": 1e400}', b"[" * 100_000, b'{"name": "\xff"}', b'{"a":1}}', b"1 x"],
)
def test_any_body_that_is_not_json_is_a_400_never_a_crash(body: bytes) -> None:
    with pytest.raises(InputError) as err:
        decode_input(body, ProjectIn)
    assert err.value.status_code == 400
