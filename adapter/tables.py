"""The trial's SDTM-shaped tables on disk: read a folder (CSV or SAS transport), check every rule, write CSV.

`read_trial(folder)` returns a `Trial` (domain code -> `Table`, every cell the string exactly as written)
or raises `TableError` listing EVERY broken rule of the folder at once (file, row, variable, reason).
`write_trial(trial, out_dir)` writes `<domain>.csv` files that read back into the same tables; a file
written in that style (UTF-8, minimal quoting, `\\n` line ends) is reproduced byte for byte.
`trial_frames(trial)` gives the analysis one string DataFrame per domain.

Row numbers in problems are 1-based DATA rows: the header does not count, so row 1 is the first record
after the header (a spreadsheet shows row N on its line N + 1 when no cell spans lines). File formats and
conventions: docs/files.md.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from mappings.sdtm import DECIMAL_RE, DOMAINS, DomainSpec, Problem, Table, Trial, check_dtc

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TableError",
    "domain_files",
    "read_table",
    "read_trial",
    "trial_frames",
    "write_table",
    "write_trial",
    "xpt_number_text",
]

INTEGER_RE = re.compile(r"-?(0|[1-9][0-9]*)")


class TableError(Exception):
    """The tables break one or more rules; `problems` lists every one (file, row, variable, reason)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(self._message())

    def _message(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the trial tables:"
        return "\n".join([head, *(str(p) for p in self.problems)])


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
    for code in wanted:
        paths = files[code]
        if len(paths) > 1:
            listed = ", ".join(p.name for p in paths)
            problems.append(
                Problem(str(root), None, None, f"{code} is given twice ({listed}): keep one file")
            )
            continue
        table, table_problems = read_table(paths[0], code)
        problems.extend(table_problems)
        if table is not None:
            trial[code] = table
    problems.extend(_trial_problems(trial, {code: files[code][0] for code in trial}))
    if problems:
        order = {str(files[c][0]): i for i, c in enumerate(wanted) if c in files}
        problems.sort(key=lambda p: (order.get(p.file, -1), p.row or 0))
        raise TableError(problems)
    return trial


def read_table(path: Path, domain: str) -> tuple[Table | None, list[Problem]]:
    """One domain file (CSV or XPT by suffix) and the problems found in it alone. The table is None
    when the file could not be read at all."""
    if path.suffix.lower() == ".xpt":
        table, problems = _read_xpt(path, domain)
    else:
        table, problems = _read_csv(path, domain)
    if table is not None:
        problems.extend(_check_table(table, str(path)))
    return table, problems


def _read_csv(path: Path, domain: str) -> tuple[Table | None, list[Problem]]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(name, None, None, f"cannot read the file: {exc.strerror or exc}")]
    if not raw:
        return None, [
            Problem(name, None, None, "empty file (0 bytes): a domain file needs a header row")
        ]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex().upper()
        record = raw.count(b"\n", 0, exc.start)  # 0 = the header line
        row = record if record > 0 else None
        return None, [
            Problem(
                name,
                row,
                None,
                f"not UTF-8: byte 0x{bad} at offset {exc.start} (save the file as UTF-8)",
            )
        ]
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        return None, [Problem(name, None, None, f"the header row cannot be read: {exc}")]
    except StopIteration:
        return None, [Problem(name, None, None, "no header row")]
    seen: set[str] = set()
    for column in header:
        if column == "":
            problems.append(Problem(name, None, None, "a header cell is empty"))
        elif column in seen:
            problems.append(Problem(name, None, column, "column appears twice in the header"))
        seen.add(column)
    if problems:
        return None, problems
    width = len(header)
    rows: list[dict[str, str]] = []
    record = 0
    last_short: int | None = None  # index in `problems` of a short last record
    while True:
        record += 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            reason = str(exc)
            if reason == "unexpected end of data":
                reason = "unterminated quote: the file ends inside a quoted cell (cut off?)"
            else:
                reason = f"badly quoted row: {reason}"
            problems.append(Problem(name, record, None, reason))
            last_short = None
            continue
        if not cells:
            record -= 1  # a blank line is not a record
            continue
        last_short = None
        if len(cells) < width:
            last_short = len(problems)
            problems.append(
                Problem(
                    name,
                    record,
                    header[len(cells)],
                    f"{len(cells)} cells where the header has {width}",
                )
            )
        elif len(cells) > width:
            problems.append(
                Problem(
                    name,
                    record,
                    None,
                    f"{len(cells)} cells where the header has {width} (unquoted comma?)",
                )
            )
        else:
            rows.append(dict(zip(header, cells, strict=True)))
    if last_short is not None and not text.endswith(("\n", "\r")):
        cut = problems[last_short]
        problems[last_short] = Problem(
            cut.file,
            cut.row,
            cut.variable,
            cut.reason + ": the last line has no newline, the file looks cut off",
        )
    return Table(domain, list(header), rows), problems


def xpt_number_text(value: float) -> str:
    """The text of a SAS transport numeric: "" for missing, integers without `.0`, other values by
    their shortest round-tripping repr. (A float has no trailing zeros: `74.50` in SAS is `74.5`.)"""
    if math.isnan(value):
        return ""
    if value.is_integer():
        return str(int(value))
    return repr(value)


def _read_xpt(path: Path, domain: str) -> tuple[Table | None, list[Problem]]:
    import pandas as pd

    name = str(path)
    if path.stat().st_size == 0:
        return None, [Problem(name, None, None, "empty file (0 bytes): not a SAS transport file")]
    try:
        frame = pd.read_sas(path, format="xport", encoding=None)
    except Exception as exc:  # pandas raises ValueError, struct.error, EOFError ... on bad files
        return None, [Problem(name, None, None, f"not a readable SAS transport (XPT) file: {exc}")]
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


def _check_table(table: Table, name: str) -> list[Problem]:
    """The rules one table can break on its own."""
    spec = table.spec
    columns = set(table.columns)
    problems = [
        Problem(name, None, variable, "required column is missing")
        for variable in spec.required
        if variable not in columns
    ]
    non_empty = [v for v in ("STUDYID", "DOMAIN", "USUBJID", spec.seq) if v and v in columns]
    if not spec.subject_level:
        non_empty = [v for v in non_empty if v != "USUBJID"]
    numeric = [v for v in table.columns if v in spec.numeric]
    dates = [v for v in table.columns if v in spec.dates]
    key_column = _key_column(spec)
    keys: dict[tuple[str, str], int] = {}
    date_reasons: dict[str, str] = {}  # date text -> reason ("" = valid): each text checked once
    for number, row in enumerate(table.rows, start=1):
        for variable in non_empty:
            if row[variable] == "":
                problems.append(Problem(name, number, variable, "missing (required on every row)"))
        domain_cell = row.get("DOMAIN")
        if domain_cell and domain_cell != spec.code:
            problems.append(
                Problem(name, number, "DOMAIN", f"{domain_cell!r} in the {spec.code} file")
            )
        for variable in numeric:
            text = row[variable]
            if text == "":
                continue
            problems.extend(_number_problem(spec, name, number, variable, text))
        for variable in dates:
            text = row[variable]
            if text == "":
                continue
            reason = date_reasons.get(text)
            if reason is None:
                reason = date_reasons[text] = check_dtc(text) or ""
            if reason:
                problems.append(Problem(name, number, variable, reason))
        if spec.seq is not None and spec.seq in columns and key_column in columns:
            seq = row[spec.seq]
            owner = row[key_column]
            if seq != "" and INTEGER_RE.fullmatch(seq) is not None:
                key = (owner, seq)
                first = keys.setdefault(key, number)
                if first != number:
                    problems.append(
                        Problem(
                            name,
                            number,
                            spec.seq,
                            f"{spec.seq} {seq} repeats row {first} (same {key_column})",
                        )
                    )
    if spec.code == "DM" and "USUBJID" in columns:
        subjects: dict[str, int] = {}
        for number, row in enumerate(table.rows, start=1):
            usubjid = row["USUBJID"]
            if usubjid == "":
                continue
            first = subjects.setdefault(usubjid, number)
            if first != number:
                problems.append(
                    Problem(name, number, "USUBJID", f"subject already in DM on row {first}")
                )
    return problems


def _key_column(spec: DomainSpec) -> str:
    """What --SEQ is unique within: the subject, or for TS the parameter (TSSEQ numbers the values
    of one TSPARMCD)."""
    return "USUBJID" if spec.subject_level else "TSPARMCD"


def _number_problem(
    spec: DomainSpec, name: str, number: int, variable: str, text: str
) -> list[Problem]:
    if variable in spec.integer:
        if INTEGER_RE.fullmatch(text) is None:
            return [Problem(name, number, variable, f"{text!r} is not an integer")]
    elif DECIMAL_RE.fullmatch(text) is None:
        return [Problem(name, number, variable, f"{text!r} is not a number")]
    if variable in spec.non_negative and Decimal(text) < 0:
        return [Problem(name, number, variable, f"{text} is negative")]
    return []


def _trial_problems(trial: Trial, paths: dict[str, Path]) -> list[Problem]:
    """The rules that span tables: one STUDYID, every subject known to DM."""
    problems: list[Problem] = []
    study: tuple[str, str, int] | None = None  # value, file, row
    for code, table in trial.items():
        if "STUDYID" not in table.columns:
            continue
        name = str(paths[code])
        reported: set[str] = set()
        for number, row in enumerate(table.rows, start=1):
            value = row["STUDYID"]
            if value == "":
                continue
            if study is None:
                study = (value, name, number)
            elif value != study[0] and value not in reported:
                reported.add(value)
                problems.append(
                    Problem(
                        name,
                        number,
                        "STUDYID",
                        f"{value!r} differs from {study[0]!r} ({Path(study[1]).name} row "
                        f"{study[2]}): one trial per folder",
                    )
                )
    dm = trial.get("DM")
    if dm is not None and "USUBJID" in dm.columns:
        subjects = {row["USUBJID"] for row in dm.rows}
        for code, table in trial.items():
            if code == "DM" or not table.spec.subject_level or "USUBJID" not in table.columns:
                continue
            name = str(paths[code])
            for number, row in enumerate(table.rows, start=1):
                usubjid = row["USUBJID"]
                if usubjid != "" and usubjid not in subjects:
                    problems.append(Problem(name, number, "USUBJID", "subject is not in DM"))
    return problems


# --- writing -------------------------------------------------------------------------------------


def write_table(table: Table, path: str | Path) -> None:
    """Write one table as CSV: UTF-8 without BOM, `\\n` line ends, quotes only where needed, the
    columns in `table.columns` order (a missing cell is written empty)."""
    columns = table.columns
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(columns)
        get = dict.get
        writer.writerows([get(row, c, "") for c in columns] for row in table.rows)


def write_trial(trial: Trial, out_dir: str | Path) -> list[Path]:
    """Write every table of `trial` as `<domain>.csv` (lower case) into `out_dir` (created if needed);
    returns the paths written."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for code, table in trial.items():
        path = folder / f"{code.lower()}.csv"
        write_table(table, path)
        written.append(path)
    return written


# --- the analysis view ---------------------------------------------------------------------------


def trial_frames(trial: Trial) -> dict[str, pd.DataFrame]:
    """One DataFrame per domain (upper-case code), every column of dtype str, "" where missing."""
    import pandas as pd

    frames: dict[str, pd.DataFrame] = {}
    for code, table in trial.items():
        columns = table.columns
        data = {c: [row.get(c, "") for row in table.rows] for c in columns}
        frames[code] = pd.DataFrame(data, columns=columns, dtype=str)
    return frames
