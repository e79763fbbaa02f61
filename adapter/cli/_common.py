"""What every `trialfhir` command shares: exit codes per error class, the client options (server, auth,
TLS, timeouts), and all-or-nothing output folders.

Exit codes (documented in docs/cli.md):

| code | meaning |
|---|---|
| 0 | done |
| 1 | unexpected failure (a bug: please report it) |
| 2 | usage: a wrong option or argument |
| 3 | bad input data (every problem listed: file, row, variable, reason) |
| 4 | the server refused a request (4xx other than auth), its OperationOutcome shown |
| 5 | authentication or authorisation failed (401, 403, token endpoint) |
| 6 | not found: no such study or resource on the server |
| 7 | the server could not be reached or kept failing (timeouts, 5xx, retries exhausted) |
| 8 | a transaction failed (what was committed before it is said) |
| 9 | the server does not speak FHIR R4 (4.0.x) |
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_SERVER_REFUSED = 4
EXIT_AUTH = 5
EXIT_NOT_FOUND = 6
EXIT_UNREACHABLE = 7
EXIT_TRANSACTION = 8
EXIT_FHIR_VERSION = 9

P = ParamSpec("P")
R = TypeVar("R")


class CommandError(click.ClickException):
    """A failure with the exit code of its class; the message is printed as is on stderr."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def format_message(self) -> str:
        return self.message


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an error raised by the library (see the table in this module's docstring)."""
    from adapter.client import (
        AuthenticationFailed,
        FhirHttpError,
        FhirTransportError,
        FhirVersionMismatch,
        Forbidden,
        ResourceNotFound,
        RetriesExhausted,
        ServerError,
        TooManyRequests,
        TransactionFailed,
        Unauthorized,
    )
    from adapter.fhir_files import FhirFileError
    from adapter.tables import TableError
    from adapter.transfer import StudyNotFound
    from mappings.trial import ResourceRefused

    table: list[tuple[type[BaseException] | tuple[type[BaseException], ...], int]] = [
        ((TableError, FhirFileError, ResourceRefused), EXIT_BAD_INPUT),
        (FhirVersionMismatch, EXIT_FHIR_VERSION),
        (TransactionFailed, EXIT_TRANSACTION),
        ((Unauthorized, Forbidden, AuthenticationFailed), EXIT_AUTH),
        ((StudyNotFound, ResourceNotFound), EXIT_NOT_FOUND),
        ((FhirTransportError, RetriesExhausted, ServerError, TooManyRequests), EXIT_UNREACHABLE),
        (FhirHttpError, EXIT_SERVER_REFUSED),
    ]
    for kinds, code in table:
        if isinstance(exc, kinds):
            return code
    return EXIT_UNEXPECTED


def reported(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the library's errors into a message on stderr and the exit code of their class; anything
    else is a bug and keeps its traceback."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except Exception as exc:
            code = exit_code_for(exc)
            if code == EXIT_UNEXPECTED:
                raise
            raise CommandError(str(exc), code) from exc

    return wrapper


# --- the server and how to reach it -----------------------------------------------------------------


def server_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--server and the auth/TLS/timeout options, as one `client_options` dict for the client."""
    options = [
        click.option(
            "--server",
            required=True,
            metavar="URL",
            help="FHIR base URL, e.g. http://localhost:8080/fhir",
        ),
        click.option(
            "--token",
            envvar="TRIALFHIR_TOKEN",
            metavar="TOKEN",
            help="Bearer token (or env TRIALFHIR_TOKEN).",
        ),
        click.option(
            "--basic",
            envvar="TRIALFHIR_BASIC",
            metavar="USER:PASSWORD",
            help="HTTP Basic credentials (or env TRIALFHIR_BASIC).",
        ),
        click.option("--smart-client-id", metavar="ID", help="SMART Backend Services client id."),
        click.option(
            "--smart-key",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="PEM private key for the SMART JWT assertion.",
        ),
        click.option(
            "--smart-alg", type=click.Choice(["RS384", "ES384"]), default="RS384", show_default=True
        ),
        click.option("--smart-scope", default="system/*.read system/*.write", show_default=True),
        click.option(
            "--timeout", type=float, default=60.0, show_default=True, help="Seconds per request."
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(exists=True, dir_okay=False),
            help="CA bundle to trust (PEM).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def client_options(
    token: str | None,
    basic: str | None,
    smart_client_id: str | None,
    smart_key: Path | None,
    smart_alg: str,
    smart_scope: str,
    timeout: float,
    ca_bundle: str | None,
) -> dict[str, Any]:
    """The keyword arguments for `FhirClient` / `AsyncFhirClient` from the command's options."""
    from adapter.client import BasicAuth, BearerAuth, SmartBackendAuth

    chosen = [
        name
        for name, value in (
            ("--token", token),
            ("--basic", basic),
            ("--smart-client-id", smart_client_id),
        )
        if value
    ]
    if len(chosen) > 1:
        raise click.UsageError(f"choose one way to authenticate, not {' and '.join(chosen)}")
    auth: Any = None
    if token:
        auth = BearerAuth(token)
    elif basic:
        user, sep, password = basic.partition(":")
        if not sep:
            raise click.UsageError("--basic takes USER:PASSWORD")
        auth = BasicAuth(user, password)
    elif smart_client_id:
        if smart_key is None:
            raise click.UsageError("--smart-client-id needs --smart-key")
        auth = SmartBackendAuth(
            smart_client_id,
            smart_key.read_bytes(),
            algorithm="ES384" if smart_alg == "ES384" else "RS384",
            scope=smart_scope,
        )
    options: dict[str, Any] = {"timeout": timeout}
    if auth is not None:
        options["auth"] = auth
    if ca_bundle:
        options["verify"] = ca_bundle
    return options


# --- output folders, all or nothing --------------------------------------------------------------------


def check_output_folder(out: Path, force: bool, source: Path | None = None) -> None:
    """Refuse an --out that would lose data: a file, a non-empty folder without --force, SRC itself."""
    if out.exists() and not out.is_dir():
        raise click.UsageError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise click.UsageError(f"--out {out}: folder is not empty (use --force to replace it)")
    if not out.resolve().parent.is_dir():
        raise click.UsageError(f"--out {out}: parent folder {out.parent} does not exist")
    if source is not None:
        src, target = source.resolve(), out.resolve()
        if src == target or target in src.parents or src in target.parents:
            raise click.UsageError(f"--out {out}: must not be SRC, inside it, or contain it")


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A temporary sibling of `out` to write into; moved into place only when the block succeeds, so a
    failed or interrupted run leaves `out` as it was."""
    parent = out.resolve().parent
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
        retired.rmdir()
        out.rename(retired)
        staging.rename(out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out)


def progress_bar(total: int | None, label: str) -> Any:
    """A tqdm bar on stderr (silent when stderr is not a terminal or TRIALFHIR_NO_PROGRESS is set)."""
    from tqdm import tqdm

    disable = not sys.stderr.isatty() or bool(os.environ.get("TRIALFHIR_NO_PROGRESS"))
    return tqdm(total=total, desc=label, unit=" res", file=sys.stderr, disable=disable, leave=False)
