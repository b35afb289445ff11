"""JSON and XML documents read with bounded depth and size.

Both are counted before parsing with one C-speed pass (`bytes.count`) that can only overcount:
a JSON document has at most 1 + commas + brackets values; an XML document at most one element
per `<` and one attribute per `=`. Depth is bounded while decoding: JSON goes through a typed
msgspec decoder that accepts any JSON value nested at most MAX_NESTING deep (it stops at the
first bracket too many, without recursing further), XML through a tree builder that counts open
elements. defusedxml refuses DTDs, entities and external references outright, so no expansion
can happen.
"""

from __future__ import annotations

from typing import Any, Union
from xml.etree.ElementTree import Element, TreeBuilder

import defusedxml.ElementTree as SafeET
import msgspec
from defusedxml.common import DefusedXmlException

from api.formats.import_limits import (
    MAX_ITEMS,
    MAX_NESTING,
    FormatError,
    ImportTooDeep,
    ImportTooLarge,
)


def _json_value_type(depth: int) -> Any:
    """Any JSON value whose arrays and objects nest at most `depth` deep."""
    scalar: Any = Union[str, int, float, bool, None]  # noqa: UP007 - built at run time
    value = scalar
    for _ in range(depth):
        value = Union[scalar, list[value], dict[str, value]]  # type: ignore[valid-type]  # noqa: UP007
    return value


_json = msgspec.json.Decoder(_json_value_type(MAX_NESTING))


def _too_many(kind: str, name: str) -> ImportTooLarge:
    return ImportTooLarge(
        f"{name}: more than {MAX_ITEMS} {kind} in one document (MAX_ITEMS)", file=name
    )


def decode_json(data: bytes, name: str = "file") -> Any:
    """The document as builtins; FormatError (400, 413, 422) naming what is wrong."""
    if data.count(b",") + data.count(b"[") + data.count(b"{") + 1 > MAX_ITEMS:
        raise _too_many("JSON values", name)
    try:
        return _json.decode(data)
    except msgspec.ValidationError as err:
        text = str(err)
        if "got `array`" in text or "got `object`" in text:
            where = text.rpartition(" - at `")[2].rstrip("`")
            raise ImportTooDeep(
                f"{name}: JSON nested deeper than {MAX_NESTING} levels (MAX_NESTING) at "
                f"{where[:120]}",
                file=name,
            ) from None
        raise FormatError(f"{name}: not valid JSON ({text})", file=name) from None
    except msgspec.DecodeError as err:
        raise FormatError(f"{name}: not valid JSON ({err})", file=name) from None


class _NestingTooDeep(Exception):
    pass


class _BoundedBuilder(TreeBuilder):
    """The standard tree builder, refusing elements nested deeper than MAX_NESTING."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0

    def start(self, tag: Any, attrs: Any) -> Element:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise _NestingTooDeep
        return super().start(tag, attrs)

    def end(self, tag: Any) -> Element:
        self._depth -= 1
        return super().end(tag)


def parse_xml(data: bytes, name: str) -> Any:
    """The root element; FormatError for malformed, oversized, too deep or unsafe XML."""
    if data.count(b"<") + data.count(b"=") > MAX_ITEMS:
        raise _too_many("XML elements and attributes", name)
    parser = SafeET.DefusedXMLParser(
        target=_BoundedBuilder(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(data)
        return parser.close()
    except _NestingTooDeep:
        raise ImportTooDeep(
            f"{name}: XML elements nested deeper than {MAX_NESTING} levels (MAX_NESTING)",
            file=name,
        ) from None
    except SafeET.ParseError as err:
        line = err.position[0] if getattr(err, "position", None) else None
        raise FormatError(f"{name}: not well-formed XML ({err})", line=line, file=name) from None
    except DefusedXmlException as err:
        raise ImportTooDeep(
            f"{name}: refused unsafe XML ({type(err).__name__}: DTDs and entities are not "
            "accepted)",
            file=name,
        ) from None
