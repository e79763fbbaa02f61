"""`trialfhir export`: a FHIR Bulk Data `$export` from a server into an NDJSON folder, resumable.

    trialfhir export --server https://fhir.example.org/fhir --out export/ --type Patient,Observation
    trialfhir convert export/ --to sdtm --out sdtm/

While the job runs and its files download, everything is kept in a job folder beside DIR,
`.<DIR name>.export-job/` (the job's status URL in `job.json`, the server's manifest, the files as
they arrive). Ctrl-C, a lost connection or a time limit leave it there: the same command resumes the
job (polls the kept status URL, keeps the files already downloaded); `--cancel` sends DELETE to the
status URL and removes the job folder. When every file is in, DIR is written all or nothing as every
command's output folder (adapter/cli/_common.staged_folder) and the job folder is removed.
Layout and exit codes: docs/cli.md.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import click

from adapter.cli._common import (
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    SECONDS,
    CommandError,
    OutputRefused,
    check_output_folder,
    client_options,
    exit_code_for,
    progress_bar,
    reported,
    server_options,
    staged_folder,
    without_credentials,
)

EXIT_INTERRUPTED = 130
EXPORT_FILE = "export.json"
SHOWN_ISSUES = 5


def job_folder(out: Path) -> Path:
    """The folder a job for --out DIR is kept in while it runs: `.<DIR name>.export-job` beside DIR."""
    target = out.absolute()
    return target.parent / f".{target.name}.export-job"


class _Display:
    """The progress shown on stderr (tqdm, silent when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def __enter__(self) -> _Display:
        self.bar = progress_bar(None, "export: kick-off")
        self.bar.unit = " files"
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    # ExportEvents
    def kicked_off(self, job: Any) -> None:
        self.bar.set_description_str("export: job started")

    def resumed(self, job: Any) -> None:
        self.bar.set_description_str("export: job resumed")

    def pending(self, progress: str | None, wait: float) -> None:
        self.bar.set_description_str("export: waiting for the server")
        self.bar.set_postfix_str(f"{progress or 'in progress'} (next look in {wait:.0f} s)")

    def complete(self, manifest: Any) -> None:
        self.bar.reset(total=len(manifest.files))
        self.bar.set_description_str("export: downloading")
        self.bar.set_postfix_str("")
        self._bytes = 0

    def received(self, size: int) -> None:
        self._bytes = getattr(self, "_bytes", 0) + size
        if self._bytes % (1 << 22) < size:  # about every 4 MiB
            self.bar.set_postfix_str(f"{self._bytes / 1048576:.0f} MiB")

    def downloaded(self, name: str, resources: int) -> None:
        self.bar.update(1)


def _request(
    group: str | None,
    patient: bool,
    types: str | None,
    since: str | None,
    type_filters: tuple[str, ...],
    output_format: str,
) -> Any:
    from adapter.client import ExportRequest

    if group is not None and patient:
        raise CommandError("choose --group ID or --patient, not both", EXIT_USAGE)
    names = tuple(t.strip() for t in (types or "").split(",") if t.strip())
    request = ExportRequest(
        level="group" if group is not None else "patient" if patient else "system",
        group_id=group,
        types=names,
        since=since,
        type_filters=type_filters,
        output_format=output_format or None,
    )
    problems = request.problems()
    if problems:
        raise CommandError("export: " + "; ".join(problems), EXIT_USAGE)
    return request


@click.command(name="export")
@server_options
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write (NDJSON per type, manifest, error/).",
)
@click.option("--group", metavar="ID", help="Export the members of Group/ID (Group/[id]/$export).")
@click.option("--patient", is_flag=True, help="Export all patients' data (Patient/$export).")
@click.option("--type", "types", metavar="T,...", help="_type: resource types to export.")
@click.option("--since", metavar="INSTANT", help="_since: only what changed after this instant.")
@click.option(
    "--type-filter",
    "type_filters",
    multiple=True,
    metavar="Type?query",
    help="_typeFilter (repeatable), e.g. 'Observation?category=laboratory'.",
)
@click.option(
    "--output-format",
    default="application/fhir+ndjson",
    show_default=True,
    help="_outputFormat ('' leaves it out).",
)
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True)
@click.option(
    "--max-wait",
    type=SECONDS,
    default=6 * 3600.0,
    show_default=True,
    help="Seconds to poll the job before giving up (it is kept: run again to resume).",
)
@click.option(
    "--max-poll-interval",
    type=SECONDS,
    default=120.0,
    show_default=True,
    help="Longest pause between two status requests, whatever Retry-After asks.",
)
@click.option(
    "--idle-timeout",
    type=SECONDS,
    default=120.0,
    show_default=True,
    help="Seconds a file download may go without receiving a byte.",
)
@click.option(
    "--max-disk-gb",
    type=click.FloatRange(min=0, min_open=True),
    default=100.0,
    show_default=True,
    help="Stop when the files together pass this many GiB.",
)
@click.option(
    "--allow-token-host",
    "token_hosts",
    multiple=True,
    metavar="ORIGIN",
    help="Also send the access token to this origin (https://host[:port]) for the files.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace --out when it holds an earlier trialfhir output (and nothing else).",
)
@click.option(
    "--cancel", is_flag=True, help="Cancel the job kept for --out (DELETE) and forget it."
)
@reported
def export(
    server: str,
    out: Path,
    group: str | None,
    patient: bool,
    types: str | None,
    since: str | None,
    type_filters: tuple[str, ...],
    output_format: str,
    concurrency: int,
    max_wait: float,
    max_poll_interval: float,
    idle_timeout: float,
    max_disk_gb: float,
    token_hosts: tuple[str, ...],
    force: bool,
    cancel: bool,
    **auth: Any,
) -> None:
    """Bulk Data $export from the server into --out (NDJSON per type), resumable.

    A job interrupted (Ctrl-C, a lost connection, --max-wait) is kept beside --out: run the same
    command again to resume it, or add --cancel to cancel it on the server.
    """
    from adapter.client import BulkExport, ExportFolderInUse, FhirClient
    from adapter.client._bulk import parse_origins

    options = client_options(**auth)
    request = _request(group, patient, types, since, type_filters, output_format)
    try:
        parse_origins(token_hosts)
    except ValueError as exc:
        raise CommandError(f"--allow-token-host {exc}", EXIT_USAGE) from exc
    folder = job_folder(out)
    if not cancel:
        check_output_folder(out, force)  # before asking the server anything
    try:
        with FhirClient(server, **options) as client, _Display() as display:
            runner = BulkExport(
                client,
                folder,
                concurrency=concurrency,
                max_wait=max_wait,
                max_poll_interval=max_poll_interval,
                idle_timeout=idle_timeout,
                max_bytes=int(max_disk_gb * 1024**3),
                allow_token_hosts=token_hosts,
                events=display,  # type: ignore[arg-type]
            )
            if cancel:
                job = runner.cancel()
                if job is None:
                    raise CommandError(
                        f"--cancel: no export job is kept for --out {out}", EXIT_USAGE
                    )
                click.echo(f"cancelled the export job kept for {out} and removed {folder}")
                return
            client.capabilities()  # a FHIR R4 server (exit 9 otherwise)
            result = runner.run(request)
    except ExportFolderInUse as exc:
        raise OutputRefused(out, f"{exc} (the job folder {folder})") from exc
    except KeyboardInterrupt:
        if (folder / "job.json").is_file():
            click.echo(_kept(folder, "interrupted"), err=True)
        else:
            click.echo("interrupted before the server started a job", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except OSError as exc:
        raise OutputRefused(
            out, f"cannot write the job folder {folder} ({exc.strerror or exc})"
        ) from exc
    except Exception as exc:
        code = exit_code_for(exc)
        if code == EXIT_UNEXPECTED or not (folder / "job.json").is_file():
            raise
        message = f"{without_credentials(str(exc))}\n{_kept(folder, 'stopped')}"
        raise CommandError(message, code) from exc
    _move_into_place(result, folder, out, force, server)
    _summary(result, out)


def _kept(folder: Path, what: str) -> str:
    return (
        f"{what}: the export job is kept in {folder}; run the same command again to resume it, "
        "or add --cancel to cancel it on the server"
    )


def _move_into_place(result: Any, folder: Path, out: Path, force: bool, server: str) -> None:
    """Link the job's files into a staged folder that takes the place of --out, then remove the
    job folder (a failure leaves the job folder whole: the files are hard links, or copies)."""
    import shutil

    names = [item.name for item in result.manifest.files]
    with staged_folder(out, force=force, command="export") as staging:
        (staging / "error").mkdir()  # always there, empty when the server reported nothing
        for name in [*names, "manifest.json"]:
            source, target = folder / name, staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        by_name = {check.name: check for check in result.files}
        document = {
            "server": without_credentials(server),
            "status_url": without_credentials(result.job.status_url),
            "request": result.job.request.as_dict(),
            "kicked_off": result.job.kicked_off,
            "transactionTime": result.manifest.transaction_time,
            "files": [
                {
                    "name": item.name,
                    "kind": item.kind,
                    "type": item.type,
                    "resources": by_name[item.name].resources,
                }
                for item in result.manifest.files
            ],
        }
        (staging / EXPORT_FILE).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    from adapter.client._bulk_run import JobFolder

    with contextlib.suppress(OSError):
        JobFolder(folder, 1).remove()


def _summary(result: Any, out: Path) -> None:
    counts = result.counts
    total = sum(counts.values())
    files = len(result.manifest.output)
    again = " (resumed)" if result.resumed else ""
    click.echo(f"exported {total} resources in {files} files into {out}{again}")
    for resource_type, n in counts.items():
        click.echo(f"  {resource_type}: {n}")
    click.echo(f"  transactionTime {result.manifest.transaction_time} (for a later --since)")
    issues = result.issues
    if issues:
        errors = len(result.manifest.errors)
        click.echo(
            f"the server reported {len(issues)} problems while exporting "
            f"(in {errors} error files under {out / 'error'}):",
            err=True,
        )
        for issue in issues[:SHOWN_ISSUES]:
            click.echo(f"  {issue.severity} {issue.code}: {issue.text}", err=True)
        if len(issues) > SHOWN_ISSUES:
            click.echo(f"  ... and {len(issues) - SHOWN_ISSUES} more", err=True)
