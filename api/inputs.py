"""Request decoding that accepts camelCase and snake_case and names the field that is wrong."""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Generator
from enum import Enum
from typing import Annotated, Any, TypeVar, get_args, get_origin

import msgspec
from litestar.dto import DTOConfig, DTOFieldDefinition, MsgspecDTO
from litestar.exceptions import HTTPException
from litestar.params import Parameter

from domain.casing import to_camel, to_snake
from domain.limits import MAX_PAGE, MAX_SKIP

T = TypeVar("T")

SkipQuery = Annotated[int, Parameter(ge=0, le=MAX_SKIP, description="Rows to skip")]
"""`skip` of every list endpoint. Query parameters are checked by Litestar, which reads these
bounds rather than msgspec's, so the `domain.limits` range is restated here once."""
LimitQuery = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="Most rows to return")]
_FIELD_IN_MESSAGE = re.compile(r" - at `\$\.?([^`]*)`$")


class InputError(HTTPException):
    """A 4xx whose `detail` names the field; `errors` lists each problem for programs."""

    status_code = 422

    def __init__(self, detail: str, field: str | None = None, status_code: int = 422) -> None:
        extra = {"errors": [{"field": field, "message": detail}]} if field else None
        super().__init__(detail=detail, status_code=status_code, extra=extra)


def _struct_in(tp: Any) -> type[msgspec.Struct] | None:
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if get_origin(tp) in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            if found := _struct_in(arg):
                return found
    return None


@functools.cache
def _field_types(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """A struct's field types, resolved once: `get_type_hints` was most of a small request's
    decoding (POST /api/detection-events)."""
    return typing.get_type_hints(struct)


def normalize_keys(value: Any, tp: Any) -> Any:
    """Rename camelCase keys to the snake_case field names of `tp`, recursively by type."""
    struct = _struct_in(tp)
    if struct is not None and isinstance(value, dict):
        hints = _field_types(struct)
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = to_snake(key) if isinstance(key, str) else key
            if name in hints and (name not in out or key == name):
                out[name] = normalize_keys(item, hints[name])
        return out
    origin = get_origin(tp)
    if origin in (list, tuple, set, frozenset) and isinstance(value, list):
        args = get_args(tp)
        inner = args[0] if args else Any
        return [normalize_keys(v, inner) for v in value]
    if origin is typing.Annotated:
        return normalize_keys(value, get_args(tp)[0])
    return value


def _allowed_values(tp: Any, path: str) -> list[str] | None:
    """The allowed values of the enum or literal at `path` of `tp`, for the error message."""
    for part in path.split(".") if path else []:
        struct = _struct_in(tp)
        if struct is None:
            return None
        tp = typing.get_type_hints(struct, include_extras=True).get(part.split("[")[0])
        while get_origin(tp) in (typing.Union, types.UnionType, typing.Annotated):
            candidates = [a for a in get_args(tp) if a is not type(None)]
            tp = candidates[0] if candidates else None
    if isinstance(tp, type) and issubclass(tp, Enum):
        return [str(m.value) for m in tp]
    if get_origin(tp) is typing.Literal:
        return [str(a) for a in get_args(tp)]
    return None


def convert_input(value: Any, tp: type[T]) -> T:
    """Validate already-parsed JSON against `tp`; InputError naming the field on failure."""
    try:
        return msgspec.convert(normalize_keys(value, tp), tp)
    except msgspec.ValidationError as err:
        message = str(err)
        match = _FIELD_IN_MESSAGE.search(message)
        path = match.group(1) if match else ""
        field = ".".join(to_camel(p) for p in path.split(".")) if path else None
        text = _FIELD_IN_MESSAGE.sub("", message)
        allowed = _allowed_values(tp, path)
        if allowed:
            text += f"; allowed values: {', '.join(allowed)}"
        if text.startswith("Object missing required field"):
            missing = text.split("`")[1] if "`" in text else ""
            field = ".".join(filter(None, [field, to_camel(missing)]))
            text = "field is required"
        detail = f"{field}: {text}" if field else text
        raise InputError(detail, field) from None


def checked(value: Any, tp: Any, field: str) -> Any:
    """A path or query value checked against its `domain.limits` type; 422 naming `field`."""
    try:
        return msgspec.convert(value, tp)
    except msgspec.ValidationError as err:
        raise InputError(f"{field}: {err}", field) from None


def decode_input(raw: bytes, tp: type[T]) -> T:
    if not raw.strip():
        raise InputError("Request body is empty; a JSON object was expected", status_code=400)
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as err:
        # ValidationError: a number beyond a double (1e400); UnicodeDecodeError: a string
        # that is not UTF-8
        raise InputError(f"Request body is not valid JSON: {err}", status_code=400) from None
    except RecursionError:
        raise InputError("Request body is nested too deeply", status_code=400) from None
    return convert_input(value, tp)


class InputDTO(MsgspecDTO[T]):  # type: ignore[type-var]
    """Decodes request bodies with `decode_input`; OpenAPI shows the camelCase spelling.

    The model's own msgspec constraints (the `domain.limits` types) do the validating, so the
    transfer model Litestar builds for the OpenAPI document carries them as documentation
    only: copied onto it as msgspec constraints they would land on the whole `X | None` union,
    which msgspec refuses."""

    config = DTOConfig(rename_strategy="camel")

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        for definition in super().generate_field_definitions(model_type):
            yield dataclasses.replace(definition, passthrough_constraints=False)

    def decode_bytes(self, value: bytes) -> Any:
        return decode_input(value, self.model_type)

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        return convert_input(value, self.model_type)
