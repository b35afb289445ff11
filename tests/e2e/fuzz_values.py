"""Hypothesis strategies for hostile request bodies, derived from a command DTO's own type.

Half the bodies keep every field inside its msgspec range, edges included (so they are
accepted and their events must project); the other half mix in what an attacker tries:
integers just past 32 and 64 bits, floats of 1e308 and "infinity" (`1e999` in the JSON), NUL
and control characters, strings just past a limit and of two million characters, lone
surrogates, wrong JSON types.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import msgspec
from hypothesis import strategies as st

from domain.limits import MAX_TEXT

INFINITY = "\x1einf\x1e"
"""Stands for a float JSON cannot write; `encode` turns it into the literal `1e999`."""

HUGE_INTS = [-1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]
HUGE_FLOATS: list[Any] = [1e308, -1e308, 2.0**63, -0.0, 5e-324, INFINITY]
NASTY_TEXT = [
    "",
    " ",
    "a\x00b",
    "\x00",
    "bell\x07",
    "\x7f",
    "line\nbreak\ttab\r",
    "\ud800",
    "x" * (MAX_TEXT + 1),
    "y" * 2_000_000,
]
WRONG_TYPES: list[Any] = [None, [], {}, "1", True]


def encode(body: Any) -> bytes:
    """JSON text; `json` (not msgspec) so that lone surrogates go out as `\\ud800` escapes."""
    return json.dumps(body).replace(json.dumps(INFINITY), "1e999").encode()


def _int(t: msgspec.inspect.IntType, hostile: bool) -> st.SearchStrategy[Any]:
    low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else -10)
    high = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else 10**6)
    inside = st.one_of(st.integers(low, min(high, low + 1000)), st.sampled_from([low, high]))
    return st.one_of(inside, st.sampled_from(HUGE_INTS)) if hostile else inside


def _float(t: msgspec.inspect.FloatType, hostile: bool) -> st.SearchStrategy[Any]:
    low = t.ge if t.ge is not None else (t.gt if t.gt is not None else -1e6)
    high = t.le if t.le is not None else (t.lt if t.lt is not None else 1e6)
    edges = [v for v, open_ in ((low, t.ge is None), (high, t.le is None)) if not open_]
    inside = st.floats(
        low, high, exclude_min=t.ge is None, exclude_max=t.le is None, allow_nan=False
    )
    inside = st.one_of(inside, st.sampled_from(edges)) if edges else inside
    return st.one_of(inside, st.sampled_from(HUGE_FLOATS)) if hostile else inside


def _str(t: msgspec.inspect.StrType, words: list[str], hostile: bool) -> st.SearchStrategy[Any]:
    most = t.max_length or 40
    printable = st.characters(blacklist_categories=("Cc", "Cs"))
    fitting = st.one_of(
        st.sampled_from(words),
        st.text(printable, min_size=max(t.min_length or 0, 1), max_size=min(most, 40)),
        st.just("\U0001f6b2" * most),  # four UTF-8 bytes each, at the length limit
    )
    if not hostile:
        return fitting
    return st.one_of(fitting, st.text(max_size=40), st.sampled_from(NASTY_TEXT))


def value_of(t: Any, ids: list[str], words: list[str], hostile: bool) -> st.SearchStrategy[Any]:
    """Values for one msgspec type: in its range, or (hostile) also far outside or of none."""
    inspect = msgspec.inspect
    wrong = st.sampled_from(WRONG_TYPES)
    if isinstance(t, inspect.UnionType):
        return st.one_of([value_of(m, ids, words, hostile) for m in t.types])
    if isinstance(t, inspect.NoneType):
        return st.none()
    if isinstance(t, inspect.BoolType):
        return st.one_of(st.booleans(), wrong) if hostile else st.booleans()
    if isinstance(t, inspect.IntType):
        return _int(t, hostile)
    if isinstance(t, inspect.FloatType):
        return _float(t, hostile)
    if isinstance(t, inspect.StrType):
        return _str(t, words, hostile)
    if isinstance(t, inspect.UUIDType):
        odd = [str(uuid4()), "not-a-uuid"] if hostile else []
        return st.sampled_from([*ids, *odd])
    if isinstance(t, inspect.EnumType):
        return st.sampled_from([*(m.value for m in t.cls), *(["nonsense"] if hostile else [])])
    if isinstance(t, inspect.LiteralType):
        return st.sampled_from([*t.values, *(["nonsense"] if hostile else [])])
    if isinstance(t, inspect.ListType):
        items = value_of(t.item_type, ids, words, hostile)
        few = st.lists(items, min_size=t.min_length or 0, max_size=3)
        if not hostile:
            return few
        over = (t.max_length or 1000) + 1
        return st.one_of(few, st.builds(lambda v: [v] * over, items))
    if isinstance(t, inspect.StructType):
        return body_of(t.cls, ids, words)
    return wrong


def body_of(dto: type[msgspec.Struct], ids: list[str], words: list[str]) -> st.SearchStrategy[Any]:
    """A JSON object for `dto`: each field present or not, spelled camelCase or snake_case."""
    fields = msgspec.inspect.type_info(dto).fields  # type: ignore[attr-defined]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        hostile = draw(st.booleans(), label="hostile")
        body: dict[str, Any] = {}
        for field in fields:
            if not field.required and draw(st.integers(0, 3)) == 0:
                continue
            name = field.name
            if draw(st.booleans()):
                head, *rest = name.split("_")
                name = head + "".join(p.title() for p in rest)
            body[name] = draw(value_of(field.type, ids, words, hostile))
        return body

    return build()
