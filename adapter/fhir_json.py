"""FHIR JSON that keeps every decimal as written, one codec for files and for the wire.

Writing: `dumps` is orjson with `Decimal` emitted as its text (`Decimal("74.50")` -> `74.50`).
Reading: `loads` parses with orjson unless a cheap byte scan finds a number whose float would not print
as written (`74.50`, `1E+3`, 16 or more digits, `0.00001`, `-0`); such text is parsed with
`json.loads(parse_float=DecimalText)`, a `Decimal` that also remembers its exact text (integers stay ints,
except `-0` and those beyond 64 bits, which become `DecimalText` too). Every number therefore comes back
as an int, as a float whose `repr` is the written text, or as a `DecimalText`.

`adapter.fhir_files` (NDJSON and Bundles on disk) and `adapter.client` (request and response bodies) both
use it, so a decimal survives file -> server -> file unchanged.

Every parse goes through ONE guard first, `check_depth`: JSON nested deeper than `MAX_DEPTH` levels
raises `JSONTooDeep` (never a RecursionError from the stdlib parser). `NaN`, `Infinity` and `-Infinity`,
which the stdlib parser accepts but JSON does not, raise `JSONNotANumber`. Both are `json.JSONDecodeError`s
(with `lineno`, `colno`, `pos`) and so in `JSONDecodeErrors`: whoever handles bad JSON handles them.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from mappings.errors import ExitCode, TrialfhirError

__all__ = [
    "MAX_DEPTH",
    "SUSPECT_NUMBER",
    "DecimalText",
    "JSONDecodeErrors",
    "JSONLoneSurrogate",
    "JSONNotANumber",
    "JSONTooDeep",
    "check_depth",
    "dumps",
    "exact_loads",
    "has_suspect_number",
    "loads",
    "loads_line",
    "loads_line_written",
]

JSONDecodeErrors = (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError)
"""What a parse of bad JSON raises, whichever parser ran (`JSONTooDeep` and `JSONNotANumber` included)."""

MAX_DEPTH = 254
"""The deepest nesting of objects and arrays read: the deepest orjson can write back (a text read
must be writable again), far beyond FHIR's needs (a resource is about 10 levels deep, a Bundle nested
in a Bundle adds 3). Deeper JSON raises `JSONTooDeep`: the stdlib parser would exhaust Python's
recursion limit (RecursionError) long before a 100,000-deep text ends."""


def _position(doc: bytes | str, pos: int) -> tuple[int, int]:
    """(1-based line, 1-based column) of offset `pos` in `doc`."""
    if isinstance(doc, str):
        return doc.count("\n", 0, pos) + 1, pos - doc.rfind("\n", 0, pos)
    return doc.count(b"\n", 0, pos) + 1, pos - doc.rfind(b"\n", 0, pos)


class _RefusedJSON(TrialfhirError, json.JSONDecodeError):
    """JSON refused before or while parsing; `lineno`, `colno` and `pos` say where (the text itself is
    not kept: it may hold patient data)."""

    code: ClassVar[str] = "json_refused"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    def __init__(self, reason: str, doc: bytes | str, pos: int) -> None:
        line, column = _position(doc, pos)
        ValueError.__init__(self, f"{reason}: line {line} column {column} (char {pos})")
        self.msg = reason
        self.doc = ""
        self.pos = pos
        self.lineno = line
        self.colno = column

    def __reduce__(self) -> tuple[object, ...]:
        return (ValueError, (str(self),))


class JSONTooDeep(_RefusedJSON):
    """JSON nested deeper than `MAX_DEPTH` (or the given limit); `pos` is the first bracket too deep."""

    code: ClassVar[str] = "json_too_deep"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT


class JSONNotANumber(_RefusedJSON):
    """`NaN`, `Infinity` or `-Infinity` in JSON: not a JSON number (the stdlib parser takes them)."""

    code: ClassVar[str] = "json_not_a_number"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT


class JSONLoneSurrogate(_RefusedJSON):
    """A `\\ud800`-style escape without its pair: not a Unicode character (orjson refuses it; `loads`
    refuses it whichever parser ran, so a server's answer never carries one into a file)."""

    code: ClassVar[str] = "json_lone_surrogate"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT


_OPENERS = (ord("["), ord("{"))
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_LEAF_PAIR = re.compile(rb"\[\]|\{\}")
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def check_depth(data: bytes | str, limit: int = MAX_DEPTH) -> None:
    """Raise `JSONTooDeep` when the JSON text `data` nests objects and arrays deeper than `limit`.

    The guard in front of every parse of this codec (files and server bodies). Fast: a text with at
    most `limit` opening brackets (nearly every FHIR resource) is passed after two byte counts; other
    texts have their strings blanked and their leaf pairs (`[]`, `{}`) removed one level per round,
    at most `limit` rounds, in C. Text that is not JSON is left for the parser to report.

    Raises:
        JSONTooDeep: naming the line and column of the first bracket beyond the limit.
    """
    raw = data.encode() if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return
    too_deep = re.search(rb"[\[{]{%d}" % (limit + 1), brackets) is not None
    rounds = 0
    while not too_deep and rounds < limit:
        fewer = _LEAF_PAIR.sub(b"", brackets)
        if not fewer or fewer == brackets:
            return
        brackets = fewer
        rounds += 1
    if not too_deep and _LEAF_PAIR.search(brackets) is None:
        return
    depth = 0
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token[0] in _OPENERS:
            depth += 1
            if depth > limit:
                raise JSONTooDeep(f"nested deeper than {limit} levels", raw, match.start())
        elif token[0] != ord('"'):
            depth -= 1
    raise JSONTooDeep(f"nested deeper than {limit} levels", raw, 0)  # pragma: no cover


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


_CONSTANT = re.compile(rb'"(?:[^"\\]|\\.)*"|-?Infinity|NaN', re.DOTALL)


def _refuse_constant(name: str) -> Any:
    raise JSONNotANumber(f"{name} is not a JSON number", b"", 0)


def _exact(data: bytes | str) -> Any:
    """The stdlib parser keeping every number's text; `NaN`/`Infinity` refused with their position."""
    try:
        return json.loads(
            data, parse_float=DecimalText, parse_int=_parse_int, parse_constant=_refuse_constant
        )
    except JSONNotANumber as exc:
        raw = data.encode() if isinstance(data, str) else data
        for match in _CONSTANT.finditer(raw):
            if match.group()[0] != ord('"'):
                raise JSONNotANumber(exc.msg, raw, match.start()) from None
        raise


def exact_loads(data: bytes | str) -> Any:
    """Parse with the stdlib parser, every float a `DecimalText` (after `check_depth`)."""
    check_depth(data)
    return _exact(data)


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

_NUMBER_START = frozenset(b"-0123456789"[i : i + 1] for i in range(11))
_NUMBER_BYTES = b"0123456789.+-"
_EXPONENT_VIEW = bytes(
    b":"[0] if byte in b":[," else b"e"[0] if byte in b"eE" else b"x"[0] for byte in range(256)
)
"""`_has_exponent_number`'s view of a text: where a value may start (`:`, `[`, `,`) becomes `:`, an
`e` or `E` stays `e`, every other byte `x` (after the bytes of a number's other characters are
deleted)."""


def _has_exponent_number(compact: bytes) -> bool:
    """True when `compact` (JSON as orjson writes it: no whitespace) may hold a number written with an
    exponent (or a string that looks like one: then the exact parser, right for both, merely runs
    where it need not).

    A number follows `:` (a member's value), `[` or `,` (an array's element), or starts the text; it
    is made of digits, `.`, `+`, `-` and, written with an exponent, one `e` or `E`. With those other
    characters deleted and the rest mapped by `_EXPONENT_VIEW` (two passes in C, no regular
    expression), such a number leaves `:e`; a string leaves `:e` only when it holds a `:`, `[` or `,`
    followed by a number-like text with an `e` (`"urn:example"`): a false alarm, never a miss. The hex
    digits of a UUID (`8e83`) follow no such byte inside a string, so they do not send nearly every
    line to the exact parser."""
    if compact[:1] in _NUMBER_START:
        return True
    return b":e" in compact.translate(_EXPONENT_VIEW, _NUMBER_BYTES)


def has_suspect_number(raw: bytes) -> bool:
    """True when `raw` (a JSON text) may hold a number that orjson would not give back as written.

    Members' values are checked directly; when an array starts with a number (FHIR arrays hold one
    type, so its other elements are numbers too) the whole text is checked with `SUSPECT_NUMBER`."""
    if _MEMBER_SUSPECT.search(raw) is not None:
        return True
    return _ARRAY_NUMBER.search(raw) is not None and SUSPECT_NUMBER.search(raw) is not None


def loads_line_written(line: bytes) -> tuple[Any, bytes | None]:
    """`loads_line`, and the text itself (without its line end) when orjson writes the result back
    as exactly those bytes (None otherwise): then it is the parsed value's compact JSON, for free.

    Parse one compact JSON text (an NDJSON line) keeping every number's written text, fast.

    orjson parses it; when orjson writes the result back as exactly the same bytes, every number is
    already what was written (the common case for NDJSON this project or another orjson writer made)
    and costs one `dumps` and a compare. Otherwise `loads` decides (guard, then the exact parser).
    The depth guard costs nothing here: orjson writes at most `MAX_DEPTH` levels, so a text it wrote
    back is within the limit, and `check_depth` runs only when orjson could not parse or write it."""
    text = line.rstrip(b"\r\n")
    try:
        parsed = orjson.loads(text)  # refuses more than 1,024 levels itself
    except orjson.JSONDecodeError:
        check_depth(text)
        return _exact(
            text
        ), None  # e.g. an integer beyond 64 bits; raises for text that is not JSON
    try:
        written = orjson.dumps(parsed)
    except orjson.JSONEncodeError:  # deeper than orjson writes, so deeper than MAX_DEPTH
        check_depth(text)
        raise
    # `written` exists, so `text` is at most MAX_DEPTH deep: no `check_depth` needed on this path
    if written == text:
        # orjson writes an exponent as `1e-6` where Python prints the float as `1e-06`: a number
        # with an exponent keeps its written text only through the exact parser
        return (_exact(text), None) if _has_exponent_number(text) else (parsed, text)
    return (_exact(text) if has_suspect_number(text) else parsed), None


def loads_line(line: bytes) -> Any:
    """Parse one compact JSON text (an NDJSON line) keeping every number's written text, fast
    (`loads_line_written`, the value alone)."""
    return loads_line_written(line)[0]


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _no_lone_surrogate(parsed: Any, raw: bytes) -> Any:
    """`parsed`, unless a string in it holds a lone surrogate (orjson, which cannot write one, says
    so; it runs only when `raw` holds a surrogate escape at all).

    Raises:
        JSONLoneSurrogate: at the first surrogate escape of `raw`."""
    match = _SURROGATE_ESCAPE.search(raw)
    if match is None:
        return parsed
    try:
        orjson.dumps(parsed, default=default)
    except orjson.JSONEncodeError:
        reason = "a lone surrogate escape (without its pair): not a Unicode character"
        raise JSONLoneSurrogate(reason, raw, match.start()) from None
    return parsed


def loads(data: bytes | str) -> Any:
    """Parse JSON keeping every number's written text: orjson unless `has_suspect_number`. A lone
    surrogate is refused either way (orjson refuses it itself; `JSONLoneSurrogate` otherwise). The
    NDJSON and streamed-Bundle readers (`loads_line`, `exact_loads`) leave it to the trial assembler,
    which names the element."""
    raw = data.encode() if isinstance(data, str) else data
    check_depth(raw)
    if has_suspect_number(raw):
        return _no_lone_surrogate(_exact(raw), raw)
    return orjson.loads(raw)
