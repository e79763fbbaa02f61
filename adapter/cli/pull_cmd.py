"""`trialfhir pull`: a study, patients, a Group's members or any searches, from a server into a FHIR
folder (NDJSON per type, all or nothing).

    trialfhir pull --server URL --study DALAKAS1993 --out pulled/ [--all-events]
    trialfhir pull --server URL --patient p1,p2 --patient p3 --out pulled/ [--type Observation,...]
    trialfhir pull --server URL --group cohort-1 --out pulled/
    trialfhir pull --server URL --search 'Observation?code=http://loinc.org|29463-7' \
        --include Observation:patient --out pulled/

Exit codes per error class: see adapter/cli/_common.py and docs/cli.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adapter.cli._common import (
    EXIT_USAGE,
    SECONDS,
    CommandError,
    check_output_folder,
    client_options,
    progress_bar,
    reported,
    server_options,
    staged_folder,
    without_credentials,
)

SHOWN_MESSAGES = 5


def _split(values: tuple[str, ...]) -> list[str]:
    """Repeated options whose values may also be comma lists (`--patient a,b --patient c`)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _selection(
    study: str | None,
    patients: list[str],
    group: str | None,
    searches: tuple[str, ...],
    all_events: bool,
    include: tuple[str, ...],
    revinclude: tuple[str, ...],
    types: list[str] | None,
) -> str:
    """Which of --study, --patient, --group, --search was chosen (exactly one), the others' options
    checked against it; a usage error (exit 2) otherwise."""
    chosen = [
        name
        for name, given in (
            ("--study", study),
            ("--patient", patients),
            ("--group", group),
            ("--search", searches),
        )
        if given
    ]
    if len(chosen) != 1:
        raise CommandError(
            "pull takes exactly one of --study, --patient, --group or --search"
            + (f" (not {' and '.join(chosen)})" if chosen else ""),
            EXIT_USAGE,
        )
    misplaced = [
        f"{option} goes with {home}"
        for option, given, home in (
            ("--all-events", all_events, "--study"),
            ("--include", include, "--search"),
            ("--revinclude", revinclude, "--search"),
            ("--type", types is not None, "--patient or --group"),
        )
        if given and chosen[0] not in home.split(" or ")
    ]
    if misplaced:
        raise CommandError("; ".join(misplaced), EXIT_USAGE)
    return chosen[0]


@click.command(name="pull")
@server_options
@click.option(
    "--study", metavar="ID", help="STUDYID, or system|value of the ResearchStudy identifier."
)
@click.option(
    "--all-events",
    is_flag=True,
    help="With --study: keep every event of the study's patients, not only those linked to it.",
)
@click.option(
    "--patient",
    "patients",
    multiple=True,
    metavar="ID[,ID...]",
    help="Patient ids (repeatable, or comma-separated): Patient/$everything where offered.",
)
@click.option("--group", metavar="ID", help="A Group id: its active Patient members, as --patient.")
@click.option(
    "--search",
    "searches",
    multiple=True,
    metavar="'Type?query'",
    help="A search relative to the server, e.g. 'Observation?code=http://loinc.org|29463-7' "
    "(repeatable).",
)
@click.option(
    "--include",
    multiple=True,
    metavar="Type:param",
    help="With --search: _include (repeatable).",
)
@click.option(
    "--revinclude",
    multiple=True,
    metavar="Type:param",
    help="With --search: _revinclude (repeatable).",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="T[,T...]",
    help="With --patient or --group: only these resource types (and the Patients).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="FHIR folder to write (NDJSON per type).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace --out when it holds an earlier trialfhir output (and nothing else).",
)
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option(
    "--max-duration",
    type=SECONDS,
    default=21600.0,
    show_default=True,
    help="Seconds the whole pull may take (--patient, --group, --search).",
)
@reported
def pull(
    server: str,
    study: str | None,
    all_events: bool,
    patients: tuple[str, ...],
    group: str | None,
    searches: tuple[str, ...],
    include: tuple[str, ...],
    revinclude: tuple[str, ...],
    types: tuple[str, ...],
    out: Path,
    force: bool,
    concurrency: int,
    max_duration: float,
    **auth: Any,
) -> None:
    """Pull a study (and everything linked to it), patients, a Group's members or the resources of
    searches into a FHIR folder (all or nothing)."""
    from adapter import cohorts

    patient_ids = _split(patients)
    type_list = _split(types) if types else None
    chosen = _selection(
        study, patient_ids, group, searches, all_events, include, revinclude, type_list
    )
    # What to pull is checked before the server is asked anything (usage errors, exit 2).
    queries = [cohorts.parse_search(text, position=n) for n, text in enumerate(searches, start=1)]
    cohorts.check_includes(include, "--include")
    cohorts.check_includes(revinclude, "--revinclude")
    cohorts.check_patient_ids(patient_ids)
    cohorts.check_types(type_list)
    options = client_options(**auth)
    check_output_folder(out, force)  # before asking the server anything
    if chosen == "--study":
        assert study is not None
        _pull_study(server, study, all_events, out, force, concurrency, options)
        return
    with progress_bar(None, "pull") as bar:
        result = cohorts.pull_cohort(
            server,
            patients=patient_ids,
            group=group,
            searches=queries,
            include=include,
            revinclude=revinclude,
            types=type_list,
            concurrency=concurrency,
            max_duration=max_duration,
            client_options=options,
            progress=bar.update,
        )
    with staged_folder(out, force=force, command="pull") as staging:
        from adapter.fhir_files import write_ndjson

        write_ndjson(result.resources, staging)
    click.echo(f"pulled {len(result.resources)} resources into {out}")
    for resource_type, n in result.counts.items():
        click.echo(f"  {resource_type}: {n}")
    for note in result.notes:
        click.echo(f"  ({note})")
    _say_left_out(result.left_out)
    if result.versions_replaced:
        click.echo(
            f"  ({result.versions_replaced} resources came in two versions, changed while pulled: "
            "the newer kept)"
        )
    if result.server_messages:
        click.echo(
            f"note: the server sent {len(result.server_messages)} OperationOutcome issues "
            "with its answers:",
            err=True,
        )
        for issue in result.server_messages[:SHOWN_MESSAGES]:
            click.echo(
                f"  {issue.severity} {issue.code}: {without_credentials(issue.text)}", err=True
            )


def _pull_study(
    server: str,
    study: str,
    all_events: bool,
    out: Path,
    force: bool,
    concurrency: int,
    options: dict[str, Any],
) -> None:
    from adapter.fhir_files import write_ndjson
    from adapter.transfer import NOT_LINKED, OTHER_STUDY, pull_study

    with progress_bar(None, "pull") as bar:
        result = pull_study(
            server,
            study,
            concurrency=concurrency,
            client_options=options,
            progress=bar.update,
            all_events=all_events,
        )
    with staged_folder(out, force=force, command="pull") as staging:
        write_ndjson(result.resources, staging)
    click.echo(f"pulled {len(result.resources)} resources into {out}")
    for resource_type, n in result.counts.items():
        click.echo(f"  {resource_type}: {n}")
    _say_left_out(result.left_out)
    if not all_events and (NOT_LINKED in result.left_out or OTHER_STUDY in result.left_out):
        click.echo("  (--all-events keeps every event of the study's patients)")


def _say_left_out(left_out: dict[str, int]) -> None:
    for reason, count in sorted(left_out.items()):
        click.echo(f"  left out: {count} {reason}")
