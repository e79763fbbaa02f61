"""`trialfhir analyze`: reanalyse a study (E1-E8) and write the report, from an SDTM folder, a FHIR
folder, or a FHIR server.

    trialfhir analyze adapter/studies/dalakas1993 --out out/dalakas1993 [--definition study.json]
    trialfhir analyze pulled/ --out out/ --definition adapter/studies/dalakas1993/study.json
    trialfhir analyze --server http://localhost:8080/fhir --study DALAKAS1993 --out out/
    trialfhir analyze pulled/ --out out/ --definition dalakas1993   # a shipped study's name

Where the trial tables come from is decided in one place: `tables_from_source` (a folder) and
`tables_from_server` (`--server URL --study ID`); each turns its source into a `Trial`.
Errors leave with the exit code of their class (adapter/cli/_common.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from adapter.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_USAGE,
    MANIFEST,
    SECONDS,
    SERVER_URL,
    CommandError,
    check_output_folder,
    client_options,
    reported,
    staged_folder,
    without_credentials,
)

if TYPE_CHECKING:
    from mappings.sdtm import Trial

__all__ = ["analyze", "tables_from_server", "tables_from_source"]


def tables_from_source(src: Path) -> tuple[str, Trial]:
    """The kind of folder ("sdtm" or "fhir") and its trial tables.

    An SDTM folder (`dm.csv`, ... or `.xpt`) is read and checked by `adapter.tables`; otherwise the
    folder's FHIR NDJSON files (or Bundle `.json` files, `study.json` aside) are mapped back to tables.

    Raises:
        TableError, FhirFileError: the folder cannot be read (every problem / the first bad line).
    """
    from adapter.fhir_files import read_resources
    from adapter.tables import domain_files, read_trial
    from mappings.trial import fhir_to_trial

    if domain_files(src):
        return "sdtm", read_trial(src)
    files = sorted(p for p in src.iterdir() if p.is_file())
    ndjson = [p for p in files if p.suffix.lower() == ".ndjson"]
    bundles = [
        p for p in files if p.suffix.lower() == ".json" and p.name not in ("study.json", MANIFEST)
    ]
    chosen = ndjson or bundles
    if not chosen:
        raise click.UsageError(
            f"{src}: neither SDTM tables (dm.csv, ...) nor FHIR files (.ndjson, Bundle .json)"
        )
    resources = (resource for file in chosen for resource in read_resources(file))
    return "fhir", fhir_to_trial(resources)


def tables_from_server(server: str, study: str, token: str | None, timeout: float) -> Trial:
    """The trial tables of a study pulled from a FHIR server by its identifier.

    Raises:
        StudyNotFound, FhirError: from the pull (mapped to exit codes by `reported`).
    """
    from adapter.transfer import pull_study
    from mappings.trial import fhir_to_trial

    options = client_options(token, None, None, None, "RS384", "", timeout, None)
    pulled = pull_study(server, study, client_options=options)
    return fhir_to_trial(pulled.resources)


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
@click.option(
    "--server",
    type=SERVER_URL,
    metavar="URL",
    help="FHIR server base URL (with --study), instead of SRC.",
)
@click.option("--study", "study_id", metavar="ID", help="Study identifier on the server.")
@click.option(
    "--token", envvar="TRIALFHIR_TOKEN", help="Bearer token for --server (or env TRIALFHIR_TOKEN)."
)
@click.option(
    "--timeout", type=SECONDS, default=60.0, show_default=True, help="Seconds per request."
)
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
    token: str | None,
    timeout: float,
    force: bool,
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
    from adapter.analysis import DefinitionError, load_definition, write_outputs
    from adapter.analysis import analyze as analyze_study

    try:
        definition = load_definition(definition_path)
    except DefinitionError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from exc
    if src is not None:
        kind, tables = tables_from_source(src)
        source = f"{kind.upper()} folder {src}"
    else:
        assert server is not None and study_id is not None
        tables = tables_from_server(server, study_id, token, timeout)
        source = f"{without_credentials(server)} (study {study_id})"
    results = analyze_study(tables, definition, source)
    with staged_folder(out_dir, force=force, command="analyze", sources=inputs) as staging:
        paths = [out_dir / p.relative_to(staging) for p in write_outputs(results, staging)]
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
