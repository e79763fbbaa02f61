"""`trialfhir hapi`: the local HAPI FHIR R4 test server (HAPI 8.8.0, H2 in memory).

    trialfhir hapi serve [--port N]   build if needed, run in the foreground, Ctrl-C stops it
    trialfhir hapi build              build (or find) the cached jar and print its path

Uses only :mod:`adapter.testing.hapi`. A missing java/mvn, a failed build or a server that does not come up
exits with code 7 (`EXIT_UNREACHABLE`) and says why; the server's own output stays in its log file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from adapter.cli._common import EXIT_UNREACHABLE, CommandError

__all__ = ["hapi"]


def _unavailable(message: str) -> CommandError:
    """A harness failure: the message alone, exit 7 (the server could not be reached)."""
    return CommandError(message, EXIT_UNREACHABLE)


@click.group(name="hapi")
def hapi() -> None:
    """Build and run the local HAPI FHIR R4 test server."""


@hapi.command()
def build() -> None:
    """Build the server jar (cached per module version) and print its path."""
    from adapter.testing import hapi as harness  # imports httpx: only when this command runs

    try:
        if harness.built_jar() is None:
            click.echo("building the HAPI FHIR server (first use; a few minutes) ...", err=True)
        click.echo(str(harness.build_server()))
    except harness.HapiServerError as exc:
        raise _unavailable(str(exc)) from exc


@hapi.command()
@click.option(
    "--port", type=click.IntRange(1, 65535), help="TCP port on 127.0.0.1 (default: a free one)."
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Server log file (default: in the cache folder).",
)
def serve(port: int | None, log_path: Path | None) -> None:
    """Run the server in the foreground; print its base URL once /fhir/metadata answers."""
    from adapter.testing import hapi as harness  # imports httpx: only when this command runs

    try:
        if harness.built_jar() is None:
            click.echo("building the HAPI FHIR server (first use; a few minutes) ...", err=True)
        jar = harness.build_server()
        click.echo("starting the HAPI FHIR server ...", err=True)
        server = harness.start_server(port, jar=jar, log_path=log_path)
    except harness.HapiServerError as exc:
        raise _unavailable(str(exc)) from exc
    with server:
        click.echo(f"HAPI FHIR R4 server ready after {server.startup_seconds:.0f} s", err=True)
        click.echo(f"log: {server.log_path}", err=True)
        click.echo(server.base_url)
        click.echo("Ctrl-C stops it.", err=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.process.wait()
        if not server.is_running() and server.process.returncode not in (0, 130, 143, -2, -15):
            raise _unavailable(
                f"the server exited with code {server.process.returncode}\n{server.log_tail()}"
            )
    click.echo("stopped.", err=True)
