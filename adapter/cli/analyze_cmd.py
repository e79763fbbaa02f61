"""`trialfhir analyze`: reanalyse a study (E1-E8) and write the report, from an SDTM folder.

    trialfhir analyze fixtures/dalakas1993 --out out/dalakas1993 [--definition study.json]

Where the trial tables come from is decided in one place, `tables_from_source` (a folder) and
`tables_from_server` (`--server URL --study ID`); those two functions are the hook to extend when
FHIR folders and server pulls become available. Everything else uses only `adapter.analysis`.
"""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from adapter.analysis import DefinitionError, load_definition, write_outputs
from adapter.analysis import analyze as analyze_study

__all__ = ["analyze", "run", "tables_from_server", "tables_from_source"]

_FHIR_SUFFIXES = (".ndjson", ".json")


def tables_from_source(src: Path) -> dict[str, pd.DataFrame]:
    """The trial tables of a folder: SDTM CSV/XPT files now (FHIR NDJSON/Bundle folders: to come).

    Raises:
        click.ClickException: the folder cannot be read (every problem listed).
    """
    from adapter.tables import TableError, domain_files, read_trial, trial_frames

    if not domain_files(src) and any(
        p.suffix.lower() in _FHIR_SUFFIXES and p.name != "study.json" for p in src.iterdir()
    ):
        raise click.ClickException(
            f"{src}: looks like a FHIR folder; reading FHIR folders is not available yet "
            "(pass an SDTM folder)"
        )
    try:
        return trial_frames(read_trial(src))
    except TableError as exc:
        raise click.ClickException(str(exc)) from exc


def tables_from_server(server: str, study: str) -> dict[str, pd.DataFrame]:
    """The trial tables of a study pulled from a FHIR server (hook for the transfer layer).

    Raises:
        click.UsageError: until the pull + mapping layers are wired in here.
    """
    raise click.UsageError(
        f"--server/--study: pulling study {study!r} from a FHIR server is not available yet "
        "in `analyze`; export the study to an SDTM folder and pass that folder"
    )


def _default_definition(src: Path | None) -> Path:
    if src is not None and (src / "study.json").is_file():
        return src / "study.json"
    raise click.UsageError("no study definition: pass --definition FILE (or put study.json in SRC)")


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
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for results.json, report.md, report.html, figures/ and datasets/.",
)
@click.option(
    "--definition",
    "definition_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Study definition JSON (default: SRC/study.json).",
)
@click.option("--server", help="FHIR server base URL (with --study).")
@click.option("--study", "study_id", help="Study id on the FHIR server (with --server).")
def analyze(
    src: Path | None,
    out_dir: Path,
    definition_path: Path | None,
    server: str | None,
    study_id: str | None,
) -> None:
    """Reanalyse a study's endpoints (E1-E8) from SRC and write the report to --out."""
    if (server is None) != (study_id is None):
        raise click.UsageError("--server and --study go together")
    if server is not None and src is not None:
        raise click.UsageError("give either SRC or --server/--study, not both")
    if server is None and src is None:
        raise click.UsageError("missing SRC (an SDTM folder) or --server/--study")
    if src is not None:
        tables = tables_from_source(src)
        source = str(src)
    else:
        assert server is not None and study_id is not None
        tables = tables_from_server(server, study_id)
        source = f"{server} (study {study_id})"
    try:
        definition = load_definition(definition_path or _default_definition(src))
    except DefinitionError as exc:
        raise click.ClickException(str(exc)) from exc
    results = analyze_study(tables, definition, source)
    paths = write_outputs(results, tables, out_dir)
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


#: The command group also registers `run` from this module; it is the same command for now.
run = analyze
