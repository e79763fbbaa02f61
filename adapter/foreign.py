"""FHIR written by others on disk -> SDTM tables and a mapping report (the I/O around `mappings.foreign`).

`read_foreign(src)` reads anything a FHIR R4 producer writes, tolerantly: a `.ndjson` / `.ndjson.gz`
file or folder (Bulk Data export layout, files of any name), a Bundle of any type (nested Bundles
flattened), a single-resource `.json` file or a folder of them, recursively. What is not FHIR data is
reported, not refused: a line that is not JSON, a Bulk Data client's `log.ndjson` (JSON without a
resourceType), a manifest. OperationOutcome resources (the `error/` files of a Bulk export) are the
server's messages, reported as such, never mapped.

`convert_foreign(src, out, study=...)` reads, maps and writes one `<domain>.csv` per domain (all eight,
header only when empty), `mapping-report.json` and `mapping-report.md` into `out`. Each file is written
to a temporary name and renamed, so nothing is half-written. Formats and rules: docs/foreign-fhir.md.
"""

from __future__ import annotations

import csv
import gc
import gzip
import io
import os
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from adapter.fhir_json import JSONDecodeErrors, loads, loads_line
from mappings.errors import ExitCode, TrialfhirError
from mappings.foreign import (
    DOMAINS,
    ForeignMapping,
    ForeignOptions,
    ForeignResource,
    bundle_entries,
    map_foreign,
)

__all__ = [
    "ForeignInput",
    "ForeignOutputError",
    "ForeignResult",
    "convert_foreign",
    "input_files",
    "read_foreign",
    "write_report",
]

REPORT_JSON = "mapping-report.json"
REPORT_MD = "mapping-report.md"
_SUFFIXES = (".ndjson", ".ndjson.gz", ".json", ".json.gz", ".jsonl", ".jsonl.gz")


class ForeignOutputError(TrialfhirError):
    """The output folder cannot be used (it is or overlaps the source, or holds files not ours)."""

    code: ClassVar[str] = "foreign_output_refused"
    exit_code: ClassVar[ExitCode] = ExitCode.OUTPUT_REFUSED


@dataclass
class ForeignInput:
    """What was read: the resources (with where each was read), and what was not FHIR data."""

    resources: list[ForeignResource] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    not_data: list[dict[str, str]] = field(default_factory=list)
    """Files known not to be data, each named with what it is: a Bulk Data manifest, `trialfhir
    export`'s job state, a hidden file such as the output manifest `.trialfhir-manifest.json`. Not
    problems: an export folder as `trialfhir export` writes it reads without any."""
    files: int = 0


@dataclass
class ForeignResult:
    mapping: ForeignMapping
    written: list[Path]

    @property
    def nothing_mapped(self) -> bool:
        """True when the input gave no row at all (the command then exits non-zero, with the report)."""
        return self.mapping.report.total_rows == 0


# --- reading ---------------------------------------------------------------------------------------


def input_files(src: Path) -> list[Path]:
    """The files `read_foreign(src)` reads: `src` itself, or every FHIR file under it."""
    return _files(src)


def _files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    return sorted(p for p in src.rglob("*") if p.is_file() and p.name.endswith(_SUFFIXES))


def _open(path: Path) -> io.BufferedReader | gzip.GzipFile:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def _is_ndjson(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return name.endswith((".ndjson", ".jsonl"))


def read_foreign(src: str | Path) -> ForeignInput:
    """Read every FHIR resource under `src`; never raises for bad content (it is reported)."""
    root = Path(src)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    found = ForeignInput()
    for path in _files(root):
        found.files += 1
        name = path.relative_to(root).as_posix() if root.is_dir() else path.name
        in_error_folder = "error" in path.relative_to(root).parts[:-1] if root.is_dir() else False
        try:
            if _is_ndjson(path):
                _read_ndjson(path, name, in_error_folder, found)
            else:
                with _open(path) as handle:
                    raw = handle.read()
                try:
                    parsed = loads(raw)
                except JSONDecodeErrors:
                    found.problems.append({"where": name, "reason": "not JSON"})
                    continue
                _take(parsed, name, in_error_folder, found)
        except (OSError, EOFError, zlib.error) as exc:
            found.problems.append(
                {"where": name, "reason": f"cannot be read ({type(exc).__name__})"}
            )
    return found


def _read_ndjson(path: Path, name: str, in_error_folder: bool, found: ForeignInput) -> None:
    not_fhir = 0
    number = 0
    try:
        with _open(path) as handle:
            for line in handle:
                number += 1
                if not line.strip():
                    continue
                where = f"{name}, line {number}"
                try:
                    parsed = loads_line(line)
                except JSONDecodeErrors:
                    found.problems.append({"where": where, "reason": "not JSON"})
                    continue
                if not (isinstance(parsed, dict) and "resourceType" in parsed):
                    not_fhir += 1
                    continue
                _take(parsed, where, in_error_folder, found)
    except (OSError, EOFError, zlib.error) as exc:
        if number == 0:
            raise  # nothing read: the whole file is reported by the caller
        reason = f"cannot be read after line {number} ({type(exc).__name__}); the lines before it were read"
        found.problems.append({"where": name, "reason": reason})
    if not_fhir:
        found.problems.append(
            {
                "where": name,
                "reason": f"{not_fhir} lines are JSON but not FHIR resources (no resourceType; "
                "e.g. a Bulk Data client's log): not read as data",
            }
        )


def _not_data(parsed: Any, where: str) -> str | None:
    """What a JSON file without resourceType is, when it is a file an export folder is known to hold."""
    if not isinstance(parsed, dict) or "resourceType" in parsed:
        return None
    if where.rsplit("/", 1)[-1].startswith("."):
        return "a hidden file (e.g. trialfhir's output manifest): not data"
    if "transactionTime" in parsed and isinstance(parsed.get("output"), list):
        return "a Bulk Data manifest (what the export holds): not data"
    if "transactionTime" in parsed and "status_url" in parsed:
        return "trialfhir export's job state: not data"
    return None


def _take(parsed: Any, where: str, in_error_folder: bool, found: ForeignInput) -> None:
    what = _not_data(parsed, where)
    if what is not None:
        found.not_data.append({"where": where, "what": what})
        return
    if not (isinstance(parsed, dict) and "resourceType" in parsed):
        found.problems.append(
            {
                "where": where,
                "reason": "JSON but not a FHIR resource (no resourceType): not read as data",
            }
        )
        return
    if parsed.get("resourceType") == "OperationOutcome":
        _server_messages(parsed, where, found)
        return
    if in_error_folder:
        found.problems.append(
            {"where": where, "reason": "a resource in an error/ folder: read as data"}
        )
    found.resources.append(ForeignResource(parsed, where))
    if parsed.get("resourceType") == "Bundle":
        for entry in bundle_entries(parsed, where):
            if entry.resource.get("resourceType") == "OperationOutcome":  # a searchset's outcome
                _server_messages(entry.resource, entry.where, found)
            else:
                found.resources.append(entry)


def _server_messages(outcome: dict[str, Any], where: str, found: ForeignInput) -> None:
    issues = outcome.get("issue")
    for issue in issues if isinstance(issues, list) else [{}]:
        issue = issue if isinstance(issue, dict) else {}
        details = issue.get("details")
        text = issue.get("diagnostics") or (
            details.get("text") if isinstance(details, dict) else ""
        )
        found.messages.append(
            {
                "where": where,
                "severity": str(issue.get("severity", "")),
                "code": str(issue.get("code", "")),
                "message": str(text or ""),
            }
        )


# --- writing ---------------------------------------------------------------------------------------


def _our_names() -> set[str]:
    return {f"{d.lower()}.csv" for d in DOMAINS} | {REPORT_JSON, REPORT_MD}


def _check_output(src: Path, out: Path) -> None:
    source, target = src.resolve(), out.resolve()
    if target == source or source in target.parents or target in source.parents:
        raise ForeignOutputError(
            f"{out}: the output folder must not be, contain or lie inside the input"
        )
    if target.exists():
        if not target.is_dir():
            raise ForeignOutputError(f"{out}: exists and is not a folder")
        ours = _our_names()
        foreign = sorted(
            p.name
            for p in target.iterdir()
            if p.name not in ours and not any(p.name.startswith(f".{n}.") for n in ours)
        )  # `.<name>.<random>`: a temporary file of an interrupted run of this command
        if foreign:
            raise ForeignOutputError(
                f"{out}: holds files this command did not write ({', '.join(foreign[:3])}"
                + (", ..." if len(foreign) > 3 else "")
                + "); give an empty or new folder"
            )


def _write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", newline="", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        temporary = Path(handle.name)
        try:
            handle.write(text)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_report(report: Any, folder: Path) -> list[Path]:
    """`mapping-report.json` and `mapping-report.md` of `report` (a `MappingReport`) into `folder`
    (a staging folder: the command's output is finished whole or not at all); the paths written."""
    paths = [folder / REPORT_JSON, folder / REPORT_MD]
    paths[0].write_text(report.to_json(), encoding="utf-8")
    paths[1].write_text(report.to_markdown(), encoding="utf-8")
    return paths


def table_csv(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """The CSV text of a table: UTF-8, header row, `\\n` line ends, minimal quoting (docs/files.md)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector while reading and mapping (as `trialfhir convert` does): resources
    and rows are trees of dicts and lists without cycles, and with a hundred thousand of them alive
    every collection re-walks them all (about half the CPU time of `convert_foreign` before)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:  # nobody else's frozen objects to unfreeze
                # what was allocated meanwhile goes to the oldest generation as a list splice,
                # instead of being walked by the first young collection after `enable`
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _handed_over(found: ForeignInput) -> Iterator[ForeignResource]:
    """`found`'s resources, given to the mapping and no longer held by `found` (so that they are freed
    once the mapping has built its rows, before the tables and the CSV text are built)."""
    resources, found.resources = found.resources, []
    yield from resources


def convert_foreign(
    src: str | Path,
    out: str | Path,
    study: str | None = None,
    subjid: str = "identifier",
    study_drugs: tuple[str, ...] = (),
) -> ForeignResult:
    """Read FHIR under `src`, map it profile-free, write the tables and the report into `out`.

    Raises `ForeignOutputError` before anything is written when `out` cannot be used, `ValueError` for a
    bad `subjid` option, `FileNotFoundError` when `src` does not exist. `result.nothing_mapped` says
    that no row came out (the report says why)."""
    source, target = Path(src), Path(out)
    options = ForeignOptions(study=study, subjid=subjid, study_drugs=study_drugs)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    _check_output(source, target)
    with _gc_paused():
        found = read_foreign(source)
        mapping = map_foreign(_handed_over(found), options)
        mapping.report.input_problems = found.problems
        mapping.report.not_data = found.not_data
        mapping.report.server_messages = found.messages
        target.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for domain, table in mapping.tables.items():
            path = target / f"{domain.lower()}.csv"
            _write_atomically(path, table_csv(table.columns, table.rows))
            written.append(path)
        for name, text in (
            (REPORT_JSON, mapping.report.to_json()),
            (REPORT_MD, mapping.report.to_markdown()),
        ):
            _write_atomically(target / name, text)
            written.append(target / name)
    return ForeignResult(mapping, written)
