"""How a field's name is spelled outside: snake_case in Python and stored events, camelCase on
the wire (contract decision 1), snake_case twins where the original's pages read them.

The one place names change case: request decoding, device messages, the relay envelope, live
messages and typed responses all go through here. Pure (standard library and msgspec), so every
layer may use it.
"""

from __future__ import annotations

import re
import types
import typing
from functools import cache
from typing import Any, TypeVar, cast

import msgspec

S = TypeVar("S", bound=msgspec.Struct)

_BOUNDARY = re.compile(r"(?<=[a-z0-9])([A-Z])")
_TWIN = "__snake"


def to_snake(name: str) -> str:
    """`videoId` -> `video_id`, `MetadataExtracted` -> `metadata_extracted`."""
    return _BOUNDARY.sub(r"_\1", name).lower()


def to_camel(name: str) -> str:
    """`video_id` -> `videoId`; a name without `_` is left as it is."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def camel_keys(value: Any) -> Any:
    """A JSON-like document with every dict key in camelCase, at every level."""
    if isinstance(value, dict):
        return {to_camel(k) if isinstance(k, str) else k: camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def _config(cls: type[msgspec.Struct]) -> dict[str, Any]:
    c = cls.__struct_config__
    return {
        "frozen": c.frozen,
        "omit_defaults": c.omit_defaults,
        "array_like": c.array_like,
        "forbid_unknown_fields": c.forbid_unknown_fields,
        "kw_only": True,
    }


def _field(f: msgspec.structs.FieldInfo, tp: Any, name: str | None = None) -> tuple[Any, ...]:
    if f.default is not msgspec.NODEFAULT:
        return (f.name, tp, msgspec.field(default=f.default, name=name))
    if f.default_factory is not msgspec.NODEFAULT:
        return (f.name, tp, msgspec.field(default_factory=f.default_factory, name=name))
    return (f.name, tp) if name is None else (f.name, tp, msgspec.field(name=name))


def _camel_type(tp: Any) -> Any:
    """`tp` with every Struct in it replaced by its camelCase view."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return camel_view(tp)
    args = typing.get_args(tp)
    if not args:
        return tp
    origin = typing.get_origin(tp)
    mapped = tuple(a if a is Ellipsis else _camel_type(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[mapped]  # noqa: UP007 - built from a tuple at run time
    return origin[mapped]


@cache
def camel_view(cls: type[S]) -> type[S]:
    """A subclass of `cls` whose fields (and those of the Structs in them) are written in
    camelCase. For a response that shows a stored Struct (an evaluation report, a verdict)
    without renaming the persisted schema; fill it with `as_camel`."""
    fields = [_field(f, _camel_type(f.type)) for f in msgspec.structs.fields(cls)]
    view = msgspec.defstruct(
        cls.__name__,
        fields,
        bases=(cls,),
        module=cls.__module__,
        rename="camel",
        **_config(cls),
    )
    view.__doc__ = cls.__doc__
    return cast("type[S]", view)


def as_camel(value: S) -> S:
    """`value` as its `camel_view` (same attributes; camelCase on the wire)."""
    return cast("S", msgspec.convert(value, camel_view(type(value)), from_attributes=True))


def with_snake_twins(cls: type[S]) -> type[S]:
    """Class decorator: `cls` also writes each renamed field under its snake_case name, for
    the responses whose original readers use snake_case (the contract names them).

    The twins are real fields of a subclass, so the OpenAPI document lists both spellings;
    they are filled from their camelCase originals after construction.
    """
    renamed = [f for f in msgspec.structs.fields(cls) if f.encode_name != f.name]
    twins = [(f.name + _TWIN, f.type, msgspec.field(default=None, name=f.name)) for f in renamed]
    names = [(f.name + _TWIN, f.name) for f in renamed]

    def __post_init__(self: msgspec.Struct) -> None:  # noqa: N807 - msgspec's hook name
        for twin, name in names:
            msgspec.structs.force_setattr(self, twin, getattr(self, name))

    twinned = msgspec.defstruct(
        cls.__name__,
        twins,
        bases=(cls,),
        module=cls.__module__,
        namespace={"__post_init__": __post_init__},
        **_config(cls),
    )
    twinned.__doc__ = cls.__doc__
    return cast("type[S]", twinned)
