"""`trialfhir convert`: an SDTM folder -> FHIR files (NDJSON per type + a transaction Bundle), or FHIR
files -> an SDTM folder, all or nothing.

    trialfhir convert adapter/studies/dalakas1993 --out out/fhir  # SDTM -> FHIR
    trialfhir convert out/fhir --to sdtm --out out/sdtm           # FHIR -> SDTM

Everything is written into a temporary sibling of DIR and moved into place at the very end, so a run that
fails or is interrupted leaves DIR as it was (adapter/cli/_common.staged_folder). Exit codes: 0 done,
1 unexpected failure (a bug), 2 usage, 3 bad input data (every problem listed on stderr: file, row,
variable, reason), 11 DIR refused, 12 nothing to convert in SRC. See docs/cli.md.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from adapter.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_NOTHING_CONVERTED,
    CommandError,
    staged_folder,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_INVALID_OUTPUT", "convert", "gc_paused"]

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


def _counts_line(counts: dict[str, int], unit: str) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{name} {n}" for name, n in counts.items())
    return f"{total} {unit}: {parts}" if parts else f"0 {unit}"


def _sdtm_to_fhir(src: Path, staging: Path, validate: bool) -> str:
    from adapter.fhir_files import BundleWriter, write_ndjson
    from adapter.tables import TableError, domain_files, read_trial
    from adapter.validation import validate_all
    from mappings.trial import trial_to_fhir

    try:
        trial = read_trial(src)
    except TableError as exc:
        message = str(exc)
        if src.is_file() or any(src.glob("*.ndjson")):
            message += "\n(SRC looks like FHIR files: add --to sdtm to convert them to SDTM)"
        raise BadInput(message) from exc
    rows = sum(len(t.rows) for t in trial.values())
    if rows == 0:
        tables = ", ".join(f"{p.name}" for paths in domain_files(src).values() for p in paths)
        raise CommandError(
            f"{src}: nothing to convert: {_count(len(trial), 'table')} read ({tables}), all without rows "
            "(a header and no rows is an empty domain); nothing was written",
            EXIT_NOTHING_CONVERTED,
        )
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
    return f"{rows} rows in {len(trial)} tables -> " + _counts_line(counts, "resources")


def _fhir_to_sdtm(src: Path, staging: Path, validate: bool) -> tuple[str, list[str]]:
    from adapter.fhir_files import FhirFileError, ReadStats, read_resources
    from adapter.tables import domain_files, write_trial
    from adapter.validation import validate_all
    from mappings.trial import TrialAssembler

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
        assembler = TrialAssembler()
        add = assembler.add
        for resource in _progress(read_resources(src, stats), "FHIR -> SDTM"):
            add(resource)
    except FhirFileError as exc:
        message = str(exc)
        if src.is_dir() and domain_files(src):
            message += "\n(SRC looks like SDTM tables: leave out --to sdtm to convert them to FHIR)"
        raise BadInput(message) from exc
    trial = assembler.tables()
    if not any(table.rows for table in trial.values()):
        raise CommandError(
            _nothing_from_fhir(src, stats, assembler.unrecognised), EXIT_NOTHING_CONVERTED
        )
    if assembler.unrecognised:
        skipped = ", ".join(f"{k} {n}" for k, n in sorted(assembler.unrecognised.items()))
        warnings.append(f"warning: resources no SDTM domain comes from, not converted: {skipped}")
    if stats.outcomes_skipped:
        warnings.append(f"note: {stats.outcomes_skipped} search OperationOutcome entries skipped")
    write_trial(trial, staging)
    counts = {code: len(table.rows) for code, table in trial.items()}
    return f"{stats.resources} resources -> " + _counts_line(counts, "rows"), warnings


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _nothing_from_fhir(src: Path, stats: Any, unrecognised: dict[str, int]) -> str:
    """Why FHIR input gave no SDTM row: what was read, and what it was."""
    names = [Path(f).name for f in stats.files]
    files = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    read = f"{_count(len(names), 'file')} read ({files})"
    if stats.resources == 0:
        why = "no FHIR resources found"
        if stats.outcomes_skipped:
            why += f" (only {stats.outcomes_skipped} search OperationOutcome entries)"
    else:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(unrecognised.items()))
        taken = stats.resources - sum(unrecognised.values())
        why = _count(stats.resources, "resource")
        if unrecognised:
            why += f", of types no SDTM domain comes from ({kinds})"
        if taken:
            why += f"; {taken} of them taken but giving no SDTM row"
    return f"{src}: nothing to convert: {read}, {why}; nothing was written"


@click.command(name="convert")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Folder to write: new or empty, or an earlier trialfhir output with --force.",
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
@click.option(
    "--force",
    is_flag=True,
    help="Replace DIR when it holds an earlier trialfhir output (and nothing else).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "spark"]),
    default="local",
    show_default=True,
    help="spark: map per subject on Apache Spark (the `spark` extra; same output bytes).",
)
@click.option(
    "--spark-master",
    metavar="URL",
    default=None,
    help="With --engine spark: the Spark master (default local[2]; e.g. spark://host:7077).",
)
def convert(
    src: Path,
    out: Path,
    target: str,
    validate: bool,
    force: bool,
    engine: str = "local",
    spark_master: str | None = None,
) -> None:
    """Convert SRC (SDTM tables or FHIR files) and write the result into DIR, all or nothing.

    SDTM -> FHIR writes DIR/<Type>.ndjson (Bulk Data layout) and DIR/bundle.json (a transaction).
    FHIR -> SDTM writes DIR/<domain>.csv. Bad input exits with 3 and lists every problem; input with
    nothing to convert exits with 12 and says what was read.
    """
    if spark_master is not None and engine != "spark":
        raise click.UsageError("--spark-master goes with --engine spark")
    warnings: list[str] = []
    with staged_folder(out, force=force, command="convert", sources=[src]) as staging, gc_paused():
        if engine == "spark":
            from adapter.engines.spark import convert as convert_on_spark

            summary, warnings = convert_on_spark(src, staging, target, validate, spark_master)
        elif target == "fhir":
            summary = _sdtm_to_fhir(src, staging, validate)
        else:
            summary, warnings = _fhir_to_sdtm(src, staging, validate)
    for line in warnings:
        click.echo(line, err=True)
    click.echo(f"{summary} (in {out})")
