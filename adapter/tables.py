"""The trial's SDTM-shaped tables on disk: read a folder (CSV or SAS transport), check every rule, write CSV.

`read_trial(folder)` returns a `Trial` (domain code -> `Table`, every cell the string exactly as written)
or raises `TableError` listing EVERY broken rule of the folder at once (file, row, variable, reason).
`write_trial(trial, out_dir)` writes `<domain>.csv` files that read back into the same tables; a file
written in that style (UTF-8, minimal quoting, `\\n` line ends) is reproduced byte for byte.

Row numbers in problems are 1-based DATA rows: the header does not count, so row 1 is the first record
after the header (a spreadsheet shows row N on its line N + 1 when no cell spans lines). File formats and
conventions: docs/files.md.
"""

from __future__ import annotations

import csv
import io
import math
import mmap
import operator
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, repeat
from pathlib import Path
from typing import ClassVar

from mappings.errors import ExitCode, Problem, TrialfhirError
from mappings.sdtm import (
    CONTROL_CHARACTER_RE,
    DECIMAL_RE,
    DOMAINS,
    DomainSpec,
    Table,
    Trial,
    check_dtc,
    control_character_problem,
)

__all__ = [
    "CSV_CELL_LIMIT",
    "MAX_PROBLEMS",
    "TableError",
    "XptLayout",
    "XptLayoutError",
    "cell_length_problems",
    "domain_files",
    "read_table",
    "read_trial",
    "write_table",
    "write_trial",
    "xpt_layout",
    "xpt_number_text",
]

INTEGER_RE = re.compile(r"-?(0|[1-9][0-9]*)")

CSV_CELL_LIMIT = 131_072
"""The longest CSV cell, in characters, read AND written (the csv module's default field limit): a
longer cell in a file is refused naming its row; a table holding one is refused before any file is
written, so the adapter never writes a CSV it cannot read back."""


MAX_PROBLEMS = 200
"""The problems a bad input reports: the first this many (in file, then row order) are listed and the
rest only counted, so that a huge broken file cannot fill the memory with its problems (the checks
of a table keep at most twice this many at a time)."""


class TableError(TrialfhirError):
    """The tables break one or more rules; `problems` lists them (file, row, variable, reason): every
    one, or the first `MAX_PROBLEMS` with `more` counting the rest."""

    code: ClassVar[str] = "bad_tables"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    def __init__(self, problems: list[Problem], more: int = 0) -> None:
        self.problems = list(problems[:MAX_PROBLEMS])
        self.more = more + max(0, len(problems) - MAX_PROBLEMS)
        super().__init__(self._message())

    def _message(self) -> str:
        count = len(self.problems) + self.more
        head = f"{count} problem{'s' if count != 1 else ''} in the trial tables:"
        lines = [head, *(str(p) for p in self.problems)]
        if self.more:
            lines.append(
                f"... and {self.more} more not shown (the first {len(self.problems)} are listed)"
            )
        return "\n".join(lines)


class _Capped(list[Problem]):
    """A table's problems, at most `2 * MAX_PROBLEMS` held: past that, sorted by row and cut to the
    first `MAX_PROBLEMS` (the order among equal rows kept), the rest counted in `dropped`."""

    dropped = 0

    def add(self, problem: Problem) -> None:
        self.append(problem)
        if len(self) >= 2 * MAX_PROBLEMS:
            self.sort(key=_row_of)
            self.dropped += len(self) - MAX_PROBLEMS
            del self[MAX_PROBLEMS:]


def _row_of(problem: Problem) -> int:
    return problem.row or 0


# --- finding the files ---------------------------------------------------------------------------


def domain_files(folder: Path) -> dict[str, list[Path]]:
    """The domain files in `folder`: domain code -> its `<domain>.csv` / `<domain>.xpt` files (names
    matched case-insensitively). Files that are not named after a known domain are not trial tables
    and are left alone."""
    found: dict[str, list[Path]] = {}
    names = {f"{code.lower()}{ext}": code for code in DOMAINS for ext in (".csv", ".xpt")}
    for path in sorted(folder.iterdir()):
        code = names.get(path.name.lower())
        if code is not None and path.is_file():
            found.setdefault(code, []).append(path)
    return found


# --- reading -------------------------------------------------------------------------------------


def read_trial(folder: str | Path, domains: Iterable[str] | None = None) -> Trial:
    """Read every domain file of `folder` (or only `domains`) and check the trial's rules.

    Raises:
        TableError: listing every problem found, in file order then row order: missing folder or
            files, unreadable files, missing columns, bad cells, duplicate keys, subjects unknown to
            DM, more than one STUDYID.
    """
    root = Path(folder)
    if not root.is_dir():
        raise TableError([Problem(str(root), None, None, "no such folder")])
    files = domain_files(root)
    wanted: list[str]
    problems: list[Problem] = []
    if domains is None:
        wanted = [code for code in DOMAINS if code in files]
        if not wanted:
            expected = "dm.csv, ex.csv, ... (or .xpt)"
            raise TableError([Problem(str(root), None, None, f"no domain files here ({expected})")])
    else:
        wanted = []
        for code in (d.upper() for d in domains):
            if code not in DOMAINS:
                problems.append(Problem(str(root), None, None, f"unknown domain {code!r}"))
            elif code not in files:
                problems.append(
                    Problem(str(root / f"{code.lower()}.csv"), None, None, "file not found")
                )
            elif code not in wanted:
                wanted.append(code)
    trial: Trial = {}
    numbers: dict[str, list[int] | None] = {}
    columns: dict[str, Columns | None] = {}
    dropped = [0]
    for code in wanted:
        paths = files[code]
        if len(paths) > 1:
            listed = ", ".join(p.name for p in paths)
            problems.append(
                Problem(str(root), None, None, f"{code} is given twice ({listed}): keep one file")
            )
            continue
        table, table_problems, numbers[code], columns[code] = _read_and_check(
            paths[0], code, dropped
        )
        problems.extend(table_problems)
        if table is not None:
            trial[code] = table
    problems.extend(
        _trial_problems(trial, {code: files[code][0] for code in trial}, numbers, dropped, columns)
    )
    if problems or dropped[0]:
        order = {str(files[c][0]): i for i, c in enumerate(wanted) if c in files}
        problems.sort(key=lambda p: (order.get(p.file, -1), p.row or 0))
        raise TableError(problems, dropped[0])
    return trial


def read_table(path: Path, domain: str) -> tuple[Table | None, list[Problem]]:
    """One domain file (CSV or XPT by suffix) and the problems found in it alone. The table is None
    when the file could not be read at all."""
    table, problems, _, _ = _read_and_check(path, domain)
    return table, problems


RowNumbers = list[int] | None
"""The data-row number of each row of a table as read, when rows were left out (a malformed row is
reported, not kept); None when row i is data row i + 1."""


class Columns:
    """A table's cells column by column (variable -> values in row order), from the records the CSV
    reader made (one list of cells per row, in header order): a column is built when first asked for,
    so the checks pay only for the columns they look at. `clean`: the file's bytes hold no control
    character (`CONTROL_CHARACTER_RE`), so `_check_table` need not look for them column by column."""

    __slots__ = ("_built", "_index", "_records", "clean")

    def __init__(self, header: Sequence[str], records: list[list[str]], clean: bool) -> None:
        self._index = {variable: index for index, variable in enumerate(header)}
        self._records = records
        self._built: dict[str, list[str]] = {}
        self.clean = clean

    def get(self, variable: str) -> list[str] | None:
        """The values of `variable` in row order, or None when the table has no such column."""
        values = self._built.get(variable)
        if values is None:
            index = self._index.get(variable)
            if index is None:
                return None
            values = self._built[variable] = list(map(operator.itemgetter(index), self._records))
        return values

    def keep_only(self, variables: Iterable[str]) -> None:
        """Forget the records and every column but `variables` (built now if need be): what the
        cross-table checks use, without holding every table's records beside its rows."""
        kept = {v: values for v in variables if (values := self.get(v)) is not None}
        self._built = kept
        self._index = {v: i for v, i in self._index.items() if v in kept}
        self._records = []


_CONTROL_BYTES = bytes(c for c in range(0x20) if CONTROL_CHARACTER_RE.match(chr(c)))
"""The bytes of the characters `CONTROL_CHARACTER_RE` finds: in UTF-8 each stands for itself (a byte
below 0x80 is never part of another character), so a file's bytes hold one exactly when its text
does. `bytes.translate` deleting them is several times faster than the regular expression."""


def _read_and_check(
    path: Path, domain: str, dropped: list[int] | None = None
) -> tuple[Table | None, list[Problem], RowNumbers, Columns | None]:
    """One file read and checked; the problems of the checks past `MAX_PROBLEMS` counted in
    `dropped[0]` (when given, else kept)."""
    by_column: Columns | None = None
    if path.suffix.lower() == ".xpt":
        table, problems = _read_xpt(path, domain)
        numbers: RowNumbers = None
    else:
        table, problems, numbers, by_column = _read_csv(path, domain)
    if table is not None:
        checked = _check_table(table, str(path), numbers, by_column, capped=dropped is not None)
        problems.extend(checked)
        if dropped is not None:
            dropped[0] += checked.dropped
    if by_column is not None:
        by_column.keep_only(("STUDYID", "USUBJID"))  # for `_trial_problems`
    return table, problems, numbers, by_column


def _read_csv(
    path: Path, domain: str
) -> tuple[Table | None, list[Problem], RowNumbers, Columns | None]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = f"cannot read the file: {exc.strerror or exc}"
        return None, [Problem(name, None, None, reason)], None, None
    if not raw:
        reason = "empty file (0 bytes): a domain file needs a header row"
        return None, [Problem(name, None, None, reason)], None, None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex().upper()
        record = raw.count(b"\n", 0, exc.start)  # 0 = the header line
        row = record if record > 0 else None
        reason = f"not UTF-8: byte 0x{bad} at offset {exc.start} (save the file as UTF-8)"
        return None, [Problem(name, row, None, reason)], None, None
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        reason = f"the header row cannot be read: {exc}"
        if str(exc).startswith("field larger than field limit"):
            reason = f"the header row has a cell longer than {CSV_CELL_LIMIT:,} characters"
        return (
            None,
            [Problem(name, None, None, reason)],
            None,
            None,
        )
    except StopIteration:
        return None, [Problem(name, None, None, "no header row")], None, None
    seen: set[str] = set()
    for column in header:
        if column == "":
            problems.append(Problem(name, None, None, "a header cell is empty"))
        elif column in seen:
            problems.append(Problem(name, None, column, "column appears twice in the header"))
        seen.add(column)
    if problems:
        return None, problems, None, None
    width = len(header)
    try:
        records: list[list[str] | None] = [cells for cells in reader if cells]  # fast path
    except csv.Error:
        records = _records_one_by_one(text, name, problems)
    # no problem yet: every record was read (none stands as None); all of the header's width?
    if not problems and set(map(len, records)) <= {width}:  # type: ignore[arg-type]
        # every record has the header's width (checked above): zip's strict check would double the cost
        rows: list[dict[str, str]] = list(map(dict, map(zip, repeat(header), records)))  # type: ignore[arg-type]
        clean = len(raw.translate(None, _CONTROL_BYTES)) == len(raw)
        by_column = Columns(header, records, clean)  # type: ignore[arg-type]
        return Table(domain, list(header), rows), problems, None, by_column
    rows = []
    numbers: list[int] = []
    last_short: int | None = None  # index in `problems` of a short last record
    for number, cells in enumerate(records, start=1):
        last_short = None
        if cells is None:
            continue  # reported while reading
        if len(cells) < width:
            last_short = len(problems)
            reason = f"{len(cells)} cells where the header has {width}"
            problems.append(Problem(name, number, header[len(cells)], reason))
        elif len(cells) > width:
            reason = f"{len(cells)} cells where the header has {width} (unquoted comma?)"
            problems.append(Problem(name, number, None, reason))
        else:
            rows.append(dict(zip(header, cells, strict=False)))
            numbers.append(number)
    if last_short is not None and not text.endswith(("\n", "\r")):
        cut = problems[last_short]
        reason = cut.reason + ": the last line has no newline, the file looks cut off"
        problems[last_short] = Problem(cut.file, cut.row, cut.variable, reason)
    problems.sort(key=lambda p: p.row or 0)
    return Table(domain, list(header), rows), problems, numbers, None


def _records_one_by_one(text: str, name: str, problems: list[Problem]) -> list[list[str] | None]:
    """The data records of a CSV text with quoting errors: each bad record is reported and stands as
    None, so that the records after it keep their numbers."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    next(reader)  # the header, already read
    records: list[list[str] | None] = []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return records
        except csv.Error as exc:
            reason = str(exc)
            if reason == "unexpected end of data":
                reason = "unterminated quote: the file ends inside a quoted cell (cut off?)"
            elif reason.startswith("field larger than field limit"):
                reason = (
                    f"a cell longer than {CSV_CELL_LIMIT:,} characters, the limit for CSV "
                    "cells (docs/files.md)"
                )
            else:
                reason = f"badly quoted row: {reason}"
            problems.append(Problem(name, len(records) + 1, None, reason))
            records.append(None)
            continue
        if cells:
            records.append(cells)


def xpt_number_text(value: float) -> str:
    """The text of a SAS transport numeric: "" for missing, integers without `.0`, other values by
    their shortest round-tripping repr. (A float has no trailing zeros: `74.50` in SAS is `74.5`.)"""
    if math.isnan(value):
        return ""
    if value.is_integer():
        return str(int(value))
    return repr(value)


_XPT_RECORD = 80
_XPT_LIBRARY = b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"
_XPT_MEMBER = b"HEADER RECORD*******MEMBER  HEADER RECORD!!!!!!!"
_XPT_NAMESTR = b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!"
_XPT_OBS = b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!"


@dataclass(frozen=True)
class XptLayout:
    """What a version 5 SAS transport file's headers say about its one dataset."""

    variables: list[str]
    observation_length: int
    """Bytes per observation: the end of the last variable (namestr position + length)."""
    data_start: int
    observations: int
    """Complete observations in the data section (the padding after the last one excluded)."""


class XptLayoutError(TrialfhirError, ValueError):
    """The file is not a complete, consistent version 5 SAS transport file."""

    code: ClassVar[str] = "xpt_layout"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT


def xpt_layout(data: bytes | mmap.mmap) -> XptLayout:
    """Check the record structure of a version 5 SAS transport file (80-byte records: library
    header, member header, namestr header, one 140-byte namestr per variable, observation header,
    then the observations back to back, blank-padded to a whole record) and count its observations.

    Version 5 stores no observation count: a file cut exactly at an observation boundary that is also
    a record boundary cannot be told from a shorter file. Every other cut is caught: a size that is
    not a whole number of records, a header cut off, a last observation begun but not finished.

    Raises:
        XptLayoutError: saying what is wrong (never which values: they may be patient data).
    """
    size = len(data)
    if size < 3 * _XPT_RECORD or data[: len(_XPT_LIBRARY)] != _XPT_LIBRARY:
        raise XptLayoutError("no library header: not a version 5 SAS transport file")
    if size % _XPT_RECORD:
        raise XptLayoutError(
            f"cut off: {size:,} bytes is not a whole number of {_XPT_RECORD}-byte records"
        )
    member = 3 * _XPT_RECORD
    if data[member : member + len(_XPT_MEMBER)] != _XPT_MEMBER:
        raise XptLayoutError("no member header where the transport format puts it")
    try:
        descriptor = int(data[member + 64 : member + 68])  # 160 (or 164 for VAX/VMS)
        namestr_length = int(data[member + 74 : member + 78])  # 140 (or 136 for VAX/VMS)
    except ValueError:
        raise XptLayoutError("the member header is damaged") from None
    if namestr_length not in (136, 140) or descriptor not in (160, 164):
        raise XptLayoutError("the member header is damaged")
    header = member + 2 * _XPT_RECORD + 2 * _XPT_RECORD  # member + descriptor header, 2 records
    if data[header : header + len(_XPT_NAMESTR)] != _XPT_NAMESTR:
        raise XptLayoutError("no namestr header (cut off in the headers?)")
    try:
        count = int(data[header + 54 : header + 58])
    except ValueError:
        raise XptLayoutError("the namestr header is damaged") from None
    start = header + _XPT_RECORD
    namestrs = count * namestr_length
    obs_header = start + -(-namestrs // _XPT_RECORD) * _XPT_RECORD
    if count < 1 or data[obs_header : obs_header + len(_XPT_OBS)] != _XPT_OBS:
        raise XptLayoutError(
            f"no observation header after the {count} variable descriptions (cut off in the headers?)"
        )
    variables: list[str] = []
    observation_length = 0
    for index in range(count):
        at = start + index * namestr_length
        length, position = (
            struct.unpack(">h", data[at + 4 : at + 6])[0],
            struct.unpack(">i", data[at + 84 : at + 88])[0],
        )
        name = bytes(data[at + 8 : at + 16]).decode("ascii", "replace").rstrip()
        if length <= 0 or position < 0:
            raise XptLayoutError(f"variable {index + 1} ({name}) has a damaged description")
        variables.append(name)
        observation_length = max(observation_length, position + length)
    data_start = obs_header + _XPT_RECORD
    if data.find(_XPT_MEMBER, data_start) >= 0:
        raise XptLayoutError("holds more than one dataset: give each domain its own file")
    section = size - data_start
    last = bytes(data[max(data_start, size - _XPT_RECORD) : size])
    padding = len(last) - len(last.rstrip(b" "))  # blanks after the last observation (< a record)
    observations = -(-(section - padding) // observation_length)
    if observations * observation_length > section:
        raise XptLayoutError(
            f"cut off: the data section ends inside observation {observations} "
            f"({section:,} bytes of {observation_length}-byte observations)"
        )
    return XptLayout(variables, observation_length, data_start, observations)


def _read_xpt(path: Path, domain: str) -> tuple[Table | None, list[Problem]]:
    import warnings

    import pandas as pd

    name = str(path)
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                reason = "empty file (0 bytes): not a SAS transport file"
                return None, [Problem(name, None, None, reason)]
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                layout = xpt_layout(data)
    except OSError as exc:
        return None, [Problem(name, None, None, f"cannot read the file: {exc.strerror or exc}")]
    except XptLayoutError as exc:
        return None, [Problem(name, None, None, f"not a readable SAS transport (XPT) file: {exc}")]
    if layout.observations == 0:
        return Table(domain, layout.variables, []), []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # pandas only warns about a damaged file: refuse it
            frame = pd.read_sas(path, format="xport", encoding=None)
    except Exception as exc:  # pandas raises ValueError, struct.error, EOFError ... on bad files
        return None, [Problem(name, None, None, f"not a readable SAS transport (XPT) file: {exc}")]
    if len(frame) != layout.observations or list(map(str, frame.columns)) != layout.variables:
        reason = (
            f"not a readable SAS transport (XPT) file: its headers describe "
            f"{layout.observations} observations of {len(layout.variables)} variables, "
            f"pandas read {len(frame)} of {len(frame.columns)}"
        )
        return None, [Problem(name, None, None, reason)]
    columns = [str(c) for c in frame.columns]
    problems: list[Problem] = []
    converted: list[list[str]] = []
    for column in frame.columns:
        values: list[str] = []
        for index, value in enumerate(frame[column].tolist()):
            if isinstance(value, bytes):
                try:
                    values.append(value.decode("utf-8").rstrip(" "))
                except UnicodeDecodeError:
                    problems.append(Problem(name, index + 1, str(column), "text is not UTF-8"))
                    values.append("")
            elif isinstance(value, float):
                values.append(xpt_number_text(value))
            elif value is None:
                values.append("")
            else:
                values.append(str(value))
        converted.append(values)
    rows = [dict(zip(columns, cells, strict=True)) for cells in zip(*converted, strict=True)]
    return Table(domain, columns, rows), problems


# --- checking ------------------------------------------------------------------------------------


def _check_table(
    table: Table,
    name: str,
    numbers: RowNumbers = None,
    by_column: Columns | None = None,
    capped: bool = False,
) -> _Capped:
    """The rules one table can break on its own. Column by column, each distinct text checked once
    (a trial repeats its dates, codes and numbers), rows looked up only for what is wrong. `capped`:
    keep the first `MAX_PROBLEMS` (by row) and count the rest in `dropped`."""
    spec = table.spec
    columns = set(table.columns)
    rows = table.rows
    problems = _Capped(
        Problem(name, None, variable, "required column is missing")
        for variable in spec.required
        if variable not in columns
    )
    add = problems.add if capped else problems.append

    def row_number(index: int) -> int:
        return index + 1 if numbers is None else numbers[index]

    def report(values: Sequence[str], variable: str, reasons: dict[str, str]) -> None:
        for index, text in enumerate(values):
            reason = reasons.get(text)
            if reason is not None:
                add(Problem(name, row_number(index), variable, reason))

    column_cache: dict[str, Sequence[str]] = {}
    clean = by_column is not None and by_column.clean

    def column(variable: str) -> Sequence[str]:
        values = column_cache.get(variable)
        if values is None:
            values = by_column.get(variable) if by_column is not None else None
            if values is None:
                values = list(map(operator.itemgetter(variable), rows))
            column_cache[variable] = values
        return values

    non_empty = [v for v in ("STUDYID", "DOMAIN", "USUBJID", spec.seq) if v and v in columns]
    if not spec.subject_level:
        non_empty = [v for v in non_empty if v != "USUBJID"]
    for variable in table.columns:
        checks_empty = variable in non_empty
        checked = variable == "DOMAIN" or variable in spec.numeric or variable in spec.dates
        if not (checks_empty or checked):
            continue
        values = column(variable)
        reasons: dict[str, str] = {}
        for text in set(values):
            if text == "":
                if checks_empty:
                    reasons[text] = "missing (required on every row)"
                continue
            reason = _cell_problem(spec, variable, text)
            if reason is not None:
                reasons[text] = reason
        if reasons:
            report(values, variable, reasons)

    if not clean:
        for variable in table.columns:
            values = column(variable)
            if CONTROL_CHARACTER_RE.search("\t".join(values)) is None:
                continue
            for index, text in enumerate(values):
                reason = control_character_problem(text)
                if reason is not None:
                    add(Problem(name, row_number(index), variable, reason))

    key_column = _key_column(spec)
    if spec.seq is not None and spec.seq in columns and key_column in columns:
        keys = list(zip(column(key_column), column(spec.seq), strict=True))
        if len(set(keys)) != len(keys):
            first_row: dict[tuple[str, str], int] = {}
            for index, key in enumerate(keys):
                if key[1] == "" or INTEGER_RE.fullmatch(key[1]) is None:
                    continue
                first = first_row.setdefault(key, index)
                if first != index:
                    reason = (
                        f"{spec.seq} {key[1]} repeats row {row_number(first)} (same {key_column})"
                    )
                    add(Problem(name, row_number(index), spec.seq, reason))
    if spec.code == "DM" and "USUBJID" in columns:
        subjects = column("USUBJID")
        if len(set(subjects)) != len(subjects):
            first_dm: dict[str, int] = {}
            for index, usubjid in enumerate(subjects):
                if usubjid == "":
                    continue
                first = first_dm.setdefault(usubjid, index)
                if first != index:
                    reason = f"subject already in DM on row {row_number(first)}"
                    add(Problem(name, row_number(index), "USUBJID", reason))
    problems.sort(key=_row_of)
    if capped and len(problems) > MAX_PROBLEMS:
        problems.dropped += len(problems) - MAX_PROBLEMS
        del problems[MAX_PROBLEMS:]
    return problems


def _cell_problem(spec: DomainSpec, variable: str, text: str) -> str | None:
    """Why a non-empty cell of `variable` breaks the domain's rules, or None."""
    if variable == "DOMAIN":
        return None if text == spec.code else f"{text!r} in the {spec.code} file"
    if variable in spec.dates:
        return check_dtc(text)
    if variable in spec.integer:
        if INTEGER_RE.fullmatch(text) is None:
            return f"{text!r} is not an integer"
    elif variable in spec.numeric and DECIMAL_RE.fullmatch(text) is None:
        return f"{text!r} is not a number"
    if variable in spec.non_negative and Decimal(text) < 0:
        return f"{text} is negative"
    return None


def _key_column(spec: DomainSpec) -> str:
    """What --SEQ is unique within: the subject, or for TS the parameter (TSSEQ numbers the values
    of one TSPARMCD)."""
    return "USUBJID" if spec.subject_level else "TSPARMCD"


def _trial_problems(
    trial: Trial,
    paths: dict[str, Path],
    numbers: dict[str, RowNumbers],
    dropped: list[int] | None = None,
    columns: dict[str, Columns | None] | None = None,
) -> list[Problem]:
    """The rules that span tables: one STUDYID, every subject known to DM (per table, the first
    `MAX_PROBLEMS` by row kept and the rest counted in `dropped[0]`, when given). `columns`: the
    tables' cells by column where the reader has them (else taken from the rows)."""
    problems: list[Problem] = []

    def row_number(code: str, index: int) -> int:
        found = numbers.get(code)
        return index + 1 if found is None else found[index]

    def column(code: str, variable: str) -> Sequence[str]:
        by_column = columns.get(code) if columns is not None else None
        values = by_column.get(variable) if by_column is not None else None
        if values is None:
            values = list(map(operator.itemgetter(variable), trial[code].rows))
        return values

    study: tuple[str, str, int] | None = None  # value, file name, row
    for code, table in trial.items():
        if "STUDYID" not in table.columns:
            continue
        values = column(code, "STUDYID")
        distinct = set(values) - {""}
        if study is None and values:
            first = next((i for i, v in enumerate(values) if v), None)
            if first is not None:
                study = (values[first], paths[code].name, row_number(code, first))
        if study is None or distinct <= {study[0]}:
            continue
        for other in sorted(distinct - {study[0]}, key=values.index):
            index = values.index(other)
            reason = (
                f"{other!r} differs from {study[0]!r} ({study[1]} row {study[2]}): "
                "one trial per folder"
            )
            problems.append(Problem(str(paths[code]), row_number(code, index), "STUDYID", reason))
    dm = trial.get("DM")
    if dm is not None and "USUBJID" in dm.columns:
        subjects = set(column("DM", "USUBJID"))
        for code, table in trial.items():
            if code == "DM" or not table.spec.subject_level or "USUBJID" not in table.columns:
                continue
            values = column(code, "USUBJID")
            unknown = set(values) - subjects - {""}
            if not unknown:
                continue
            name = str(paths[code])
            found = _Capped()
            add = found.add if dropped is not None else found.append
            for index, usubjid in enumerate(values):
                if usubjid in unknown:
                    add(Problem(name, row_number(code, index), "USUBJID", "subject is not in DM"))
            found.sort(key=_row_of)
            if dropped is not None and len(found) > MAX_PROBLEMS:
                found.dropped += len(found) - MAX_PROBLEMS
                del found[MAX_PROBLEMS:]
            if dropped is not None:
                dropped[0] += found.dropped
            problems.extend(found)
    return problems


# --- writing -------------------------------------------------------------------------------------


def cell_length_problems(table: Table, path: str | Path) -> list[Problem]:
    """The cells of `table` longer than `CSV_CELL_LIMIT` (a CSV holding them could not be read back),
    each named by the data row and variable it would have in the file at `path`; a column name
    longer than that (a header cell) is named by its position (the name is the problem)."""
    rows = table.rows
    cells = chain.from_iterable(map(dict.values, rows))
    longest = max(map(len, cells), default=0)
    if longest <= CSV_CELL_LIMIT and max(map(len, table.columns), default=0) <= CSV_CELL_LIMIT:
        return []
    reason = (
        f"longer than {CSV_CELL_LIMIT:,} characters, the limit for CSV cells "
        "(written, it could not be read back)"
    )
    header = [
        Problem(str(path), None, None, f"the header row, column {number}: a name {reason}")
        for number, name in enumerate(table.columns, start=1)
        if len(name) > CSV_CELL_LIMIT
    ]
    if longest <= CSV_CELL_LIMIT:
        return header
    return header + [
        Problem(str(path), number, variable, reason)
        for number, row in enumerate(rows, start=1)
        for variable, text in row.items()
        if len(text) > CSV_CELL_LIMIT
    ]


def write_table(table: Table, path: str | Path) -> None:
    """Write one table as CSV: UTF-8 without BOM, `\\n` line ends, quotes only where needed, the
    columns in `table.columns` order (a missing cell is written empty).

    Raises:
        TableError: a cell is longer than `CSV_CELL_LIMIT` (nothing is written)."""
    problems = cell_length_problems(table, path)
    if problems:
        raise TableError(problems)
    _write_table(table, path)


WRITE_CHUNK = 10_000
"""Rows turned into CSV text at a time (the text of a whole big table is never held at once)."""


def _write_table(table: Table, path: str | Path) -> None:
    columns = table.columns
    rows = table.rows
    width = len(columns)
    fetch = operator.itemgetter(*columns) if width > 1 else None
    get = dict.get
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        header = _plain_lines(width, [tuple(columns)])
        if header is None:
            writer.writerow(columns)
        else:
            handle.write(header)
        for start in range(0, len(rows), WRITE_CHUNK):
            chunk = rows[start : start + WRITE_CHUNK]
            lines: list[tuple[str, ...]] | None = None
            if fetch is not None:
                try:  # rows read or rebuilt by us hold every column: one C-level lookup per row
                    lines = list(map(fetch, chunk))
                except KeyError:
                    lines = None
            if lines is None:
                lines = [tuple(get(row, c, "") for c in columns) for row in chunk]
            text = _plain_lines(width, lines)
            if text is None:
                writer.writerows(lines)
            else:
                handle.write(text)


def _plain_lines(width: int, lines: list[tuple[str, ...]]) -> str | None:
    """The CSV text of `lines` (rows of `width` cells) joined in C, when no cell needs the csv module:
    every cell a string without a comma, quote, CR or LF (then QUOTE_MINIMAL quotes nothing; the one
    exception, a row of a single empty cell, is left out with tables of one column). None otherwise:
    the caller writes those rows with `csv.writer`, which gives the same bytes (a CSV row's text does
    not depend on the other rows, so chunks of rows may go either way).

    A comma or line end inside a cell is found by counting: the joined text holds exactly one comma
    per cell boundary and one LF per row boundary when no cell holds one."""
    if width < 2:
        return None
    try:
        text = "\n".join(map(",".join, lines))
    except TypeError:  # a cell that is not a string: the csv module's rendering
        return None
    if (
        text.count(",") != len(lines) * (width - 1)
        or text.count("\n") != len(lines) - 1
        or '"' in text
        or "\r" in text
    ):
        return None
    return text + "\n" if lines else ""


def write_trial(trial: Trial, out_dir: str | Path) -> list[Path]:
    """Write every table of `trial` as `<domain>.csv` (lower case) into `out_dir` (created if needed);
    returns the paths written.

    Raises:
        TableError: listing every cell longer than `CSV_CELL_LIMIT`, before any file is written."""
    folder = Path(out_dir)
    paths = {code: folder / f"{code.lower()}.csv" for code in trial}
    problems = [p for code, t in trial.items() for p in cell_length_problems(t, paths[code])]
    if problems:
        raise TableError(problems)
    folder.mkdir(parents=True, exist_ok=True)
    for code, table in trial.items():
        _write_table(table, paths[code])
    return list(paths.values())
