"""What the fuzz suite shares: its hypothesis settings, the valid inputs it starts from, the mutations
it applies to them, and the one definition of "a documented error".

Every case is a VALID input (the bundled cohort, tests/data/sdtm_small, their FHIR conversion, recorded
HAPI answers) changed by a few drawn mutations, so that most cases get past the parsers and into the
mappings. A mutation is a small frozen dataclass whose `repr` says what was done (never the bytes),
so a failing example reads as a recipe: `CellEdit(file='dm.csv', row=2, column=4, value='year 0000')`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, example, settings
from hypothesis import strategies as st

from adapter.tables import read_trial
from mappings.sdtm import Trial

ROOT = Path(__file__).resolve().parents[2]
DALAKAS = next(
    folder
    for folder in (ROOT / "adapter" / "studies" / "dalakas1993", ROOT / "fixtures" / "dalakas1993")
    if folder.is_dir()
)
"""The bundled cohort: in the package once issue 9's move lands, in fixtures/ before it."""
SMALL = ROOT / "tests" / "data" / "sdtm_small"
RECORDED = ROOT / "fixtures" / "recorded"
CLIENT_RECORDED = ROOT / "tests" / "client" / "recorded"

JSON = dict[str, Any]

# --- settings ------------------------------------------------------------------------------------------

SCALE = float(os.environ.get("TRIALFHIR_FUZZ_SCALE", "1"))
"""Multiplies every test's example count: `TRIALFHIR_FUZZ_SCALE=20` runs twenty times as many."""

SHRINK = os.environ.get("CI", "") in ("", "0", "false")
"""Failing examples are shrunk to a minimal one locally; not in CI (`CI` set), where shrinking several
failing tests could take minutes: the failing example is printed unshrunk and, the examples being
derandomized, the same command run locally gives the shrunk one. `TRIALFHIR_FUZZ_SHRINK=0` turns it
off locally too (to time the suite as CI runs it)."""

RANDOM = os.environ.get("TRIALFHIR_FUZZ_RANDOM", "") not in ("", "0")
"""`TRIALFHIR_FUZZ_RANDOM=1` draws new examples on every run (explore locally; with pytest's
`--hypothesis-seed=N` to repeat one run)."""


def fuzz_settings(examples: int) -> settings:
    """The suite's settings for a test of `examples` cases (times TRIALFHIR_FUZZ_SCALE).

    `derandomize=True` (unless TRIALFHIR_FUZZ_RANDOM is set) and no example database: CI draws the same
    examples on every run and on every machine, so a red CI run is red again locally with the same
    command, and a green one does not turn red because an earlier run left a failure in a database.
    Exploring new examples is opt-in (TRIALFHIR_FUZZ_RANDOM=1, more with TRIALFHIR_FUZZ_SCALE).
    Bounded by example counts only: `deadline=None` (a shared 2-core machine has slow moments), and
    no timed assertion anywhere. `print_blob=True` prints a `@reproduce_failure` line with each
    failure besides the falsifying example itself.
    """
    shrink = SHRINK and os.environ.get("TRIALFHIR_FUZZ_SHRINK", "1") != "0"
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        print_blob=True,
        phases=tuple(Phase) if shrink else tuple(p for p in Phase if p is not Phase.shrink),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,  # httpx_mock: reset and re-armed in every example
        ],
    )


def known(*cases: dict[str, Any]) -> Callable[[Any], Any]:
    """Explicit examples (`hypothesis.example`) run before any drawn case, on every run: the bugs the
    suite has found, kept as regression cases once fixed. Each is a dict of the test's arguments."""

    def decorate(test: Any) -> Any:
        for arguments in reversed(cases):
            test = example(**arguments)(test)
        return test

    return decorate


# --- what counts as a documented error -----------------------------------------------------------------


def documented(exc: BaseException) -> bool:
    """True when `exc` is an error class the command line maps to a documented exit code (not 1, the
    code of a bug). One definition for the whole suite: the CLI's own table, so a class added there
    (with its row in docs/cli.md) is accepted here without a second list to keep in step."""
    from adapter.cli._common import EXIT_UNEXPECTED, exit_code_for

    return exit_code_for(exc) != EXIT_UNEXPECTED


def undocumented(exc: BaseException) -> str:
    """The assertion message for an error outside the documented classes."""
    return f"not a documented error class: {type(exc).__module__}.{type(exc).__qualname__}: {exc!r:.300}"


DOCUMENTED_EXIT_CODES = frozenset({0, *range(2, 13)})
"""docs/cli.md: 0 done, 2 usage, 3 bad input, 4-9 the server's classes, 10 the server's answer refused,
11 the output folder refused, 12 nothing came out. 1 is "a bug"."""


# --- the valid inputs ------------------------------------------------------------------------------------


@cache
def valid_trial(folder: Path) -> Trial:
    return read_trial(folder)


@cache
def csv_files(folder: Path) -> dict[str, bytes]:
    """The domain CSVs of a valid trial folder: name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))}


@cache
def valid_resources(folder: Path) -> tuple[bytes, ...]:
    """The FHIR conversion of a valid trial, as the NDJSON lines `write_ndjson` writes (one per
    resource, in the mappings' order)."""
    from adapter.fhir_json import dumps
    from mappings.trial import trial_to_fhir

    return tuple(dumps(r) for r in trial_to_fhir(valid_trial(folder)))


def parse(line: bytes) -> Any:
    from adapter.fhir_json import exact_loads

    return exact_loads(line)


# --- JSON text, with the values JSON parsers disagree on -------------------------------------------------


class Recipe:
    """A mutation whose `repr` is the recipe: hypothesis prints failing examples with its own pretty
    printer, which would show every field (a 140,000-character value ...); this makes it use `repr`,
    where the dataclasses leave the bulky fields out."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(frozen=True)
class Raw(Recipe):
    """JSON text put in as is: `NaN`, `1e400`, a 100,000-deep array ... (what no encoder writes)."""

    text: str

    def __repr__(self) -> str:
        if len(self.text) <= 40:
            return f"Raw({self.text!r})"
        return f"Raw({self.text[:12]!r}...{len(self.text)} characters)"


def to_json(value: Any) -> str:
    """JSON text of `value` (Decimals as written, `Raw` as given, NaN as `NaN`, strings ASCII-escaped
    so that lone surrogates survive). Iterative on purpose: the suite's own encoder must not be the
    thing that runs out of stack."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (_Text, Raw)):
            out.append(item.text)
        elif item is None:
            out.append("null")
        elif isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, int | Decimal):
            out.append(str(item))
        elif isinstance(item, float):
            if math.isnan(item):
                out.append("NaN")
            elif math.isinf(item):
                out.append("Infinity" if item > 0 else "-Infinity")
            else:
                out.append(repr(item))
        elif isinstance(item, str):
            out.append(json.dumps(item, ensure_ascii=True))
        elif isinstance(item, dict):
            parts: list[Any] = [_Text("{")]
            for i, (key, member) in enumerate(item.items()):
                if i:
                    parts.append(_Text(","))
                parts.extend([_Text(json.dumps(str(key), ensure_ascii=True) + ":"), member])
            parts.append(_Text("}"))
            stack.extend(reversed(parts))
        elif isinstance(item, list | tuple):
            parts = [_Text("[")]
            for i, member in enumerate(item):
                if i:
                    parts.append(_Text(","))
                parts.append(member)
            parts.append(_Text("]"))
            stack.extend(reversed(parts))
        else:
            raise TypeError(f"no JSON for {type(item).__name__}")
    return "".join(out)


@dataclass(frozen=True)
class _Text:
    text: str


def deep_array(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


def deep_object(depth: int) -> Raw:
    return Raw('{"a":' * depth + "{}" + "}" * depth)


ODD_VALUES: tuple[tuple[str, Any], ...] = (
    ("null", None),
    ("true", True),
    ("0", 0),
    ("-1", -1),
    ("1.5", 1.5),
    ("-0", Raw("-0")),
    ("74.50", Raw("74.50")),
    ("huge int", Raw("1" + "0" * 400)),
    ("1e400", Raw("1e400")),
    ("NaN", Raw("NaN")),
    ("Infinity", Raw("Infinity")),
    ("-Infinity", Raw("-Infinity")),
    ("empty string", ""),
    ("string", "x"),
    ("number as string", "74.50"),
    ("year 0000 date", "0000-01-01"),
    ("year 0000 dateTime", "0000-06-15T10:00:00Z"),
    ("impossible date", "1990-02-30"),
    ("NUL", "a\x00b"),
    ("control character", "a\x07b"),
    ("lone surrogate", "\ud800"),
    ("bidi and emoji", "\u202e\U0001f600\u0301"),
    ("Arabic-Indic digits", "\u0663\u0664"),
    ("long string", "x" * 140_000),
    ("empty object", {}),
    ("object", {"value": "x"}),
    ("empty list", []),
    ("list of an object", [{"system": "x", "value": "y"}]),
    ("list of a string", ["x"]),
    ("deep array 50", deep_array(50)),
    ("deep array 2000", deep_array(2000)),
    ("deep array 100000", deep_array(100_000)),
    ("deep object 100000", deep_object(100_000)),
)
"""Type swaps (string <-> number <-> object <-> list <-> null), numbers JSON parsers disagree on,
strings FHIR does not allow, and nesting that exhausts a recursive parser."""


# --- JSON edits ---------------------------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class JsonEdit(Recipe):
    """One change at `path` inside a JSON document: `replace` by an odd value (`label` names it),
    `delete` the member, `wrap` a value in a list, `unwrap` a list into its first item."""

    path: Path_
    op: str
    label: str = ""
    value: Any = field(default=None, repr=False, compare=False)

    def apply(self, document: Any) -> Any:
        if not self.path:
            return self.value if self.op == "replace" else document
        parent = document
        for step in self.path[:-1]:
            parent = parent[step]
        last = self.path[-1]
        if self.op == "replace":
            parent[last] = self.value
        elif self.op == "delete":
            del parent[last]
        elif self.op == "wrap":
            parent[last] = [parent[last]]
        elif self.op == "unwrap" and isinstance(parent[last], list) and parent[last]:
            parent[last] = parent[last][0]
        return document


def paths(document: Any, *, into_resources: bool = True) -> list[Path_]:
    """Every member and item position in `document` (iteratively, root excluded). With
    `into_resources=False` the inside of a resource other than a Bundle is left out (a Bundle's own
    structure, at any depth of nesting, and its resources as wholes)."""
    found: list[Path_] = []
    stack: list[tuple[Path_, Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        children: Iterable[tuple[str | int, Any]]
        if (
            path
            and not into_resources
            and isinstance(value, dict)
            and value.get("resourceType") not in (None, "Bundle")
        ):
            continue
        if isinstance(value, dict):
            children = value.items()
        elif isinstance(value, list):
            children = enumerate(value)
        else:
            continue
        for key, child in children:
            found.append((*path, key))
            stack.append(((*path, key), child))
    found.sort(key=lambda p: [str(s) for s in p])
    return found


@st.composite
def json_edits(draw: st.DrawFn, document: Any, *, into_resources: bool = True) -> JsonEdit:
    """One edit somewhere in `document`: mostly a value replaced by an odd one."""
    places = paths(document, into_resources=into_resources)
    if not places:
        return JsonEdit((), "none")
    path = draw(st.sampled_from(places))
    op = draw(st.sampled_from(["replace"] * 6 + ["delete", "wrap", "unwrap"]))
    if op == "delete" and not isinstance(path[-1], str):
        op = "replace"
    if op != "replace":
        return JsonEdit(path, op)
    label, value = draw(st.sampled_from(ODD_VALUES))
    return JsonEdit(path, op, label, value)


def edited(document: Any, edits: Iterable[JsonEdit]) -> Any:
    """A deep copy of `document` with `edits` applied in turn (each path is looked up again after the
    edits before it; an edit whose path is gone is skipped)."""
    copy = _deep_copy(document)
    for edit in edits:
        try:
            copy = edit.apply(copy)
        except (KeyError, IndexError, TypeError):
            continue
    return copy


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


# --- byte and line edits ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ByteEdit(Recipe):
    """`flip` the byte at `at` (xor `mask`), `insert` a `piece` before it, or `truncate` there."""

    op: str
    at: int
    mask: int = 0
    piece: bytes = b""

    def apply(self, data: bytes) -> bytes:
        at = min(self.at, len(data))
        if self.op == "flip" and at < len(data):
            return data[:at] + bytes([data[at] ^ self.mask]) + data[at + 1 :]
        if self.op == "insert":
            return data[:at] + self.piece + data[at:]
        if self.op == "truncate":
            return data[:at]
        return data


PIECES = (b"\x00", b"\xff", b"\xc3", b'"', b",", b"\r", b"\n", b"\r\n", b"\xef\xbb\xbf", b"{", b"]")


@st.composite
def byte_edits(draw: st.DrawFn, size: int) -> ByteEdit:
    at = draw(st.integers(0, max(0, size - 1)))
    op = draw(st.sampled_from(["flip", "insert", "truncate"]))
    if op == "flip":
        return ByteEdit("flip", at, mask=draw(st.sampled_from([0x01, 0x20, 0x80, 0xFF])))
    if op == "insert":
        return ByteEdit("insert", at, piece=draw(st.sampled_from(PIECES)))
    return ByteEdit("truncate", at)


@dataclass(frozen=True)
class LineEdit(Recipe):
    """`duplicate`, `remove` or `blank` line `line` (0 = the first), or make every line end `crlf`."""

    op: str
    line: int = 0

    def apply(self, data: bytes) -> bytes:
        if self.op == "crlf":
            return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        lines = data.splitlines(keepends=True)
        if not lines:
            return data
        at = self.line % len(lines)
        if self.op == "duplicate":
            lines.insert(at, lines[at])
        elif self.op == "remove":
            del lines[at]
        elif self.op == "blank":
            lines.insert(at, b"\n")
        return b"".join(lines)


@st.composite
def line_edits(draw: st.DrawFn) -> LineEdit:
    op = draw(st.sampled_from(["duplicate", "remove", "blank", "crlf"]))
    return LineEdit(op, draw(st.integers(0, 400)))


# --- CSV edits ------------------------------------------------------------------------------------------------

CELL_VALUES: tuple[tuple[str, str], ...] = (
    ("empty", ""),
    ("year 0000", "0000-01-01"),
    ("year 0000 datetime", "0000-01-01T10:00"),
    ("impossible date", "1990-02-30"),
    ("NUL", "a\x00b"),
    ("control character", "a\x07b"),
    ("bidi and emoji", "\u202e\U0001f600\u0301"),
    ("Arabic-Indic digits", "\u0663\u0664"),
    ("fullwidth digit", "\uff17"),
    ("NaN", "NaN"),
    ("Infinity", "Infinity"),
    ("exponent", "1e5"),
    ("-0", "-0"),
    ("trailing zeros", "74.500"),
    ("huge number", "9" * 400),
    ("leading blank", " 74.5"),
    ("formula", "=1+1"),
    ("quote and comma", 'a,"b"'),
    ("line break", "a\nb"),
    ("carriage return", "a\rb"),
    ("over the csv field limit", "x" * 140_000),
    ("negative", "-5"),
    ("letters", "n/a"),
)


@dataclass(frozen=True)
class CsvEdit(Recipe):
    """A change made through the CSV structure of one file: `cell` (row, column) set to the value
    `label` names, `duplicate-column` / `remove-column` / `rename-column` at `column`, or a `ragged`
    row (one cell short)."""

    op: str
    row: int = 0
    column: int = 0
    label: str = ""
    value: str = field(default="", repr=False, compare=False)

    def apply(self, data: bytes) -> bytes:
        try:
            rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
        except (UnicodeDecodeError, csv.Error):
            return data
        if not rows or not rows[0]:
            return data
        width = len(rows[0])
        column = self.column % width
        if self.op == "cell" and len(rows) > 1:
            row = 1 + self.row % (len(rows) - 1)
            if column < len(rows[row]):
                rows[row][column] = self.value
        elif self.op == "duplicate-column":
            rows = [r[: column + 1] + r[column : column + 1] + r[column + 1 :] for r in rows]
        elif self.op == "remove-column":
            rows = [r[:column] + r[column + 1 :] for r in rows]
        elif self.op == "rename-column":
            rows[0][column] = rows[0][column].lower() + "_X"
        elif self.op == "ragged" and len(rows) > 1:
            row = 1 + self.row % (len(rows) - 1)
            rows[row] = rows[row][:-1]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue().encode("utf-8")


@st.composite
def cell_edits(draw: st.DrawFn) -> CsvEdit:
    row, column = draw(st.integers(0, 300)), draw(st.integers(0, 40))
    label, value = draw(st.sampled_from(CELL_VALUES))
    return CsvEdit("cell", row, column, label, value)


@st.composite
def column_edits(draw: st.DrawFn) -> CsvEdit:
    op = draw(st.sampled_from(["duplicate-column", "remove-column", "rename-column", "ragged"]))
    return CsvEdit(op, draw(st.integers(0, 300)), draw(st.integers(0, 40)))


Edit = ByteEdit | LineEdit | CsvEdit


def file_edits(size: int) -> st.SearchStrategy[Edit]:
    """Any edit of a CSV file: a cell most often (so that most cases read and reach the mappings),
    then columns, lines and raw bytes."""
    cells = cell_edits()
    return st.one_of(cells, cells, cells, cells, column_edits(), line_edits(), byte_edits(size))


def apply_all(data: bytes, edits: Iterable[ByteEdit | LineEdit | CsvEdit]) -> bytes:
    for edit in edits:
        data = edit.apply(data)
    return data


# --- comparing tables -----------------------------------------------------------------------------------------


def cells(trial: Trial) -> dict[str, tuple[list[str], list[list[str]]]]:
    """A trial as plain data: domain -> (columns, rows of cells in column order)."""
    return {
        code: (list(t.columns), [[row.get(c, "") for c in t.columns] for row in t.rows])
        for code, t in trial.items()
    }


DATE_ELEMENTS = frozenset(
    {"start", "end", "date", "birthDate", "issued", "recorded", "authoredOn", "lastUpdated"}
)
"""Element names whose type is date, dateTime or instant (besides `...Date`, `...DateTime`,
`...Instant`: `valueDateTime`, `effectiveDateTime`, `collectedDateTime`, ...)."""


def bad_primitives(resources: Iterable[JSON]) -> Iterator[str]:
    """What FHIR R4 forbids in a primitive, found anywhere in `resources`: a NUL in a string (other
    characters below 32 but tab, CR and LF are a SHOULD NOT in R4, not checked), a date/dateTime
    with year 0000, a number that is not finite. Positions only (resource type and element path),
    never the value."""
    date_like = re.compile(r"-?[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T.*)?)?)?")

    for resource in resources:
        stack: list[tuple[str, Any]] = [(str(resource.get("resourceType")), resource)]
        while stack:
            where, value = stack.pop()
            if isinstance(value, dict):
                stack.extend((f"{where}.{k}", v) for k, v in value.items())
            elif isinstance(value, list):
                stack.extend((where, v) for v in value)
            elif isinstance(value, str):
                if "\x00" in value:
                    yield f"{where}: a NUL in a string"
                key = where.rsplit(".", 1)[-1]
                is_date = key in DATE_ELEMENTS or key.endswith(("Date", "DateTime", "Instant"))
                if is_date and date_like.fullmatch(value) and value.startswith("0000"):
                    yield f"{where}: year 0000"
            elif isinstance(value, float | Decimal) and not math.isfinite(value):
                yield f"{where}: a number that is not finite"


def run_guarded(action: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """`action()`'s result, or the exception it raised (any, RecursionError included)."""
    try:
        return action(), None
    except Exception as exc:
        return None, exc
