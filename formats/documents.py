"""JSON, XML and text documents read with bounded depth and size.

Each is counted before parsing with one C-speed pass (`bytes.count`) that can only overcount:
a JSON document has at most 1 + commas + brackets values; an XML document at most one element
per `<` and one attribute per `=`; a text file one line per line feed. Depth is bounded while
decoding: JSON goes through a typed msgspec decoder that accepts any JSON value nested at most
MAX_NESTING deep (it stops at the first bracket too many, without recursing further), XML
through a tree builder that counts open elements and distinct names, fed in chunks so that no
single tag can grow past MAX_XML_TOKEN. defusedxml refuses DTDs, entities and external
references outright, so no expansion can happen.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Union
from xml.etree.ElementTree import Element, TreeBuilder

import defusedxml.ElementTree as SafeET
import msgspec
from defusedxml.common import DefusedXmlException

from formats.import_limits import (
    MAX_ITEMS,
    MAX_NESTING,
    MAX_TEXT_LINES,
    MAX_XML_NAMES,
    MAX_XML_TOKEN,
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


def prepare() -> None:
    """Build the JSON decoder now (a long-running process does it off its event loop)."""
    _json()


@cache
def _json() -> msgspec.json.Decoder[Any]:
    """Built on first use: the nested type takes msgspec seconds to compile, which every
    process importing the API (each `verity` command) paid at start."""
    return msgspec.json.Decoder(_json_value_type(MAX_NESTING))


def _too_many(kind: str, name: str) -> ImportTooLarge:
    return ImportTooLarge(
        f"{name}: more than {MAX_ITEMS} {kind} in one document (MAX_ITEMS)", file=name
    )


def decode_json(data: bytes, name: str = "file") -> Any:
    """The document as builtins; FormatError (any `Refusal`) naming what is wrong."""
    if data.count(b",") + data.count(b"[") + data.count(b"{") + 1 > MAX_ITEMS:
        raise _too_many("JSON values", name)
    try:
        return _json().decode(data)
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


class _TooDeep(Exception):
    pass


class _TooManyNames(Exception):
    pass


class _BoundedBuilder(TreeBuilder):
    """The standard tree builder, refusing elements nested deeper than MAX_NESTING and more
    than MAX_XML_NAMES distinct names; `events` moves whenever the parser reports progress."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._names: set[str] = set()
        self.events = 0

    def start(self, tag: Any, attrs: Any) -> Element:
        self.events += 1
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise _TooDeep
        self._names.add(tag)
        self._names.update(attrs)
        if len(self._names) > MAX_XML_NAMES:
            raise _TooManyNames
        return super().start(tag, attrs)

    def end(self, tag: Any) -> Element:
        self.events += 1
        self._depth -= 1
        return super().end(tag)

    def data(self, data: str) -> None:
        self.events += 1
        super().data(data)


_FEED = 64 * 1024


def _feed(parser: Any, builder: _BoundedBuilder, data: bytes, name: str) -> None:
    """Feed in chunks; a stretch of MAX_XML_TOKEN bytes without one event is one huge tag."""
    quiet = 0
    for at in range(0, len(data), _FEED):
        seen = builder.events
        parser.feed(data[at : at + _FEED])
        quiet = quiet + _FEED if builder.events == seen else 0
        if quiet > MAX_XML_TOKEN:
            raise ImportTooLarge(
                f"{name}: an XML tag or token longer than {MAX_XML_TOKEN} bytes (MAX_XML_TOKEN)",
                file=name,
            )


def parse_xml(data: bytes, name: str) -> Any:
    """The root element; FormatError for malformed, oversized, too deep or unsafe XML."""
    if data.count(b"<") + data.count(b"=") > MAX_ITEMS:
        raise _too_many("XML elements and attributes", name)
    builder = _BoundedBuilder()
    parser = SafeET.DefusedXMLParser(
        target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        _feed(parser, builder, data, name)
        return parser.close()
    except _TooDeep:
        raise ImportTooDeep(
            f"{name}: XML elements nested deeper than {MAX_NESTING} levels (MAX_NESTING)",
            file=name,
        ) from None
    except _TooManyNames:
        raise ImportTooLarge(
            f"{name}: more than {MAX_XML_NAMES} distinct element and attribute names "
            "(MAX_XML_NAMES)",
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


def text_of(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise FormatError(f"file: {name} is not UTF-8 text ({err})", file=name) from None


def text_lines(data: bytes, name: str) -> list[str]:
    """The lines of a UTF-8 text file of at most MAX_TEXT_LINES lines."""
    if data.count(b"\n") >= MAX_TEXT_LINES:
        raise ImportTooLarge(
            f"{name}: more than {MAX_TEXT_LINES} lines (MAX_TEXT_LINES)", file=name
        )
    return text_of(data, name).splitlines()
