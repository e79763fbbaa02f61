"""`trialfhir analyze`: reanalyse a study (E1-E8) and write the report, from an SDTM folder, a FHIR
folder, or a FHIR server.

    trialfhir analyze adapter/studies/dalakas1993 --out out/dalakas1993 [--definition study.json]
    trialfhir analyze pulled/ --out out/ --definition adapter/studies/dalakas1993/study.json
    trialfhir analyze --server http://localhost:8080/fhir --study DALAKAS1993 --out out/
    trialfhir analyze pulled/ --out out/ --definition dalakas1993   # a shipped study's name

What SRC is (SDTM or FHIR) is decided by `adapter.sources`, which also reads it (or pulls the study
from `--server`, with every server option of push and pull) into a `Trial`.
Errors leave with the exit code of their class (adapter/cli/_common.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adapter.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_USAGE,
    CommandError,
    check_output_folder,
    client_options,
    reported,
    server_options,
    staged_folder,
    without_credentials,
)

__all__ = ["analyze"]


def _definition(given: str | None, src: Path | None, study_id: str | None) -> Path:
    """The definition file: --definition (a name or a file), SRC/study.json, or the shipped study of
    --study (`adapter.studies.choose_definition`); otherwise exit 2 with one line naming the option."""
    from adapter.studies import DefinitionNotFound, choose_definition

    try:
        return choose_definition(given, src, study_id)
    except DefinitionNotFound as exc:
        hint = "" if given is not None else ": pass --definition NAME or FILE (trialfhir studies)"
        raise CommandError(f"no study definition: {exc}{hint}", EXIT_USAGE) from exc


@click.command("analyze")
@click.argument(
    "src",
    required=False,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder for results.json, report.md, report.html, figures/ and datasets/.",
)
@click.option(
    "--definition",
    "definition_arg",
    metavar="NAME|FILE",
    help="Study definition: a shipped study's name (trialfhir studies) or a JSON file "
    "(default: SRC/study.json, or the shipped study of --study).",
)
@server_options(required=False, server_help="FHIR server base URL (with --study), instead of SRC.")
@click.option("--study", "study_id", metavar="ID", help="Study identifier on the server.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace --out when it holds an earlier trialfhir output (and nothing else).",
)
@reported
def analyze(
    src: Path | None,
    out_dir: Path,
    definition_arg: str | None,
    server: str | None,
    study_id: str | None,
    force: bool,
    **auth: Any,
) -> None:
    """Reanalyse a study's endpoints (E1-E8) from SRC (SDTM or FHIR folder) or a FHIR server, and
    write the report to --out."""
    if (server is None) != (study_id is None):
        raise click.UsageError("--server and --study go together")
    if server is not None and src is not None:
        raise click.UsageError("give either SRC or --server/--study, not both")
    if server is None and src is None:
        raise click.UsageError("missing SRC (an SDTM or FHIR folder) or --server/--study")
    definition_path = _definition(definition_arg, src, study_id)
    inputs = [src, definition_path]
    check_output_folder(out_dir, force, inputs)  # before anything is read or pulled
    from adapter.sources import detect, kind_of, on_server

    if src is not None:
        if kind_of(src) is None:
            raise click.UsageError(
                f"{src}: neither SDTM tables (dm.csv, ...) nor FHIR files (.ndjson, Bundle .json)"
            )
        source = detect(src)
    else:
        assert server is not None and study_id is not None
        options = client_options(**auth)  # a bad key or auth option fails before anything is read
        source = on_server(server, study_id, options, without_credentials(server))
    from adapter.analysis import DefinitionError, load_definition, write_outputs
    from adapter.analysis import analyze as analyze_study

    try:
        definition = load_definition(definition_path)
    except DefinitionError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from exc
    if source.kind == "fhir" and source.foreign.study is None:
        # FHIR written by others without ResearchSubject: its Patients are the definition's study's
        # subjects (docs/foreign-fhir.md, "analyze")
        from dataclasses import replace

        from mappings.foreign import ForeignOptions

        source = replace(source, foreign=ForeignOptions(study=definition.study_id))
    mapping = None
    if (
        source.kind == "fhir"
    ):  # FHIR written by others is accounted for as `convert` accounts for it
        reading = source.read_fhir()
        trial, mapping = reading.trial, reading.mapping
    else:
        trial = source.trial()
    results = analyze_study(trial, definition, source.label)
    with staged_folder(out_dir, force=force, command="analyze", sources=inputs) as staging:
        paths = [out_dir / p.relative_to(staging) for p in write_outputs(results, staging)]
        if mapping is not None:
            from adapter.foreign import write_report

            paths += [out_dir / p.name for p in write_report(mapping.report, staging)]
    if mapping is not None:
        from adapter.cli.convert_cmd import foreign_summary

        click.echo("\n".join(foreign_summary(mapping.report)))
    results.require_computable()  # exit 13 (after writing the report), never "0 of 0 matched"
    checks = [
        flag
        for endpoint in results.endpoints.values()
        for flag in endpoint.agreement().values()
        if flag is not None
    ]
    label = "RECONSTRUCTED cohort, " if results.reconstructed else ""
    click.echo(
        f"{results.study} ({label}{len(results.endpoints)} endpoints): "
        f"{sum(checks)} of {len(checks)} published figures matched by the reanalysis"
    )
    by_name = {p.name: p for p in paths}
    click.echo(f"Report: {by_name['report.html']}")
    click.echo(f"        {by_name['report.md']}")
    click.echo(f"Results: {by_name['results.json']}")
    if mapping is not None:
        click.echo(f"Mapping: {by_name['mapping-report.md']}")
