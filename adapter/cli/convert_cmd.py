"""`trialfhir convert`: an SDTM folder -> FHIR files (NDJSON per type; with --bundle also a transaction
Bundle), or FHIR files -> an SDTM folder, all or nothing.

    trialfhir convert adapter/studies/dalakas1993 --out out/fhir  # SDTM -> FHIR
    trialfhir convert out/fhir --to sdtm --out out/sdtm           # FHIR -> SDTM
    trialfhir convert ehr-export/ --to sdtm --study SYN01 --out sdtm  # FHIR written by others

FHIR written by others (an EHR or Bulk Data export, Synthea; alone or beside the adapter's own
resources) goes through the profile-free mapping (adapter.sources.Source.read_fhir): DIR then also
gets mapping-report.json and mapping-report.md, and the console a line per resource type.

Everything is written into a temporary sibling of DIR and moved into place at the very end, so a run that
fails or is interrupted leaves DIR as it was (adapter/cli/_common.staged_folder). What SRC is comes
from adapter/sources.py (told by --to); exit codes from the one table in adapter/cli/_common.py.
"""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adapter.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_NOTHING_CONVERTED,
    EXIT_UNEXPECTED,
    CommandError,
    progress_bar,
    staged_folder,
)

if TYPE_CHECKING:
    from adapter.sources import Source

__all__ = ["convert", "gc_paused"]


def _progress(items: Iterable[dict[str, Any]], label: str) -> Iterator[dict[str, Any]]:
    """`items` counted by the commands' progress bar (adapter/cli/_common.progress_bar); `items`
    themselves when the bar is silent (no terminal): no generator layer per resource then."""
    bar = progress_bar(None, label, items)
    return iter(items) if bar.disable else iter(bar)


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


MEMORY_PER_BYTE = {"fhir": 20, "sdtm": 2}
"""Peak memory of `convert` per byte of input, rounded up from measurements (docs/performance.md):
SDTM -> FHIR holds every table as row dicts of strings (13x the CSV size on the 1,000-subject cohort,
18x on a DM alone); FHIR -> SDTM streams the resources and holds the rows they give back (1.4x the
NDJSON size, 1.7x for DM-only resources)."""

FOREIGN_MEMORY_PER_BYTE = 8
"""Peak memory per byte of input when the input holds FHIR written by others: the profile-free path
holds every parsed resource until the cross-resource rules have run (measured 6.2-6.4x the NDJSON on
the 400-patient Synthea-like bench, docs/performance.md; rounded up). Checked once the input is known
to hold such FHIR, before the tolerant reader holds it."""

DEFAULT_MAX_MEMORY_GB = 8.0

GZIP_EXPANSION = 25
"""A `.ndjson.gz` file counts as this many times its size in the memory estimate (the bundled cohort's
NDJSON compresses 21 times with gzip; rounded up)."""


def _bad_input(message: str) -> CommandError:
    """The input data breaks the rules: exit 3, the message lists every problem."""
    return CommandError(message, EXIT_BAD_INPUT)


def _input_bytes(source: Source) -> int:
    """The size of the files `convert` will read from SRC (0 when SRC is not what the reader takes:
    the reader then says why)."""
    from adapter.fhir_files import FhirFileError

    if source.kind == "sdtm" and not (source.path and source.path.is_dir()):
        return 0
    try:
        return _bytes_read(source.files())
    except (FhirFileError, OSError):
        return 0


def _bytes_read(files: Iterable[Path]) -> int:
    """The bytes a reader takes from `files` (a gzip file counts `GZIP_EXPANSION` times its size)."""
    return sum(
        p.stat().st_size * (GZIP_EXPANSION if p.name.lower().endswith(".gz") else 1) for p in files
    )


def _check_memory(src: Path, source: Source, target: str, max_memory_gb: float) -> None:
    """Refuse an input whose conversion would need more than `max_memory_gb` (estimated from its size
    and `MEMORY_PER_BYTE`), before anything is read or written."""
    size = _input_bytes(source)
    needed = size * MEMORY_PER_BYTE[target]
    if needed > max_memory_gb * 1e9:
        kind = "SDTM tables" if target == "fhir" else "FHIR files"
        raise _bad_input(
            f"{src}: {size / 1e9:.2f} GB of {kind}; converting them needs about "
            f"{needed / 1e9:.1f} GB of memory ({MEMORY_PER_BYTE[target]} x the input), more than "
            f"--max-memory {max_memory_gb:g} GB. Raise --max-memory if this machine has that much "
            "memory, or convert the trial in parts (a folder per group of subjects)."
        )


def _check_foreign_memory(src: Path, max_memory_gb: float) -> None:
    """`_check_memory` for the profile-free path (`FOREIGN_MEMORY_PER_BYTE`)."""
    from adapter.foreign import input_files

    try:
        size = _bytes_read(input_files(src))
    except OSError:
        return  # the reader says what it cannot read
    needed = size * FOREIGN_MEMORY_PER_BYTE
    if needed > max_memory_gb * 1e9:
        raise _bad_input(
            f"{src}: {size / 1e9:.2f} GB of FHIR files, some written by others; mapping them "
            f"profile-free needs about {needed / 1e9:.1f} GB of memory ({FOREIGN_MEMORY_PER_BYTE} x "
            f"the input), more than --max-memory {max_memory_gb:g} GB. Raise --max-memory if this "
            "machine has that much memory, or convert the export in parts (a folder per group of "
            "patients)."
        )


def _counts_line(counts: dict[str, int], unit: str) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{name} {n}" for name, n in counts.items())
    return f"{total} {unit}: {parts}" if parts else f"0 {unit}"


def _sdtm_to_fhir(
    src: Path,
    source: Source,
    staging: Path,
    validate: bool,
    workers: int = 1,
    bundle: bool = False,
    max_memory: float | None = None,
) -> str:
    from adapter.fhir_files import BundleWriter, write_ndjson
    from adapter.tables import TableError, domain_files
    from adapter.validation import validate_all
    from mappings.trial import trial_to_fhir

    if workers > 1 and not validate and source.path is not None and source.path.is_dir():
        from adapter.engines.workers import sdtm_to_fhir

        done = sdtm_to_fhir(source.path, staging, workers, bundle)
        if done is not None and done.rows:
            return f"{done.rows} rows in {done.tables} tables -> " + _counts_line(
                done.counts, "resources"
            )
        for leftover in staging.iterdir():  # None or no rows: one worker says why
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    if workers > 1 and max_memory is not None:  # one worker holds the tables: the estimate applies
        _check_memory(src, source, "fhir", max_memory)
    try:
        trial = source.trial()
    except TableError as exc:
        message = str(exc)
        if _looks_like(src) == "fhir":
            message += "\n(SRC looks like FHIR files: add --to sdtm to convert them to SDTM)"
        raise _bad_input(message) from exc
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
            raise CommandError("\n".join(lines), EXIT_UNEXPECTED)  # a mapping bug
    stream = _progress(trial_to_fhir(trial), "SDTM -> FHIR")
    if bundle:
        with BundleWriter(staging / "bundle.json", "transaction") as writer:
            counts = write_ndjson(stream, staging, bundle=writer)  # each resource serialised once
    else:
        counts = write_ndjson(stream, staging)
    return f"{rows} rows in {len(trial)} tables -> " + _counts_line(counts, "resources")


def _fhir_to_sdtm(
    src: Path,
    source: Source,
    staging: Path,
    validate: bool,
    workers: int = 1,
    max_memory: float | None = None,
) -> tuple[str, list[str], CommandError | None]:
    """FHIR files -> SDTM tables in `staging`: the summary, the warnings, and the error to leave with
    once the output is in place (exit 12 when FHIR written by others gave no row: the folder then
    holds the mapping report only). With `workers` > 1 the adapter's own NDJSON is split by subject
    (`adapter.engines.workers`); anything else (FHIR written by others among it included) converts on
    one worker."""
    from adapter.fhir_files import FhirFileError, ReadStats
    from adapter.tables import TableError, write_trial
    from adapter.validation import validate_all
    from mappings.foreign.combine import SubjectCollision
    from mappings.trial import ResourceRefused

    warnings: list[str] = []
    if workers > 1 and not validate and source.path is not None:
        from adapter.engines.workers import fhir_to_sdtm

        done = fhir_to_sdtm(source.path, staging, workers)
        if done is not None:
            warnings.extend(_assembly_notes(done.unrecognised, done.duplicates))
            line = f"{done.resources} resources -> " + _counts_line(done.counts, "rows")
            return line, warnings, None
        for leftover in staging.iterdir():  # None: one worker converts, or says what is wrong
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    if workers > 1 and max_memory is not None:  # one worker holds the rows: the estimate applies
        _check_memory(src, source, "sdtm", max_memory)
    stats = ReadStats()
    try:
        if validate:
            summary = _validate_own(src, source, validate_all)
            if summary["invalid"]:
                lines = [
                    f"{summary['invalid']} of {summary['resources']} resources are not valid R4B:"
                ]
                lines.extend(summary["problems"])
                raise _bad_input("\n".join(lines))
        reading = source.read_fhir(
            stats,
            lambda resources: _progress(resources, "FHIR -> SDTM"),
            before_others=(
                (lambda: _check_foreign_memory(src, max_memory)) if max_memory is not None else None
            ),
        )
    except FhirFileError as exc:
        message = str(exc)
        if _looks_like(src) == "sdtm":
            message += "\n(SRC looks like SDTM tables: leave out --to sdtm to convert them to FHIR)"
        raise _bad_input(message) from exc
    except (ResourceRefused, SubjectCollision) as exc:
        raise _bad_input(f"{src}: {exc}") from exc
    assembler, trial = reading.assembler, reading.trial
    if reading.mapping is not None:
        return _foreign_to_sdtm(src, reading, staging, source.foreign.study)
    if not any(table.rows for table in trial.values()):
        raise CommandError(
            _nothing_from_fhir(src, stats, assembler.unrecognised, assembler.duplicates),
            EXIT_NOTHING_CONVERTED,
        )
    warnings.extend(_assembly_notes(assembler.unrecognised, assembler.duplicates))
    if stats.outcomes_skipped:
        warnings.append(f"note: {stats.outcomes_skipped} search OperationOutcome entries skipped")
    if stats.bundles_nested:
        warnings.append(f"note: {stats.bundles_nested} Bundles inside Bundles read through")
    try:
        write_trial(trial, staging)
    except TableError as exc:  # named by the file it would have been, not the staging folder
        lines = ["the tables rebuilt from the FHIR files cannot be written as CSV:"]
        lines.extend(str(replace(p, file=Path(p.file).name)) for p in exc.problems)
        raise _bad_input("\n".join(lines)) from exc
    counts = {code: len(table.rows) for code, table in trial.items()}
    return f"{stats.resources} resources -> " + _counts_line(counts, "rows"), warnings, None


def _validate_own(src: Path, source: Source, validate_all: Any) -> Any:
    """`--validate` with `--to sdtm`: the R4B models over the adapter's own resources (all or
    nothing). FHIR written by others is not refused whole for one invalid resource: its structural
    check skips and reports resource by resource. A folder the strict reader cannot read (a Bulk
    client's `log.ndjson`, subfolders) is read tolerantly for this check."""
    from adapter.fhir_files import FhirFileError
    from mappings.foreign.combine import is_own

    try:
        return validate_all(r for r in source.resources() if is_own(r))
    except FhirFileError:
        from adapter.foreign import read_foreign

        found = read_foreign(src)
        return validate_all(e.resource for e in found.resources if is_own(e.resource))


def _own_warnings(assembler: Any) -> list[str]:
    warnings = []
    if assembler.unrecognised:
        skipped = ", ".join(f"{k} {n}" for k, n in sorted(assembler.unrecognised.items()))
        warnings.append(
            f"warning: own resources no SDTM domain comes from, not converted: {skipped}"
        )
    if assembler.duplicates:
        again = ", ".join(f"{k} {n}" for k, n in sorted(assembler.duplicates.items()))
        warnings.append(f"note: identical own resources read again, taken once: {again}")
    return warnings


def foreign_summary(report: Any) -> list[str]:
    """The console lines of the profile-free mapping: per resource type read / mapped (rows per
    domain) / skipped (mapped + skipped = read), then the skip reasons (`MappingReport.summary`)."""
    lines = list(report.summary())
    head, reasons = lines[:1], lines[1:]
    for rtype in sorted(report.types):
        account = report.types[rtype]
        domains = ", ".join(f"{d} {n}" for d, (_, n) in sorted(account.mapped.items()) if d and n)
        lines_domains = f" ({domains} rows)" if domains else ""
        head.append(
            f"  {rtype}: read {account.read}, mapped {account.mapped_resources}{lines_domains}, "
            f"skipped {account.skipped_resources}"
        )
    return head + reasons


def _foreign_to_sdtm(
    src: Path, reading: Any, staging: Path, study: str | None
) -> tuple[str, list[str], CommandError | None]:
    """FHIR written by others (alone or beside the adapter's own resources): the combined tables and
    the mapping report into `staging`; nothing mapped -> only the report, and exit 12 afterwards."""
    from adapter.foreign import REPORT_MD, write_report
    from adapter.tables import TableError, write_trial

    report = reading.mapping.report
    trial = reading.trial
    warnings = _own_warnings(reading.assembler)
    write_report(report, staging)
    lines = foreign_summary(report)
    rows = sum(len(table.rows) for table in trial.values())
    if rows == 0:
        message = "\n".join(
            [
                *lines,
                f"{src}: nothing mapped: no SDTM row came out (the reasons are above and in "
                f"{REPORT_MD}); the output folder holds the mapping report only",
            ]
        )
        if study is None and report.types.get("Patient"):
            message += "\n(no ResearchSubject in the input: pass --study STUDYID to make every "
            message += "Patient a subject)"
        return "", warnings, CommandError(message, EXIT_NOTHING_CONVERTED)
    try:
        write_trial(trial, staging)
    except TableError as exc:
        problems = ["the tables mapped from the FHIR files cannot be written as CSV:"]
        problems.extend(str(replace(p, file=Path(p.file).name)) for p in exc.problems)
        raise _bad_input("\n".join(problems)) from exc
    counts = {code: len(table.rows) for code, table in trial.items() if table.rows}
    origin = "mixed: own and others'" if reading.origin == "mixed" else "written by others"
    head = f"{reading.stats.resources} resources ({origin}) -> " + _counts_line(counts, "rows")
    return "\n".join([head, *lines]), warnings, None


def _assembly_notes(unrecognised: dict[str, int], duplicates: dict[str, int]) -> list[str]:
    """The warning about resources no family took and the note about those read twice."""
    notes: list[str] = []
    if unrecognised:
        skipped = ", ".join(f"{k} {n}" for k, n in sorted(unrecognised.items()))
        notes.append(f"warning: resources no SDTM domain comes from, not converted: {skipped}")
    if duplicates:
        again = ", ".join(f"{k} {n}" for k, n in sorted(duplicates.items()))
        notes.append(f"note: identical resources read again, taken once: {again}")
    return notes


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _nothing_from_fhir(
    src: Path, stats: Any, unrecognised: dict[str, int], duplicates: dict[str, int]
) -> str:
    """Why FHIR input gave no SDTM row: what was read, and what it was (identical duplicates, read
    once, are counted as such)."""
    names = [Path(f).name for f in stats.files]
    files = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    read = f"{_count(len(names), 'file')} read ({files})"
    if stats.resources == 0:
        why = "no FHIR resources found"
        if stats.outcomes_skipped:
            why += f" (only {stats.outcomes_skipped} search OperationOutcome entries)"
    else:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(unrecognised.items()))
        repeated = sum(duplicates.values())
        taken = stats.resources - sum(unrecognised.values()) - repeated
        why = _count(stats.resources, "resource")
        if unrecognised:
            why += f", of types no SDTM domain comes from ({kinds})"
        if repeated:
            why += f"; {repeated} identical {'copy' if repeated == 1 else 'copies'} read once"
        if taken:
            why += f"; {taken} of them taken but giving no SDTM row"
    return f"{src}: nothing to convert: {read}, {why}; nothing was written"


def _check_subjid(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--subjid: `identifier`, `id` or `system:<uri>` (a usage error, exit 2, otherwise)."""
    if value in ("identifier", "id") or (value.startswith("system:") and len(value) > 7):
        return value
    raise click.BadParameter(
        f"{value!r}: give identifier, id or system:<uri> (e.g. system:http://hospital.org/mrn)"
    )


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
    "--max-memory",
    "max_memory",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_MAX_MEMORY_GB,
    show_default=True,
    metavar="GB",
    help="Refuse an input whose conversion would need more memory than this (estimated: 20x the "
    "SDTM files' size, 2x the FHIR files').",
)
@click.option(
    "--study",
    "study",
    metavar="STUDYID",
    default=None,
    help="With --to sdtm, for FHIR written by others without ResearchSubject: the STUDYID, every "
    "Patient a subject (USUBJID = STUDYID-SUBJID).",
)
@click.option(
    "--subjid",
    "subjid",
    metavar="identifier|id|system:URI",
    default="identifier",
    show_default=True,
    callback=_check_subjid,
    help="With --to sdtm, FHIR written by others: which Patient identifier is SUBJID (the first "
    "with a system, the resource id, or that of one system; else the id).",
)
@click.option(
    "--study-drug",
    "study_drugs",
    metavar="CODE|TEXT",
    multiple=True,
    help="With --to sdtm, FHIR written by others: a MedicationAdministration of this medication "
    "(a code of any coding, or the text as written) goes to EX, not CM. Repeatable.",
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
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Processes to convert on, the trial split by subject (default: the cores this process may "
    "use; 1: one process). The output is the same bytes whatever N.",
)
@click.option(
    "--bundle/--no-bundle",
    default=False,
    show_default=True,
    help="SDTM -> FHIR: also write bundle.json, every resource in one transaction Bundle (one "
    "file as large as the NDJSON together; `push` sends the NDJSON in transactions of its own "
    "size and needs no Bundle).",
)
def convert(
    src: Path,
    out: Path,
    target: str,
    validate: bool,
    force: bool,
    max_memory: float,
    study: str | None = None,
    subjid: str = "identifier",
    study_drugs: tuple[str, ...] = (),
    engine: str = "local",
    spark_master: str | None = None,
    workers: int | None = None,
    bundle: bool = False,
) -> None:
    """Convert SRC (SDTM tables or FHIR files) and write the result into DIR, all or nothing.

    SDTM -> FHIR writes DIR/<Type>.ndjson (Bulk Data layout), and with --bundle also
    DIR/bundle.json (the same resources as one transaction Bundle).
    FHIR -> SDTM writes DIR/<domain>.csv; FHIR written by others (alone or beside the adapter's own)
    is mapped profile-free and DIR also gets mapping-report.json and mapping-report.md. Bad input
    exits with 3 and lists every problem; input with nothing to convert exits with 12 and says what
    was read (FHIR written by others: DIR then holds the mapping report only).
    """
    if spark_master is not None and engine != "spark":
        raise click.UsageError("--spark-master goes with --engine spark")
    if workers is not None and engine == "spark":
        raise click.UsageError("--workers goes with the local engine (Spark has its own)")
    if bundle and target == "sdtm":
        raise click.UsageError("--bundle goes with SDTM -> FHIR (leave out --to sdtm)")
    workers = workers if workers is not None else _cores()
    given = [
        name
        for name, value in (
            ("--study", study is not None),
            ("--subjid", subjid != "identifier"),
            ("--study-drug", bool(study_drugs)),
        )
        if value
    ]
    if given and target != "sdtm":
        raise click.UsageError(f"{' and '.join(given)}: only with --to sdtm (FHIR -> SDTM)")
    if given and engine == "spark":
        raise click.UsageError(
            f"{' and '.join(given)}: FHIR written by others is mapped on the local engine only: "
            "leave out --engine spark"
        )
    if study is not None and not study.strip():
        raise click.UsageError("--study: give a STUDYID (not empty)")
    from dataclasses import replace as replace_field

    from adapter.sources import detect
    from mappings.foreign import ForeignOptions

    source = detect(src, want="sdtm" if target == "fhir" else "fhir")  # --to says what SRC is
    source = replace_field(
        source, foreign=ForeignOptions(study=study, subjid=subjid, study_drugs=study_drugs)
    )
    if engine == "spark" or workers == 1:  # with workers: when it falls back to one (below)
        _check_memory(src, source, target, max_memory)  # before anything is read or written
    warnings: list[str] = []
    nothing: CommandError | None = None
    with staged_folder(out, force=force, command="convert", sources=[src]) as staging, gc_paused():
        if engine == "spark":
            summary, warnings = _convert_on_spark(
                src, staging, target, validate, spark_master, bundle
            )
        elif target == "fhir":
            summary = _sdtm_to_fhir(src, source, staging, validate, workers, bundle, max_memory)
        else:
            summary, warnings, nothing = _fhir_to_sdtm(
                src, source, staging, validate, workers, max_memory
            )
    for line in warnings:
        click.echo(line, err=True)
    if nothing is not None:
        raise nothing  # after the report is in place (exit 12)
    first, _, rest = summary.partition("\n")
    click.echo(f"{first} (in {out})" + (f"\n{rest}" if rest else ""))


def _cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else the
    machine's count): the default of --workers."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _convert_on_spark(
    src: Path,
    staging: Path,
    target: str,
    validate: bool,
    master: str | None,
    bundle: bool = False,
) -> tuple[str, list[str]]:
    """`trialfhir convert --engine spark`: what the local engine's `_sdtm_to_fhir` / `_fhir_to_sdtm`
    do (same checks, messages, exit codes and files), with the mapping on Spark. Returns the summary
    line and the warnings.

    Raises:
        click.UsageError: `--validate` (the R4B models run on the local engine only).
        CommandError: as the local engine (bad input 3, nothing converted 12).
    """
    from adapter.engines.spark import fhir_to_sdtm, sdtm_to_fhir, spark_session
    from adapter.fhir_files import FhirFileError, ReadStats
    from adapter.tables import TableError, domain_files, read_trial, write_trial

    if validate:
        raise click.UsageError("--validate runs on the local engine only: leave out --engine spark")
    if target == "fhir":
        try:
            trial = read_trial(src)
        except TableError as exc:
            message = str(exc)
            if src.is_file() or any(src.glob("*.ndjson")):
                message += "\n(SRC looks like FHIR files: add --to sdtm to convert them to SDTM)"
            raise _bad_input(message) from exc
        rows = sum(len(t.rows) for t in trial.values())
        if rows == 0:
            tables = ", ".join(p.name for paths in domain_files(src).values() for p in paths)
            raise CommandError(
                f"{src}: nothing to convert: {_count(len(trial), 'table')} read "
                f"({tables}), all without rows (a header and no rows is an empty domain); "
                "nothing was written",
                EXIT_NOTHING_CONVERTED,
            )
        counts = sdtm_to_fhir(spark_session(master), trial, staging, bundle=bundle)
        summary = f"{rows} rows in {len(trial)} tables -> " + _counts_line(counts, "resources")
        return summary, []
    try:
        result = fhir_to_sdtm(spark_session(master), src)
    except FhirFileError as exc:
        message = str(exc)
        if src.is_dir() and domain_files(src):
            message += "\n(SRC looks like SDTM tables: leave out --to sdtm to convert them to FHIR)"
        raise _bad_input(message) from exc
    trial = result.trial
    if not any(table.rows for table in trial.values()):
        stats = ReadStats(files=result.files, resources=result.resources)
        message = _nothing_from_fhir(src, stats, result.unrecognised, {})
        if result.unrecognised:
            message += (
                "\n(FHIR written by others is mapped profile-free on the local engine only: "
                "leave out --engine spark)"
            )
        raise CommandError(message, EXIT_NOTHING_CONVERTED)
    warnings: list[str] = []
    if result.unrecognised:
        skipped = ", ".join(f"{k} {n}" for k, n in sorted(result.unrecognised.items()))
        warnings.append(f"warning: resources no SDTM domain comes from, not converted: {skipped}")
    write_trial(trial, staging)
    counts = {code: len(table.rows) for code, table in trial.items()}
    summary = f"{result.resources} resources -> " + _counts_line(counts, "rows")
    return summary, warnings


def _looks_like(src: Path) -> str | None:
    """What SRC looks like (`adapter.sources.kind_of`), for the hint when --to says otherwise."""
    from adapter.sources import kind_of

    return kind_of(src)
