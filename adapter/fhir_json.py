"""FHIR JSON that keeps every decimal as written, one codec for files and for the wire.

Writing: `dumps` is orjson with `Decimal` emitted as its text (`Decimal("74.50")` -> `74.50`).
Reading: `loads` parses with orjson unless a cheap byte scan finds a number whose float would not print
as written (`74.50`, `1E+3`, 16 or more digits, `0.00001`, `-0`); such text is parsed with
`json.loads(parse_float=DecimalText)`, a `Decimal` that also remembers its exact text (integers stay ints,
except `-0` and those beyond 64 bits, which become `DecimalText` too). Every number therefore comes back
as an int, as a float whose `repr` is the written text, or as a `DecimalText`.

`adapter.fhir_files` (NDJSON and Bundles on disk) and `adapter.client` (request and response bodies) both
use it, so a decimal survives file -> server -> file unchanged.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

__all__ = [
    "SUSPECT_NUMBER",
    "DecimalText",
    "JSONDecodeErrors",
    "dumps",
    "exact_loads",
    "has_suspect_number",
    "loads",
    "loads_line",
]

JSONDecodeErrors = (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError)
"""What a parse of bad JSON raises, whichever parser ran."""


class DecimalText(Decimal):
    """A FHIR decimal read from JSON: a `Decimal` whose `str` is the text exactly as written
    (`Decimal("0.0000001")` prints `1E-7`; `DecimalText("0.0000001")` prints `0.0000001`)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> DecimalText:
        self = super().__new__(cls, text)
        self.text = text
        return self

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"DecimalText({self.text!r})"


def default(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"a FHIR decimal must be finite, not {value}")
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes; decimals written exactly as their text."""
    return orjson.dumps(value, default=default)


_SUSPECT_FORMS = (
    rb"[0-9]+\.[0-9]+0\s*[,\]}]",  # a trailing zero: 74.50, 1.00 (1.0 prints as written)
    rb"[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]+\s*[,\]}]",  # an exponent: 1E+3
    rb"(?:[0-9]\.?){16}",  # 16 or more digits: more than a float keeps
    rb"0\.0000",  # 0.00001 and smaller print with an exponent
    rb"0\s*[,\]}]",  # -0 (an int loses the sign)
)
SUSPECT_NUMBER = re.compile(rb"[:\[,]\s*-?(?:" + b"|".join(_SUSPECT_FORMS) + rb")")
"""A number in JSON whose float (or int) would not print back as written. False alarms (a string that
looks like such a number after `:`) only cost speed: the exact parser is used for that text."""


def _parse_int(text: str) -> int | DecimalText:
    """An int, except `-0` (whose sign an int loses) and beyond 64 bits (which orjson cannot write)."""
    return DecimalText(text) if text == "-0" or len(text) > 18 else int(text)


def exact_loads(data: bytes | str) -> Any:
    return json.loads(data, parse_float=DecimalText, parse_int=_parse_int)


_MEMBER_SUSPECT = re.compile(
    rb'"\s*:(?=\s*-?[0-9])\s*-?(?:'
    rb"[0-9]+\.[0-9]+0\s*[,\]}]"
    rb"|[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]+\s*[,\]}]"
    rb"|(?:[0-9]\.?){16}"
    rb"|0\.0000"
    rb"|0\s*[,\]}])"
)
"""SUSPECT_NUMBER's forms, only after `":` (an object member's value): the literal `":` prefix and
the look-ahead for a digit let the regex engine skip string values quickly (about 4x faster)."""

_ARRAY_NUMBER = re.compile(rb"\[\s*-?[0-9]")


def has_suspect_number(raw: bytes) -> bool:
    """True when `raw` (a JSON text) may hold a number that orjson would not give back as written.

    Members' values are checked directly; when an array starts with a number (FHIR arrays hold one
    type, so its other elements are numbers too) the whole text is checked with `SUSPECT_NUMBER`."""
    if _MEMBER_SUSPECT.search(raw) is not None:
        return True
    return _ARRAY_NUMBER.search(raw) is not None and SUSPECT_NUMBER.search(raw) is not None


def loads_line(line: bytes) -> Any:
    """Parse one compact JSON text (an NDJSON line) keeping every number's written text, fast.

    orjson parses it; when orjson writes the result back as exactly the same bytes, every number is
    already what was written (the common case for NDJSON this project or another orjson writer made)
    and costs one `dumps` and a compare. Otherwise `loads` decides (guard, then the exact parser)."""
    text = line.rstrip(b"\r\n")
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return exact_loads(text)  # e.g. an integer beyond 64 bits; raises for text that is not JSON
    if orjson.dumps(parsed) == text:
        return parsed
    return exact_loads(text) if has_suspect_number(text) else parsed


def loads(data: bytes | str) -> Any:
    """Parse JSON keeping every number's written text: orjson unless `has_suspect_number`."""
    raw = data.encode() if isinstance(data, str) else data
    return exact_loads(raw) if has_suspect_number(raw) else orjson.loads(raw)
