"""What every `trialfhir` command shares: exit codes per error class, the client options (server, auth,
TLS, timeouts; checked when parsed, credentials never echoed), and output folders that are written all
or nothing and replaced only when everything in them was written by trialfhir (its manifest says so).

Exit codes (documented in docs/cli.md, with the error codes of the classes behind each; every error
class declares its own `exit_code` (mappings/errors.py) and `exit_code_for` reads it):

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
| 10 | the server's answer was refused: not JSON or wrongly shaped, nested too deep, an unsafe or looping next link, a page cap or body-size cap reached, a transaction response that does not match the request |
| 11 | the output folder was refused or cannot be written (foreign files, the source, no parent) |
| 12 | nothing came out: the input was read but nothing in it could be converted (says why; FHIR written by others: the mapping report is written alone) |
| 13 | analyze: no endpoint can be computed from the data (each endpoint's missing domain, variable, test code or period is said; the report is written) |
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, overload
from urllib.parse import urlsplit

import click

from mappings.errors import ExitCode, TrialfhirError

EXIT_UNEXPECTED = int(ExitCode.UNEXPECTED)
EXIT_USAGE = int(ExitCode.USAGE)
EXIT_BAD_INPUT = int(ExitCode.BAD_INPUT)
EXIT_SERVER_REFUSED = int(ExitCode.SERVER_REFUSED)
EXIT_AUTH = int(ExitCode.AUTH)
EXIT_NOT_FOUND = int(ExitCode.NOT_FOUND)
EXIT_UNREACHABLE = int(ExitCode.UNREACHABLE)
EXIT_TRANSACTION = int(ExitCode.TRANSACTION)
EXIT_FHIR_VERSION = int(ExitCode.FHIR_VERSION)
EXIT_SERVER_ANSWER = int(ExitCode.SERVER_ANSWER)
EXIT_OUTPUT_REFUSED = int(ExitCode.OUTPUT_REFUSED)
EXIT_NOTHING_CONVERTED = int(ExitCode.NOTHING_CONVERTED)
EXIT_NOTHING_COMPUTABLE = int(ExitCode.NOTHING_COMPUTABLE)

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
    """The exit code of an error raised by the library: the `exit_code` its class declares (every error
    derives from `mappings.errors.TrialfhirError`; the codes are the table in this module's docstring).
    Anything else is a bug: `EXIT_UNEXPECTED`."""
    if isinstance(exc, TrialfhirError):
        return int(exc.exit_code)
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
            raise CommandError(without_credentials(str(exc)), code) from exc

    return wrapper


# --- credentials never echoed ---------------------------------------------------------------------------

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@")
_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:access_token|token|api[_-]?key|key|password|passwd|secret|sig|signature)=)"
    r"[^&;#\s]*?(?=[:,.)]?(?:[&;#\s]|$))"  # a sentence's `:` or `,` after the URL is not the secret
)


def without_credentials(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***`: the user:password of
    `http://user:password@host/` (the whole user-info part) and the value of query parameters that
    carry secrets (`access_token`, `token`, `key`, `api_key`, `password`, `secret`, `sig`, ...).

    Every place that echoes a server URL (summaries, steps, reports, error messages) goes through here.
    """
    return _SECRET_PARAMETER.sub(r"\1***", _USERINFO.sub(r"\1***@", text))


def _server_url_problem(url: str) -> str | None:
    """Why `url` is not a usable FHIR base URL, or None."""
    if not url.strip():
        return "it is empty"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "it contains a space or a control character"
    if "://" not in url:
        return "it has no scheme (http:// or https://)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # an unbalanced [ of an IPv6 address, a port that is not a number
        return f"it is not a URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"its scheme is {parts.scheme}: only http and https"
    if not parts.hostname:
        return "it has no host"
    if port == 0:
        return "port 0 is not a port"
    if parts.fragment or url.endswith("#"):
        return "a base URL has no #fragment"
    return None


class ServerUrl(click.ParamType[str]):
    """A FHIR base URL: http(s)://host[:port][/path], checked when the option is parsed. A wrong value
    is a usage error (exit 2) in one line that says what to pass; credentials in it are never echoed."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        problem = _server_url_problem(text)
        if problem is None:
            return text
        option = param.opts[0] if param is not None and param.opts else "--server"
        shown = _userinfo_hidden(text)
        raise CommandError(
            f"{option} {shown!r}: {problem}; pass the server's FHIR base URL, "
            "e.g. http://localhost:8080/fhir",
            EXIT_USAGE,
        )


def _userinfo_hidden(text: str) -> str:
    """A malformed URL with everything between `://` and its last `@` hidden (urlsplit may not find
    the user-info of a broken URL, so the cut is made on the text)."""
    scheme, sep, rest = text.partition("://")
    if sep and "@" in rest:
        return without_credentials(f"{scheme}://***@{rest.rpartition('@')[2]}")
    return without_credentials(text)


SERVER_URL = ServerUrl()


class Seconds(click.ParamType[float]):
    """A duration in seconds: a finite number above 0 (`nan`, `inf`, 0 and negatives are a usage
    error, exit 2, in one line)."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if math.isfinite(seconds) and seconds > 0:
            return seconds
        option = param.opts[0] if param is not None and param.opts else "--timeout"
        raise CommandError(
            f"{option} {value!r}: give a number of seconds above 0, e.g. 60", EXIT_USAGE
        )


SECONDS = Seconds()


# --- the server and how to reach it -----------------------------------------------------------------


_SERVER_HELP = "FHIR base URL, e.g. http://localhost:8080/fhir"


@overload
def server_options(func: Callable[..., Any]) -> Callable[..., Any]: ...


@overload
def server_options(
    *, required: bool = True, server_help: str = _SERVER_HELP
) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...


def server_options(
    func: Callable[..., Any] | None = None,
    *,
    required: bool = True,
    server_help: str = _SERVER_HELP,
) -> Any:
    """--server and the auth/TLS/timeout options, which `client_options(**those)` turns into the
    client's keyword arguments. `@server_options` for a command that needs a server;
    `@server_options(required=False, server_help=...)` for one that may go through one (analyze, run).
    """
    if func is None:
        return lambda f: _with_server_options(f, required, server_help)
    return _with_server_options(func, required, server_help)


def _with_server_options(
    func: Callable[..., Any], required: bool, server_help: str
) -> Callable[..., Any]:
    options = [
        click.option(
            "--server",
            required=required,
            type=SERVER_URL,
            metavar="URL",
            help=server_help,
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
            "--timeout",
            type=SECONDS,
            default=60.0,
            show_default=True,
            help="Seconds to wait for each connect, write or read.",
        ),
        click.option(
            "--deadline",
            type=SECONDS,
            default=300.0,
            show_default=True,
            help="Seconds one request may take, whole answer included (however slow the server).",
        ),
        click.option(
            "--max-body-mb",
            type=click.IntRange(min=1),
            default=64,
            show_default=True,
            help="Refuse a server answer bigger than this many MiB.",
        ),
        click.option(
            "--max-pages",
            type=click.IntRange(min=1),
            default=10_000,
            show_default=True,
            help="Refuse a search with more pages than this (never a quiet stop).",
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
    deadline: float | None = None,
    max_body_mb: int | None = None,
    max_pages: int | None = None,
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
        pem = _smart_key_pem(smart_key, smart_alg)
        try:
            auth = SmartBackendAuth(
                smart_client_id,
                pem,
                algorithm="ES384" if smart_alg == "ES384" else "RS384",
                scope=smart_scope,
            )
        except ValueError as exc:  # what _smart_key_pem did not foresee: still the key's fault
            raise CommandError(f"--smart-key {smart_key}: {exc}", EXIT_USAGE) from exc
    options: dict[str, Any] = {"timeout": timeout}
    if deadline is not None:
        options["deadline"] = deadline
    if max_body_mb is not None:
        options["max_body_bytes"] = max_body_mb * 1024 * 1024
    if max_pages is not None:
        options["max_pages"] = max_pages
    if auth is not None:
        options["auth"] = auth
    if ca_bundle:
        _check_ca_bundle(ca_bundle)
        options["verify"] = ca_bundle
    return options


def _check_ca_bundle(path: str) -> None:
    """A usage error (exit 2, one line) unless `path` holds at least one PEM certificate."""
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise CommandError(
            f"--ca-bundle {path}: not a PEM file of CA certificates ({reason})", EXIT_USAGE
        ) from exc


SMART_KEY_MAX_BYTES = 1_000_000
"""A PEM private key is a few kilobytes; anything past this is not one (and is not read whole)."""


def _smart_key_pem(path: Path, algorithm: str) -> bytes:
    """The PEM bytes of --smart-key, once they are known to hold a private key that can sign
    `algorithm`; otherwise a usage error (exit 2) in one line that says what to pass."""

    def refused(reason: str) -> CommandError:
        return CommandError(f"--smart-key {path}: {reason}", EXIT_USAGE)

    try:
        with path.open("rb") as handle:
            pem = handle.read(SMART_KEY_MAX_BYTES + 1)
    except OSError as exc:
        raise refused(f"cannot be read ({exc.strerror or exc})") from exc
    if len(pem) > SMART_KEY_MAX_BYTES:
        raise refused(f"more than {SMART_KEY_MAX_BYTES} bytes: not a PEM private key")
    problem = smart_key_problem(pem, algorithm)
    if problem is not None:
        raise refused(problem)
    return pem


def smart_key_problem(pem: bytes, algorithm: str) -> str | None:
    """Why `pem` cannot sign SMART Backend Services assertions with `algorithm` (RS384: an RSA key
    of 2048 bits or more; ES384: an EC key on P-384), or None when it can."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    other = "ES384" if algorithm == "RS384" else "RS384"
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        return "the key is encrypted: give it unencrypted (PEM, PKCS#8 or PKCS#1)"
    except (ValueError, UnsupportedAlgorithm):
        try:
            serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm):
            pass
        else:
            return "this is a public key: pass the private key (PEM) that goes with it"
        if b"-----BEGIN CERTIFICATE-----" in pem:
            return "this is a certificate: pass the private key (PEM)"
        return "not a PEM private key (expected -----BEGIN PRIVATE KEY----- or RSA/EC PRIVATE KEY)"
    if algorithm == "RS384":
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < 2048:
                return f"an RSA key of {key.key_size} bits is too short for RS384 (2048 at least)"
            return None
        kind = "an EC key" if isinstance(key, ec.EllipticCurvePrivateKey) else "not an RSA key"
        return (
            f"{kind}: RS384 needs an RSA private key (for an EC P-384 key pass --smart-alg {other})"
        )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name == "secp384r1":
            return None
        return f"an EC key on {key.curve.name}: ES384 needs the P-384 curve (secp384r1)"
    kind = "an RSA key" if isinstance(key, rsa.RSAPrivateKey) else "not an EC key"
    return f"{kind}: ES384 needs an EC P-384 private key (for an RSA key pass --smart-alg {other})"


# --- output folders: all or nothing, and never what trialfhir did not write ------------------------------

MANIFEST = ".trialfhir-manifest.json"
"""Written last into every output folder: the folders and files the command wrote (relative path, size,
sha256). `--force` replaces a folder only when its manifest accounts for everything in it."""

MANIFEST_FORMAT = "trialfhir-manifest/1"
MANIFEST_MAX_BYTES = 64_000_000
"""A manifest larger than this is not one of ours (it would list about half a million files)."""

NAMED = 10
"""How many entries a refusal names before it counts the rest."""

WALK_LIMIT = 100_000
"""How many entries of an existing --out are looked at, at most: trialfhir writes a few dozen files, so
a folder with more is not (only) its output, and `--out ~` does not walk the whole home folder."""

_CHUNK = 1 << 20


class OutputRefused(CommandError):
    """The output folder cannot be used or written: exit 11, one line naming the folder and why."""

    def __init__(self, out: Path, reason: str) -> None:
        super().__init__(f"--out {out}: {reason}", EXIT_OUTPUT_REFUSED)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What an earlier run wrote into a folder, as its manifest lists it."""

    written_by: str
    files: dict[str, tuple[int, str]]
    """relative path -> (size in bytes, sha256 hex)"""
    folders: frozenset[str]


def _relative_path(value: object) -> str | None:
    """`value` when it is a plain relative path inside the folder (no `..`, `.`, empty or absolute
    part), else None: a manifest that names anything else is not trusted."""
    if not isinstance(value, str) or not value or value.startswith("/"):
        return None
    parts = value.split("/")
    if any(part in ("", ".", "..") or "\0" in part for part in parts):
        return None
    return value


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of `folder`, or None when there is none or it cannot be trusted (unreadable, not
    JSON, another format, a path that is not a plain relative path, a symbolic link)."""
    path = folder / MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            raw = handle.read(MANIFEST_MAX_BYTES + 1)
        document = json.loads(raw) if len(raw) <= MANIFEST_MAX_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        return None
    written_by, files, folders = (document.get(k) for k in ("written_by", "files", "folders"))
    if not isinstance(written_by, str) or not isinstance(files, list):
        return None
    if not isinstance(folders, list):
        return None
    listed: dict[str, tuple[int, str]] = {}
    for entry in files:
        if not isinstance(entry, dict):
            return None
        rel, size, digest = (
            _relative_path(entry.get("path")),
            entry.get("size"),
            entry.get("sha256"),
        )
        if rel is None or rel == MANIFEST or type(size) is not int or not isinstance(digest, str):
            return None
        listed[rel] = (size, digest)
    names = [_relative_path(f) for f in folders]
    if any(name is None for name in names):
        return None
    return Manifest(written_by, listed, frozenset(n for n in names if n is not None))


def _walk(folder: Path) -> Iterator[tuple[str, str]]:
    """Every entry under `folder` (links not followed) as (relative path, kind): kind is "folder",
    "file", "other" (a symbolic link, a device, a socket, ...) or "unreadable" (a folder that
    cannot be listed; "" is `folder` itself)."""
    stack: list[tuple[str, str]] = [("", str(folder))]
    while stack:
        prefix, current = stack.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError:
            yield prefix.rstrip("/"), "unreadable"
            continue
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_symlink():
                yield rel, "other"
            elif entry.is_dir(follow_symlinks=False):
                yield rel, "folder"
                stack.append((rel + "/", entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield rel, "file"
            else:
                yield rel, "other"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


HASH_THREADS = min(4, os.cpu_count() or 1)
"""Files hashed at once for a manifest: hashlib and file reads release the GIL, so threads hash
on several cores (the 300 MB of NDJSON of a 1,000-subject conversion: 0.4 s of one core)."""


def _sha256_all(paths: list[Path]) -> list[str]:
    """The sha256 of each file, in order; the largest files started first, `HASH_THREADS` at once."""
    if HASH_THREADS < 2 or len(paths) < 2:
        return [_sha256(path) for path in paths]
    from concurrent.futures import ThreadPoolExecutor

    by_size = sorted(range(len(paths)), key=lambda i: -paths[i].stat().st_size)
    with ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="trialfhir-sha256") as pool:
        futures = {i: pool.submit(_sha256, paths[i]) for i in by_size}
        return [futures[i].result() for i in range(len(paths))]


def _unchanged(path: Path, size: int, sha256: str) -> bool:
    try:
        return path.stat().st_size == size and _sha256(path) == sha256
    except OSError:
        return False


def unaccounted_entries(folder: Path) -> tuple[list[str], Manifest | None]:
    """What in `folder` trialfhir did not write or that changed since (relative paths, sorted; a
    folder it did not write is named once, `name/ (N entries)`, not entry by entry; a reason in
    brackets where a file is not simply absent from the manifest), and the folder's manifest.

    Without a trustworthy manifest everything in the folder is unaccounted for. Files the manifest
    lists that are gone are fine (nothing to lose)."""
    manifest = read_manifest(folder)
    found: list[str] = []
    foreign_folders: dict[str, int] = {}
    for seen, (rel, kind) in enumerate(_walk(folder)):
        if seen == WALK_LIMIT:
            found.append(f"... (stopped looking after {WALK_LIMIT} entries)")
            break
        parts = rel.split("/")
        ancestors = ("/".join(parts[:depth]) for depth in range(1, len(parts)))
        inside = next((a for a in ancestors if a in foreign_folders), None)
        if inside is not None:
            foreign_folders[inside] += 1
        elif kind == "folder":
            if manifest is None or rel not in manifest.folders:
                foreign_folders[rel] = 0
        elif kind == "file":
            listed = manifest.files.get(rel) if manifest is not None else None
            if manifest is not None and rel == MANIFEST:
                continue
            if listed is None:
                found.append(rel)
            elif not _unchanged(folder / rel, *listed):
                found.append(f"{rel} (changed since it was written)")
        elif kind == "unreadable":
            found.append(f"{rel or '.'}/ (cannot be listed)")
        else:
            found.append(f"{rel} (not a regular file)")
    for name, count in foreign_folders.items():
        found.append(f"{name}/ ({_entries(count)})" if count else f"{name}/")
    return sorted(found), manifest


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:NAMED])
    return shown + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")


def _real_folder(out: Path) -> Path:
    """The absolute path --out stands for. A symbolic link to a folder is written through (its target
    is replaced, the link stays); a link that dangles, loops or leads to a non-folder is refused."""
    if out.is_symlink():
        try:
            target = out.resolve(strict=True)
        except FileNotFoundError as exc:
            raise OutputRefused(
                out,
                f"is a symbolic link to {os.readlink(out)}, which does not exist: "
                "create that folder or give another --out",
            ) from exc
        except (OSError, RuntimeError) as exc:
            raise OutputRefused(out, "is a symbolic link that loops: give another --out") from exc
        if not target.is_dir():
            raise OutputRefused(out, f"is a symbolic link to {target}, which is not a folder")
        return target
    try:
        return out.resolve()
    except (OSError, RuntimeError) as exc:
        raise OutputRefused(out, f"cannot be resolved ({exc}): give another --out") from exc


def check_output_folder(out: Path, force: bool, sources: Iterable[Path | None] = ()) -> Path:
    """The real folder --out names, once it is safe to (re)write; otherwise `OutputRefused` (exit 11).

    Refused: a path that is not a folder; a dangling or looping symbolic link (a link to a folder is
    written through); a parent folder that is missing or not writable; a folder that is one of
    `sources`, is inside one or contains one; a folder holding anything that no manifest of an earlier
    trialfhir run lists with the same size and sha256 (named, first NAMED and a count; --force does
    not override this); and, without `force`, a folder holding an earlier output of trialfhir.
    """
    target = _real_folder(out)
    if os.path.lexists(target) and not target.is_dir():
        raise OutputRefused(out, "exists and is not a folder")
    parent = target.parent
    if not parent.is_dir():
        state = "is not a folder" if os.path.lexists(parent) else "does not exist"
        raise OutputRefused(out, f"its parent folder {parent} {state}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputRefused(out, f"its parent folder {parent} is read-only for this user")
    for source in sources:
        if source is None:
            continue
        src = source.resolve()
        if src == target:
            raise OutputRefused(out, f"is the source {source}: give another folder")
        if src in target.parents:
            raise OutputRefused(out, f"is inside the source {source}: give a folder outside it")
        if target in src.parents:
            raise OutputRefused(
                out, f"contains the source {source}: replacing it would delete the source"
            )
    if not target.is_dir():
        return target
    foreign, manifest = unaccounted_entries(target)
    if foreign:
        raise OutputRefused(
            out,
            f"holds {_entries(len(foreign))} trialfhir did not write or that changed since "
            f"({_listed(foreign)}); nothing was touched: move them away or give another folder",
        )
    if manifest is not None and not force:
        raise OutputRefused(
            out,
            f"holds an earlier output of `{manifest.written_by}`; pass --force to replace it",
        )
    return target


@contextlib.contextmanager
def staged_folder(
    out: Path,
    *,
    force: bool,
    command: str,
    sources: Iterable[Path | None] = (),
) -> Iterator[Path]:
    """A new folder beside --out to write the command's output into. When the block succeeds the
    folder gets its manifest, folders mode 0700, and takes the place of --out; an earlier output there
    is removed, and only the files its manifest lists. When the block fails, --out is as it was.

    Raises:
        OutputRefused: `check_output_folder` refuses --out (checked on entry, and again just before
            the earlier output is replaced), or writing fails (any OSError on a path in the staging
            folder: a read-only parent, a full disk).
    """
    given = tuple(s for s in sources if s is not None)
    target = check_output_folder(out, force, given)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as exc:
        raise OutputRefused(
            out, f"cannot write in {target.parent} ({exc.strerror or exc})"
        ) from exc
    try:
        yield staging
        formula_cells = _finish(staging, f"trialfhir {command}")
        _replace(target, staging, out, force, given)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        written = _path_inside(exc, staging)
        if written is None:
            raise
        raise OutputRefused(
            out, f"cannot write {written} ({exc.strerror or exc}); nothing was changed"
        ) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    note = formula_note(out, formula_cells)
    if note:
        click.echo(note, err=True)


def _path_inside(exc: OSError, folder: Path) -> str | None:
    """The path, relative to `folder`, that `exc` is about, when it is inside `folder`."""
    for name in (exc.filename, exc.filename2):
        if name is None:
            continue
        path = Path(os.fsdecode(name)).absolute()
        if path == folder or folder in path.parents:
            return str(path.relative_to(folder)) if path != folder else "."
    return None


def _finish(staging: Path, written_by: str) -> dict[str, int]:
    """Write the manifest of `staging` (every file with size and sha256) and make its folders 0700;
    return the CSV files holding cells a spreadsheet may read as formulas (relative path -> count)."""
    files: list[dict[str, object]] = []
    folders: list[str] = []
    formula_cells: dict[str, int] = {}
    os.chmod(staging, 0o700)
    written: list[str] = []
    for rel, kind in sorted(_walk(staging)):
        path = staging / rel
        if kind == "folder":
            os.chmod(path, 0o700)
            folders.append(rel)
        elif kind == "file":
            written.append(rel)
            if rel.lower().endswith(".csv"):
                count = formula_like_cells(path)
                if count:
                    formula_cells[rel] = count
    for rel, digest in zip(written, _sha256_all([staging / rel for rel in written]), strict=True):
        files.append({"path": rel, "size": (staging / rel).stat().st_size, "sha256": digest})
    document = {
        "format": MANIFEST_FORMAT,
        "written_by": written_by,
        "folders": folders,
        "files": files,
    }
    (staging / MANIFEST).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return formula_cells


def _replace(
    target: Path, staging: Path, out: Path, force: bool, sources: tuple[Path, ...]
) -> None:
    """Move `staging` to `target`. An earlier output there is checked again (a file added since the
    first look blocks), moved aside, and then only the files its manifest lists are removed."""
    if not os.path.lexists(target):
        try:
            staging.rename(target)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise OutputRefused(
                    out, "was created by someone else while this command ran"
                ) from exc
            raise
        return
    check_output_folder(out, force, sources)
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    retired.rmdir()
    try:
        target.rename(retired)
    except OSError as exc:  # a mount point, a folder in use on some systems
        raise OutputRefused(
            out,
            f"cannot be moved aside to be replaced ({exc.strerror or exc}); nothing was changed",
        ) from exc
    try:
        staging.rename(target)
    except BaseException:
        retired.rename(target)
        raise
    kept = _remove_written(retired)
    if kept:
        click.echo(
            f"note: {retired} is kept: it holds {_entries(kept)} added while this command ran",
            err=True,
        )


def _remove_written(folder: Path) -> int:
    """Remove from `folder` the files and folders its manifest lists (files only while their size is
    as listed), then `folder` itself if it is empty; return how many entries are left."""
    manifest = read_manifest(folder)
    files = manifest.files if manifest is not None else {}
    folders = manifest.folders if manifest is not None else frozenset()
    for rel, kind in list(_walk(folder)):
        if kind != "file":
            continue
        listed = files.get(rel)
        path = folder / rel
        with contextlib.suppress(OSError):
            if listed is not None and path.stat().st_size == listed[0]:
                path.unlink()
    if manifest is not None:
        with contextlib.suppress(OSError):
            (folder / MANIFEST).unlink()
    for rel in sorted(folders, key=lambda f: f.count("/"), reverse=True):
        with contextlib.suppress(OSError):
            (folder / rel).rmdir()
    try:
        folder.rmdir()
    except OSError:
        return sum(1 for _ in _walk(folder))
    return 0


# --- cells a spreadsheet may read as formulas ------------------------------------------------------------

_CELL_STARTS = tuple(sep + quote for sep in (b",", b"\n", b"\r") for quote in (b"", b'"'))


def _may_hold_formula(window: bytes) -> bool:
    """False when no cell in `window` (CSV bytes) can be formula-like; True means "parse and see".
    Substring searches only, each gated by a one-byte search (memchr-fast), so a file without
    candidates is never parsed (about 10 ms per MB)."""
    for sign in (b"=", b"+", b"@"):
        if sign in window and any(start + sign in window for start in _CELL_STARTS):
            return True
    starts = [b",", b"\n"] + ([b"\r"] if b"\r" in window else [])
    if b'"-' in window:
        starts += [start + b'"' for start in starts]
    for start in starts:
        needle = start + b"-"
        at = window.find(needle)
        while at != -1:
            after = window[at + len(needle) : at + len(needle) + 1]
            if after and after not in b"0123456789":
                return True
            at = window.find(needle, at + 1)
    return False


def is_formula_like(cell: str) -> bool:
    """A cell that starts with `=`, `+` or `@`, or with `-` followed by something other than a digit:
    a spreadsheet opening the CSV may read it as a formula. (Kept as written: see docs/files.md.)"""
    if not cell:
        return False
    first = cell[0]
    return first in "=+@" or (first == "-" and len(cell) > 1 and cell[1] not in "0123456789")


def formula_like_cells(path: Path) -> int:
    """How many cells of the CSV file `path` are formula-like (`is_formula_like`). A byte scan
    skips files that cannot hold one; only the others are parsed."""
    hint = False
    tail = b"\n"  # the file's first cell starts a line
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            window = tail + chunk
            if _may_hold_formula(window):
                hint = True
                break
            tail = window[-3:]  # a cell start cut by the chunk boundary is seen whole next time
    if not hint:
        return 0
    with path.open(encoding="utf-8", errors="replace", newline="") as text:
        return sum(1 for row in csv.reader(text) for cell in row if is_formula_like(cell))


def formula_note(out: Path, counts: dict[str, int]) -> str | None:
    """One line naming the files (never the cells) with formula-like cells, or None."""
    if not counts:
        return None
    total = sum(counts.values())
    files = [f"{out / rel} {n}" for rel, n in sorted(counts.items())]
    return (
        f"note: {total} cells start with =, +, @ or - (not a number) and are kept as written; "
        f"a spreadsheet may run them as formulas (docs/files.md): {_listed(files)}"
    )


def progress_bar(total: int | None, label: str, items: Iterable[Any] | None = None) -> Any:
    """The one progress bar of every command: tqdm on stderr, silent when stderr is not a terminal or
    TRIALFHIR_NO_PROGRESS is set. Use it as a context (`bar.update(n)`), or iterate it to pass
    `items` through while counting them."""
    from tqdm import tqdm

    disable = not sys.stderr.isatty() or bool(os.environ.get("TRIALFHIR_NO_PROGRESS"))
    return tqdm(
        items,
        total=total,
        desc=label,
        unit=" res",
        file=sys.stderr,
        disable=disable,
        leave=False,
        mininterval=0.5,
    )
