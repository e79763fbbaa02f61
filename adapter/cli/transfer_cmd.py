"""`trialfhir push`: a trial to a FHIR server (`trialfhir pull`, the way back: `pull_cmd.py`).

    trialfhir push adapter/studies/dalakas1993 --server http://localhost:8080/fhir

Exit codes per error class: see adapter/cli/_common.py and docs/cli.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from adapter.cli.export_cmd import EXIT_INTERRUPTED
from adapter.uploads import DEFAULT_CONCURRENCY, MAX_TRANSACTION_ENTRIES

if TYPE_CHECKING:
    from adapter.uploads import ForeignSummary


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
    help="How each of the adapter's own resources is written; all three are safe to repeat.",
)
@click.option(
    "--keep-ids",
    is_flag=True,
    help="Write resources of others with their own ids (PUT Type/id): this can overwrite what "
    "others stored under those ids. Default: created, the server assigns the ids.",
)
@click.option(
    "--max-transaction-entries",
    type=click.IntRange(1, 1_000_000),
    default=MAX_TRANSACTION_ENTRIES,
    show_default=True,
    help="Entries of one transaction that references tie together (it cannot be split); more is "
    "refused before anything is sent.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Transactions in flight at once, in dependency waves (what others refer to is committed "
    "first). FHIR written by others goes one at a time whatever this says.",
)
@reported
def push(
    src: Path,
    server: str,
    chunk_size: int,
    mode: str,
    keep_ids: bool,
    max_transaction_entries: int,
    concurrency: int,
    **auth: Any,
) -> None:
    """Upload SRC (an SDTM folder, or FHIR NDJSON/Bundles) to the server.

    The adapter's own resources go as conditional transactions: pushing the same trial twice creates
    nothing new. FHIR written by others: a transaction Bundle is sent as it is (its urn:uuid references
    intact); other resources are created (the server assigns ids, references rewritten), or written
    with their ids with --keep-ids.
    """
    from adapter.client import FhirClient
    from adapter.sources import detect
    from adapter.transfer import push as push_trial
    from adapter.uploads import ForeignPlan, Upload, read_upload

    options = client_options(**auth)  # a bad key or auth option fails before the source is read
    source = detect(src)
    resources: Upload | Iterable[dict[str, Any]]
    # FHIR files are read and checked whole before the server is asked anything
    resources = read_upload(src) if source.kind == "fhir" else source.resources()
    if isinstance(resources, Upload) and resources.foreign:
        ForeignPlan(
            resources,
            chunk_size=chunk_size,
            mode=mode,  # type: ignore[arg-type]
            keep_ids=keep_ids,
            max_transaction_entries=max_transaction_entries,
        ).check()  # every problem, before the server is asked anything
    with FhirClient(server, **options) as client, progress_bar(None, "push") as bar:
        client.capabilities()
        try:
            summary = push_trial(
                client,
                resources,
                chunk_size=chunk_size,
                mode=mode,  # type: ignore[arg-type]
                keep_ids=keep_ids,
                max_transaction_entries=max_transaction_entries,
                progress=lambda sent: bar.update(sent - bar.n),
                concurrency=concurrency,
            )
        except KeyboardInterrupt as exc:
            notes = getattr(exc, "__notes__", [])
            click.echo("\n".join(["push interrupted", *notes]), err=True)
            raise SystemExit(EXIT_INTERRUPTED) from None
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
    for line in push_notes(summary):
        click.echo(f"  {line}")


PATH_NAMES = {
    "conditional": "conditional on the adapter's identifiers",
    "create": "created, ids assigned by the server",
    "create-if-none-exist": "created unless the server holds a match (their batch's ifNoneExist)",
    "update-by-id": "written with their own ids (--keep-ids)",
    "as-is": "in transaction Bundles sent as they are",
}


def push_notes(summary: ForeignSummary) -> list[str]:
    """What the summary says beyond the counts: the paths taken, the references, what was sent
    whole, what was not uploaded."""
    notes: list[str] = []
    if set(summary.paths) - {"conditional"}:
        paths = ", ".join(f"{n} {PATH_NAMES[p]}" for p, n in sorted(summary.paths.items()) if n)
        notes.append(f"paths: {paths}; sent in {summary.bundles} transaction(s)")
    if summary.references_rewritten:
        notes.append(
            f"{summary.references_rewritten} references between uploaded resources rewritten "
            "(urn:uuid: in a transaction, the server's id across transactions)"
        )
    if summary.references_outside:
        notes.append(
            f"{summary.references_outside} references to resources not in the upload left as they are"
        )
    if summary.references_conditional:
        notes.append(
            f"{summary.references_conditional} conditional references left for the server to resolve"
        )
    for whole in summary.sent_whole:
        notes.append(f"sent whole, larger than --chunk-size (references tie it together): {whole}")
    if summary.outcomes_skipped:
        notes.append(
            f"{summary.outcomes_skipped} OperationOutcome entries of searchsets (server messages) "
            "not uploaded"
        )
    return notes
