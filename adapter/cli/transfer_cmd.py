"""`trialfhir push`: a trial to a FHIR server (`trialfhir pull`, the way back: `pull_cmd.py`).

    trialfhir push adapter/studies/dalakas1993 --server http://localhost:8080/fhir

Exit codes per error class: see adapter/cli/_common.py and docs/cli.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adapter.cli._common import (
    EXIT_UNEXPECTED,
    CommandError,
    client_options,
    exit_code_for,
    progress_bar,
    reported,
    server_options,
    without_credentials,
)


def _with_notes(exc: Exception) -> Exception:
    """A library error stopped a push half-way: its message and the note the upload added (which
    chunks were committed, whether re-running completes the job), with the exit code of its class.
    Anything else is raised as it is (a bug keeps its traceback)."""
    code = exit_code_for(exc)
    notes = getattr(exc, "__notes__", [])
    if code == EXIT_UNEXPECTED or not notes:
        return exc
    return CommandError("\n".join([str(exc), *notes]), code)


@click.command(name="push")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@server_options
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 5000),
    default=50,
    show_default=True,
    help="Entries per transaction (50 was fastest on HAPI: docs/performance.md).",
)
@click.option(
    "--mode",
    type=click.Choice(["conditional-update", "conditional-create", "update"]),
    default="conditional-update",
    show_default=True,
    help="How each entry is written; all three are safe to repeat.",
)
@reported
def push(src: Path, server: str, chunk_size: int, mode: str, **auth: Any) -> None:
    """Upload SRC (an SDTM folder, or FHIR NDJSON/Bundles) to the server as conditional transactions.

    Pushing the same trial twice creates nothing new.
    """
    from adapter.client import FhirClient
    from adapter.sources import detect
    from adapter.transfer import push as push_trial

    options = client_options(**auth)  # a bad key or auth option fails before the source is read
    source = detect(src)
    resources = source.resources()
    with FhirClient(server, **options) as client, progress_bar(None, "push") as bar:
        client.capabilities()
        try:
            summary = push_trial(
                client,
                resources,
                chunk_size=chunk_size,
                mode=mode,  # type: ignore[arg-type]
                progress=lambda sent: bar.update(sent - bar.n),
            )
        except Exception as exc:
            failure = _with_notes(exc)
            if failure is exc:
                raise
            raise failure from exc
    counts = summary.as_dict()
    total = sum(sum(kinds.values()) for kinds in counts.values())
    shown = without_credentials(server)
    click.echo(f"pushed {total} resources from {source.label} to {shown}")
    for resource_type, outcomes in sorted(counts.items()):
        listed = ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items()))
        click.echo(f"  {resource_type}: {listed}")
