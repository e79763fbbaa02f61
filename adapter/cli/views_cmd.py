"""`trialfhir views --out DIR`: the SDTM domains as SQL-on-FHIR v2 ViewDefinitions, with the SQL step
each domain needs beyond its views, written into DIR (all or nothing, like every output folder).

    trialfhir views --out views/
    views/sdtm_vs.ViewDefinition.json ... views/vs.sql ... views/domains.json

How to run them on a SQL-on-FHIR engine, and which columns come out exact: docs/views.md.
Exit codes: 0 done, 2 usage, 11 DIR refused (docs/cli.md).
"""

from __future__ import annotations

from pathlib import Path

import click

from adapter.cli._common import staged_folder

__all__ = ["views"]


@click.command(name="views")
@click.option(
    "--out",
    "out",
    required=True,
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Folder to write: new or empty, or an earlier trialfhir output with --force.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace DIR when it holds an earlier trialfhir output (and nothing else).",
)
def views(out: Path, force: bool) -> None:
    """Write one SQL-on-FHIR v2 ViewDefinition per SDTM domain (DM: three), the SQL step of each
    domain (joins on the subject, column and row order) and domains.json (each column's exactness)."""
    from adapter.views import domains, write_views

    with staged_folder(out, force=force, command="views") as staging:
        written = write_views(staging)
    count = sum(1 for p in written if p.name.endswith(".ViewDefinition.json"))
    click.echo(
        f"{count} ViewDefinitions and {len(domains())} SQL steps for {len(domains())} domains (in {out})"
    )
