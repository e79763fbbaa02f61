"""`trialfhir run`: the whole job on the bundled (reconstructed) cohort, with or without a server.

    trialfhir run                                    # no server: through a local FHIR folder
    trialfhir run --server http://localhost:8080/fhir --out out/

Steps: read and check the SDTM tables -> map them to FHIR -> write them to a local FHIR folder, or push
them to the server as conditional transactions -> read them back (from the folder, or pulled from the
server by the study identifier) -> map back to SDTM and compare with the input cell by cell -> analyse
E1-E8 -> write the report. Everything lands in --out at the end (all or nothing); an earlier output
there is replaced only with --force and only when its manifest accounts for everything in it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from adapter.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    SECONDS,
    SERVER_URL,
    CommandError,
    client_options,
    progress_bar,
    reported,
    staged_folder,
    without_credentials,
)


def bundled_cohort() -> Path:
    """The reconstructed Dalakas 1993 cohort shipped in the package (SDTM CSVs + study.json)."""
    from adapter.studies import BUNDLED, shipped_study

    return shipped_study(BUNDLED).folder


def table_differences(before: Any, after: Any, limit: int = 20) -> list[str]:
    """Where two trials differ (domain, column list, row count, first differing cells); [] when equal.
    Cells are compared as text; only positions are named, never values (they may be patient data)."""
    found: list[str] = []
    for code in sorted(set(before) | set(after)):
        if code not in before or code not in after:
            found.append(f"{code}: only on one side")
            continue
        a, b = before[code], after[code]
        if a.columns != b.columns:
            found.append(f"{code}: columns differ")
        if len(a.rows) != len(b.rows):
            found.append(f"{code}: {len(a.rows)} rows in, {len(b.rows)} rows back")
            continue
        for number, (row_a, row_b) in enumerate(zip(a.rows, b.rows, strict=True), start=1):
            for column in a.columns:
                if row_a.get(column, "") != row_b.get(column, ""):
                    found.append(f"{code} row {number}, {column}: differs")
                    if len(found) >= limit:
                        return found
    return found


def _step(number: int, text: str) -> None:
    click.echo(f"[{number}/5] {text}", err=True)


@click.command(name="run")
@click.option(
    "--server",
    type=SERVER_URL,
    metavar="URL",
    help="Go through this FHIR server (push, then pull back) instead of a local folder.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("trialfhir-out"),
    show_default=True,
    help="Where the report and the intermediate folders go.",
)
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Another SDTM folder with a study.json (default: the bundled reconstructed cohort).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace --out when it holds an earlier trialfhir output (and nothing else).",
)
@click.option(
    "--token", envvar="TRIALFHIR_TOKEN", help="Bearer token for --server (or env TRIALFHIR_TOKEN)."
)
@click.option("--timeout", type=SECONDS, default=60.0, show_default=True)
@reported
def run(
    server: str | None,
    out: Path,
    source: Path | None,
    force: bool,
    token: str | None,
    timeout: float,
) -> None:
    """The bundled cohort -> FHIR -> (a server, or a local folder) -> back -> E1-E8 -> report."""
    from adapter.analysis import DefinitionError, analyze, load_definition, write_outputs
    from adapter.fhir_files import ReadStats, assemble, read_resources, write_ndjson
    from adapter.tables import read_trial, write_trial
    from mappings.trial import trial_to_fhir

    started = time.perf_counter()
    cohort = source or bundled_cohort()
    if not (cohort / "study.json").is_file():
        raise CommandError(
            f"--source {cohort}: no study.json there (the study definition `run` analyses with; "
            "see docs/analysis.md)",
            EXIT_USAGE,
        )
    try:  # a broken definition fails before anything is written or sent
        definition = load_definition(cohort / "study.json")
    except DefinitionError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from exc
    with staged_folder(out, force=force, command="run", sources=[cohort]) as staging:
        _step(1, f"reading the SDTM tables in {cohort}")
        trial = read_trial(cohort)
        rows = sum(len(t.rows) for t in trial.values())
        click.echo(f"      {rows} rows in {len(trial)} tables", err=True)

        fhir_dir = staging / "fhir"
        if server is None:
            _step(2, f"mapping to FHIR into {out / 'fhir'}")
            with progress_bar(None, "SDTM -> FHIR") as bar:
                counts = write_ndjson(_counted(trial_to_fhir(trial), bar), fhir_dir)
            click.echo(f"      {sum(counts.values())} resources of {len(counts)} types", err=True)
            _step(3, "reading the FHIR folder back")
            stats = ReadStats()  # a refusal names file and line, as convert's does
            resources = read_resources(fhir_dir, stats)
            origin = f"FHIR folder {out / 'fhir'}"
        else:
            from adapter.client import FhirClient
            from adapter.transfer import pull_study, push

            options = client_options(token, None, None, None, "RS384", "", timeout, None)
            shown = without_credentials(server)
            _step(2, f"pushing to {shown} as conditional transactions")
            with FhirClient(server, **options) as client, progress_bar(None, "push") as bar:
                client.capabilities()
                summary = push(
                    client, trial_to_fhir(trial), progress=lambda n: bar.update(n - bar.n)
                )
            pushed = summary.as_dict()
            click.echo(
                f"      {sum(sum(v.values()) for v in pushed.values())} resources written", err=True
            )
            studyid = next(iter(next(iter(trial.values())).rows), {}).get("STUDYID", "")
            _step(3, f"pulling study {studyid} back from the server")
            with progress_bar(None, "pull") as bar:
                pulled = pull_study(server, studyid, client_options=options, progress=bar.update)
            write_ndjson(pulled.resources, fhir_dir)
            stats, resources = ReadStats(), iter(pulled.resources)
            origin = f"{shown} (study {studyid})"

        _step(4, "mapping back to SDTM and comparing with the input")
        back = assemble(resources, stats).tables()
        write_trial(back, staging / "sdtm")
        differences = table_differences(trial, back)
        if differences:
            listed = "\n".join(f"  {d}" for d in differences)
            raise CommandError(f"the round trip changed the tables:\n{listed}", EXIT_UNEXPECTED)
        click.echo(f"      round trip identical: {rows} rows, every cell as written", err=True)

        _step(5, "reanalysing endpoints E1-E8 and writing the report")
        results = analyze(back, definition, origin)
        paths = write_outputs(results, staging / "report")
    report = out / "report" / "report.html"
    names = {p.name for p in paths}
    click.echo(
        f"Done in {time.perf_counter() - started:.1f} s. Reanalysis of {results.study} from {origin}."
    )
    if "report.html" in names:
        click.echo(f"Report: {report}")
    click.echo(f"Results: {out / 'report' / 'results.json'}")


def _counted(resources: Any, bar: Any) -> Any:
    for resource in resources:
        bar.update(1)
        yield resource
