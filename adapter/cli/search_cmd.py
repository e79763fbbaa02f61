"""`trialfhir search`: a FHIR search as a tidy CSV table (subject, code, value as written, unit, date,
source), through the rules of the profile-free mapping (`adapter.search_tables`).

    trialfhir search 'Observation?code=http://loinc.org|29463-7' --server URL --out weights.csv

Exit codes per error class: see adapter/cli/_common.py and docs/cli.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adapter.cli._common import (
    EXIT_NOTHING_CONVERTED,
    SECONDS,
    CommandError,
    client_options,
    formula_like_cells,
    progress_bar,
    reported,
    server_options,
)


@click.command(name="search")
@click.argument("query", metavar="'Type?query'")
@server_options
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="CSV file to write (refused if it exists, unless --force).",
)
@click.option("--force", is_flag=True, help="Replace --out when it exists.")
@click.option(
    "--max-duration",
    type=SECONDS,
    default=21600.0,
    show_default=True,
    help="Seconds the whole search may take.",
)
@reported
def search(
    query: str, server: str, out: Path, force: bool, max_duration: float, **auth: Any
) -> None:
    """Write the resources a search finds (Observation, Condition, MedicationRequest) as a tidy CSV
    table: one row per value, through the same rules as the profile-free FHIR -> SDTM mapping."""
    from adapter.cohorts import parse_search
    from adapter.search_tables import CsvOutputRefused, check_query, tabulate_search

    parsed = check_query(parse_search(query))  # usage errors (exit 2) before anything else
    options = client_options(**auth)
    if out.exists() and not force:  # checked again when written; said before the server is asked
        raise CsvOutputRefused(out, "exists; pass --force to replace it (nothing was changed)")
    with progress_bar(None, "search") as bar:
        table = tabulate_search(
            server, parsed, client_options=options, max_duration=max_duration, progress=bar.update
        )
    kind = parsed.resource_type
    if not table.rows:
        reasons = "; ".join(f"{n} {r}" for r, n in sorted(table.left_out.items()))
        raise CommandError(
            f"nothing to write: the search matched {table.matched} {kind} resources and none gave "
            f"a row{f' ({reasons})' if reasons else ''}; {out} was not written",
            EXIT_NOTHING_CONVERTED,
        )
    written = table.write_csv(out, force=force)
    subjects = len({row[0] for row in table.rows if row[0]})
    click.echo(
        f"wrote {len(table.rows)} rows ({subjects} subjects) from {table.tabulated} of the "
        f"{table.matched} {kind} resources matched into {written}"
    )
    for reason, n in sorted(table.left_out.items()):
        click.echo(f"  left out: {n} {kind}: {reason}")
    for note, n in sorted(table.notes.items()):
        click.echo(f"  note: {n} {kind}: {note}")
    cells = formula_like_cells(written)
    if cells:
        click.echo(
            f"note: {cells} cells start with =, +, @ or - (not a number) and are kept as written; "
            "a spreadsheet may run them as formulas (docs/files.md)",
            err=True,
        )
