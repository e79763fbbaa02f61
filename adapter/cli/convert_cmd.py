"""`trialfhir convert`: an SDTM folder -> FHIR files (NDJSON per type + a transaction Bundle), or FHIR
files -> an SDTM folder, all or nothing.

    trialfhir convert fixtures/dalakas1993 --out out/fhir              # SDTM -> FHIR
    trialfhir convert out/fhir --to sdtm --out out/sdtm                # FHIR -> SDTM

Everything is written into a temporary sibling of DIR and moved into place at the very end, so a run that
fails or is interrupted leaves DIR as it was. Exit codes: 0 done, 1 unexpected failure (a bug), 2 usage,
3 bad input data (every problem listed on stderr: file, row, variable, reason). See docs/cli.md.
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

__all__ = ["EXIT_BAD_INPUT", "EXIT_INVALID_OUTPUT", "convert", "gc_paused"]

EXIT_BAD_INPUT = 3
EXIT_INVALID_OUTPUT = 1


class BadInput(click.ClickException):
    """The input data breaks the rules: exit 3, the message lists every problem."""

    exit_code = EXIT_BAD_INPUT

    def format_message(self) -> str:
        return self.message


def _progress(items: Iterable[dict[str, Any]], label: str) -> Iterator[dict[str, Any]]:
    """`items` with a tqdm progress bar on stderr when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=label, unit=" res", file=sys.stderr, mininterval=0.5, leave=False)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector while converting: tables and resources are trees of dicts and
    lists (no cycles), and with hundreds of thousands of them alive every collection re-walks them
    all (about 15% of the conversion's CPU time on 200,000 records)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_target(src: Path, out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise click.UsageError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise click.UsageError(f"--out {out}: folder is not empty (use --force to replace it)")
    if not out.parent.is_dir():
        raise click.UsageError(f"--out {out}: parent folder {out.parent} does not exist")
    source, target = src.resolve(), out.resolve()
    if source == target or target in source.parents or source in target.parents:
        raise click.UsageError(f"--out {out}: must not be SRC, inside it, or contain it")


MEMORY_PER_BYTE = {"fhir": 20, "sdtm": 2}
"""Peak memory of `convert` per byte of input, rounded up from measurements (docs/performance.md):
SDTM -> FHIR holds every table as row dicts of strings (13x the CSV size on the 1,000-subject cohort,
18x on a DM alone); FHIR -> SDTM streams the resources and holds the rows they give back (1.4x the
NDJSON size, 1.7x for DM-only resources)."""

DEFAULT_MAX_MEMORY_GB = 8.0


def _input_bytes(src: Path, target: str) -> int:
    """The size of the files `convert` will read from SRC (0 when SRC is not what the reader takes:
    the reader then says why)."""
    from adapter.fhir_files import FhirFileError, resource_files
    from adapter.tables import domain_files

    if target == "fhir":
        if not src.is_dir():
            return 0
        return sum(p.stat().st_size for paths in domain_files(src).values() for p in paths)
    try:
        return sum(p.stat().st_size for p in resource_files(src))
    except (FhirFileError, OSError):
        return 0


def _check_memory(src: Path, target: str, max_memory_gb: float) -> None:
    """Refuse an input whose conversion would need more than `max_memory_gb` (estimated from its size
    and `MEMORY_PER_BYTE`), before anything is read or written."""
    size = _input_bytes(src, target)
    needed = size * MEMORY_PER_BYTE[target]
    if needed > max_memory_gb * 1e9:
        kind = "SDTM tables" if target == "fhir" else "FHIR files"
        raise BadInput(
            f"{src}: {size / 1e9:.2f} GB of {kind}; converting them needs about "
            f"{needed / 1e9:.1f} GB of memory ({MEMORY_PER_BYTE[target]} x the input), more than "
            f"--max-memory {max_memory_gb:g} GB. Raise --max-memory if this machine has that much "
            "memory, or convert the trial in parts (a folder per group of subjects)."
        )


def _move_into_place(staging: Path, out: Path) -> None:
    """Replace `out` by `staging` (same parent folder: renames, no copies)."""
    if out.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        retired.rmdir()
        out.rename(retired)
        staging.rename(out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out)


def _counts_line(counts: dict[str, int], unit: str) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{name} {n}" for name, n in counts.items())
    return f"{total} {unit}: {parts}" if parts else f"0 {unit}"


def _sdtm_to_fhir(src: Path, staging: Path, validate: bool) -> str:
    from adapter.fhir_files import BundleWriter, write_ndjson
    from adapter.tables import TableError, read_trial
    from adapter.validation import validate_all
    from mappings.trial import trial_to_fhir

    try:
        trial = read_trial(src)
    except TableError as exc:
        message = str(exc)
        if src.is_file() or any(src.glob("*.ndjson")):
            message += "\n(SRC looks like FHIR files: add --to sdtm to convert them to SDTM)"
        raise BadInput(message) from exc
    if validate:
        summary = validate_all(trial_to_fhir(trial))
        if summary["invalid"]:
            lines = [
                f"{summary['invalid']} of {summary['resources']} resources made are not valid R4B:"
            ]
            lines.extend(summary["problems"])
            raise click.ClickException("\n".join(lines))
    with BundleWriter(staging / "bundle.json", "transaction") as bundle:

        def tee(resources: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            add = bundle.add
            for resource in resources:
                add(resource)
                yield resource

        counts = write_ndjson(tee(_progress(trial_to_fhir(trial), "SDTM -> FHIR")), staging)
    rows = sum(len(t.rows) for t in trial.values())
    return f"{rows} rows in {len(trial)} tables -> " + _counts_line(counts, "resources")


def _fhir_to_sdtm(src: Path, staging: Path, validate: bool) -> tuple[str, list[str]]:
    from adapter.fhir_files import FhirFileError, ReadStats, read_resources, read_trial_resources
    from adapter.tables import TableError, write_trial
    from adapter.validation import validate_all
    from mappings.trial import ResourceRefused

    warnings: list[str] = []
    stats = ReadStats()
    try:
        if validate:
            summary = validate_all(read_resources(src))
            if summary["invalid"]:
                lines = [
                    f"{summary['invalid']} of {summary['resources']} resources are not valid R4B:"
                ]
                lines.extend(summary["problems"])
                raise BadInput("\n".join(lines))
        assembler = read_trial_resources(
            src, stats, lambda resources: _progress(resources, "FHIR -> SDTM")
        )
    except FhirFileError as exc:
        raise BadInput(str(exc)) from exc
    try:
        trial = assembler.tables()
    except ResourceRefused as exc:
        raise BadInput(f"{src}: {exc}") from exc
    if assembler.unrecognised:
        skipped = ", ".join(f"{k} {n}" for k, n in sorted(assembler.unrecognised.items()))
        warnings.append(f"warning: resources no SDTM domain comes from, not converted: {skipped}")
    if assembler.duplicates:
        again = ", ".join(f"{k} {n}" for k, n in sorted(assembler.duplicates.items()))
        warnings.append(f"note: identical resources read again, taken once: {again}")
    if stats.outcomes_skipped:
        warnings.append(f"note: {stats.outcomes_skipped} search OperationOutcome entries skipped")
    if stats.bundles_nested:
        warnings.append(f"note: {stats.bundles_nested} Bundles inside Bundles read through")
    try:
        write_trial(trial, staging)
    except TableError as exc:  # named by the file it would have been, not the staging folder
        lines = ["the tables rebuilt from the FHIR files cannot be written as CSV:"]
        lines.extend(str(replace(p, file=Path(p.file).name)) for p in exc.problems)
        raise BadInput("\n".join(lines)) from exc
    counts = {code: len(table.rows) for code, table in trial.items()}
    return f"{stats.resources} resources -> " + _counts_line(counts, "rows"), warnings


@click.command(name="convert")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Folder to write (created; must be empty unless --force).",
)
@click.option(
    "--to",
    "target",
    type=click.Choice(["fhir", "sdtm"]),
    default="fhir",
    show_default=True,
    help="fhir: SRC is an SDTM folder; sdtm: SRC is an NDJSON folder, .ndjson file or Bundle.",
)
@click.option(
    "--validate", is_flag=True, help="Also check every resource with the R4B models (slow)."
)
@click.option("--force", is_flag=True, help="Replace DIR when it exists and is not empty.")
@click.option(
    "--max-memory",
    "max_memory",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_MAX_MEMORY_GB,
    show_default=True,
    metavar="GB",
    help="Refuse an input whose conversion would need more memory than this (estimated: 20x the "
    "SDTM files' size, 2x the FHIR files').",
)
def convert(
    src: Path, out: Path, target: str, validate: bool, force: bool, max_memory: float
) -> None:
    """Convert SRC (SDTM tables or FHIR files) and write the result into DIR, all or nothing.

    SDTM -> FHIR writes DIR/<Type>.ndjson (Bulk Data layout) and DIR/bundle.json (a transaction).
    FHIR -> SDTM writes DIR/<domain>.csv. Bad input exits with 3 and lists every problem.
    """
    _check_target(src, out, force)
    _check_memory(src, target, max_memory)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        warnings: list[str] = []
        with gc_paused():
            if target == "fhir":
                summary = _sdtm_to_fhir(src, staging, validate)
            else:
                summary, warnings = _fhir_to_sdtm(src, staging, validate)
        _move_into_place(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    for line in warnings:
        click.echo(line, err=True)
    click.echo(f"{summary} (in {out})")
