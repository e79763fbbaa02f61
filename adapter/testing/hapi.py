"""Build, start and stop trialfhir's local HAPI FHIR JPA R4 test server.

The server is the Maven module shipped in ``adapter/testing/hapi-server`` (HAPI FHIR 8.8.0, Spring
Boot 3.5, H2 in memory, endpoint ``/fhir``). It is built on first use into a cache folder keyed by the
module's content hash (``~/.cache/trialfhir/hapi-server/<hash>/``), so an installed, read-only
package still works and the jar is reused until the module changes. The server runs as a child
process bound to 127.0.0.1; its output goes to a log file, never to the console.

Public surface::

    build_server() -> Path                 # the runnable jar, built if needed
    start_server(port=None) -> RunningHapi  # context manager; .base_url, .stop()
    expunge_everything(base_url)            # empty the server ($expunge, expungeEverything)

Errors: everything raised here derives from :class:`HapiServerError` (a `TrialfhirError`, exit 7):

    HapiServerError
    ├── HapiToolMissing   java 17+ or mvn not found
    ├── HapiBuildError    mvn failed (the message ends with the tail of the build log)
    └── HapiStartError    the server died, timed out, or its port is taken (with the log tail)

``python -m adapter.testing.hapi build|serve|start|stop`` drives the same functions from a shell
(CI uses ``start``/``stop`` to keep one server for a whole test run).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import httpx

from mappings.errors import ExitCode, TrialfhirError

__all__ = [
    "DEFAULT_JAVA_OPTIONS",
    "DEFAULT_START_TIMEOUT",
    "JAR_NAME",
    "HapiBuildError",
    "HapiServerError",
    "HapiStartError",
    "HapiToolMissing",
    "RunningHapi",
    "build_server",
    "cache_dir",
    "expunge_everything",
    "find_free_port",
    "module_dir",
    "module_hash",
    "start_server",
    "wait_until_ready",
]

JAR_NAME = "trialfhir-hapi-server.jar"
"""File name of the runnable jar (the pom's ``finalName``)."""

DEFAULT_JAVA_OPTIONS: tuple[str, ...] = ("-Xmx1g", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
"""JVM options: a 1 GB heap is plenty for test data; C1 only and the serial collector start faster
on small machines. Override with ``java_options=`` or ``TRIALFHIR_HAPI_JAVA_OPTS``."""

DEFAULT_START_TIMEOUT = 600.0
"""Seconds to wait for ``GET /fhir/metadata`` to answer (``TRIALFHIR_HAPI_START_TIMEOUT``)."""

MINIMUM_JAVA = 17
LOG_TAIL_LINES = 40


class HapiServerError(TrialfhirError):
    """Base of every error raised while building or running the local HAPI server."""

    code: ClassVar[str] = "hapi_server"
    exit_code: ClassVar[ExitCode] = ExitCode.UNREACHABLE


class HapiToolMissing(HapiServerError):
    """java (17 or newer) or mvn is not installed or not on PATH."""

    code: ClassVar[str] = "hapi_tool_missing"
    exit_code: ClassVar[ExitCode] = ExitCode.UNREACHABLE


class HapiBuildError(HapiServerError):
    """``mvn package`` failed; the message carries the tail of the build log."""

    code: ClassVar[str] = "hapi_build_failed"
    exit_code: ClassVar[ExitCode] = ExitCode.UNREACHABLE


class HapiStartError(HapiServerError):
    """The server did not come up: it died, timed out, or its port is taken."""

    code: ClassVar[str] = "hapi_start_failed"
    exit_code: ClassVar[ExitCode] = ExitCode.UNREACHABLE


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------


def module_dir() -> Path:
    """The Maven module shipped with the package (read-only in an installed package)."""
    return Path(__file__).resolve().parent / "hapi-server"


def _module_files(root: Path) -> list[Path]:
    files = [root / "pom.xml"]
    files += sorted(p for p in (root / "src").rglob("*") if p.is_file())
    return files


def module_hash(root: Path | None = None) -> str:
    """Hash of the module's pom and sources: the cache key of a build (16 hex digits)."""
    root = root or module_dir()
    digest = hashlib.sha256()
    for path in _module_files(root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """Where builds are cached: ``$TRIALFHIR_CACHE_DIR`` or ``$XDG_CACHE_HOME/trialfhir`` or
    ``~/.cache/trialfhir``, then ``hapi-server``."""
    explicit = os.environ.get("TRIALFHIR_CACHE_DIR")
    if explicit:
        base = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "trialfhir"
    return base / "hapi-server"


def _java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise HapiToolMissing(
            f"java not found: the local HAPI server needs Java {MINIMUM_JAVA} or newer "
            "(Debian/Ubuntu: apt-get install openjdk-17-jdk-headless), or set TRIALFHIR_HAPI_URL "
            "to a HAPI server you run yourself"
        )
    return found


def java_major_version(java: str) -> int:
    """The major version of a java executable (``java -version`` prints it on stderr)."""
    completed = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False, timeout=60
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', completed.stderr + completed.stdout)
    if not match:
        raise HapiToolMissing(f"could not read the version of {java}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _checked_java() -> str:
    java = _java_executable()
    major = java_major_version(java)
    if major < MINIMUM_JAVA:
        raise HapiToolMissing(
            f"{java} is Java {major}; the local HAPI server needs Java {MINIMUM_JAVA} or newer"
        )
    return java


def _maven_executable() -> str:
    found = os.environ.get("TRIALFHIR_MVN") or shutil.which("mvn")
    if not found:
        raise HapiToolMissing(
            "mvn not found: building the local HAPI server needs Maven 3.8+ "
            "(Debian/Ubuntu: apt-get install maven), or set TRIALFHIR_HAPI_URL to a HAPI server "
            "you run yourself"
        )
    return found


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One build at a time per cache folder, across processes (pytest-xdist, CLI + tests)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached_jar(key: str) -> Path:
    return cache_dir() / key / "app" / JAR_NAME


def built_jar() -> Path | None:
    """The cached jar for the current module, or None when it has not been built yet."""
    jar = _cached_jar(module_hash())
    return jar if jar.is_file() else None


def _extract(jar: Path, destination: Path, log_path: Path) -> None:
    """Unpack Spring Boot's fat jar into ``destination`` (a thin jar plus ``lib/``).

    The extracted layout starts with about a quarter less CPU than the nested fat jar (59 vs 78
    CPU-seconds measured), since classes load from plain jars.
    """
    command = [_checked_java(), "-Djarmode=tools", "-jar", str(jar), "extract"]
    command += ["--destination", str(destination)]
    with log_path.open("ab") as log:
        completed = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, check=False, timeout=600
        )
    if completed.returncode != 0 or not (destination / JAR_NAME).is_file():
        raise HapiBuildError(
            f"unpacking the HAPI server jar failed (exit {completed.returncode}); "
            f"log: {log_path}\n{_log_tail(log_path)}"
        )


def build_server(*, force: bool = False, quiet: bool = True) -> Path:
    """Return the runnable jar, building it first if the cache has none for this module version.

    The module is copied to a temporary folder under ``<cache>/<hash>/`` and built there with
    ``mvn -q -B package -DskipTests`` (output in ``<cache>/<hash>/build.log``); the fat jar is then
    unpacked to ``<cache>/<hash>/app/`` (``trialfhir-hapi-server.jar`` and ``lib/``), which is put
    in place only when everything succeeded.

    Raises:
        HapiToolMissing: java 17+ or mvn is missing.
        HapiBuildError: Maven failed; the message ends with the tail of the build log.
    """
    source = module_dir()
    key = module_hash(source)
    target = cache_dir() / key
    jar = _cached_jar(key)
    if jar.is_file() and not force:
        return jar
    with _exclusive(cache_dir() / f"{key}.lock"):
        if jar.is_file() and not force:  # built by another process while we waited
            return jar
        _checked_java()
        maven = _maven_executable()
        target.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="build-", dir=target))
        try:
            shutil.copy2(source / "pom.xml", work / "pom.xml")
            shutil.copytree(source / "src", work / "src")
            log_path = target / "build.log"
            command = [maven, "-B", "package", "-DskipTests"]
            if quiet:
                command.insert(1, "-q")
            with log_path.open("wb") as log:
                completed = subprocess.run(
                    command, cwd=work, stdout=log, stderr=subprocess.STDOUT, check=False
                )
            built = work / "target" / JAR_NAME
            if completed.returncode != 0 or not built.is_file():
                raise HapiBuildError(
                    f"building the HAPI server failed (mvn exit {completed.returncode}); "
                    f"log: {log_path}\n{_log_tail(log_path)}"
                )
            _extract(built, work / "app", log_path)
            shutil.rmtree(target / "app", ignore_errors=True)
            (work / "app").rename(target / "app")
            (target / JAR_NAME).unlink(missing_ok=True)  # the fat jar of earlier versions
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return jar


# --------------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------------


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    """True when nothing listens on the port. Connections of a server that just stopped, still in
    TIME_WAIT, do not count: Tomcat binds with SO_REUSEADDR too."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def metadata_answers(base_url: str, *, timeout: float = 30.0) -> bool:
    """True when ``GET <base>/metadata`` returns a CapabilityStatement."""
    try:
        response = httpx.get(
            f"{base_url.rstrip('/')}/metadata",
            headers={"Accept": "application/fhir+json"},
            timeout=timeout,
        )
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    try:
        return bool(response.json().get("resourceType") == "CapabilityStatement")
    except ValueError:
        return False


def wait_until_ready(base_url: str, *, timeout: float = DEFAULT_START_TIMEOUT) -> float:
    """Poll ``GET <base>/metadata`` until it answers; return the seconds waited.

    Raises:
        HapiStartError: no answer within ``timeout`` seconds.
    """
    started = time.monotonic()
    while not metadata_answers(base_url):
        if time.monotonic() - started > timeout:
            raise HapiStartError(f"no FHIR server answered at {base_url} within {timeout:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


def _java_options(java_options: Sequence[str] | None) -> list[str]:
    if java_options is not None:
        return list(java_options)
    from_env = os.environ.get("TRIALFHIR_HAPI_JAVA_OPTS")
    return from_env.split() if from_env else list(DEFAULT_JAVA_OPTIONS)


def _start_timeout(timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    from_env = os.environ.get("TRIALFHIR_HAPI_START_TIMEOUT")
    return float(from_env) if from_env else DEFAULT_START_TIMEOUT


@dataclass
class RunningHapi:
    """A local HAPI server started by :func:`start_server`; stops when used as a context manager."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    startup_seconds: float = 0.0
    _stopped: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        """The FHIR base, e.g. ``http://127.0.0.1:8091/fhir``."""
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _log_tail(self.log_path, lines)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server: SIGTERM (Spring shuts down cleanly), then SIGKILL after ``timeout``."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def __enter__(self) -> RunningHapi:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(
    port: int | None = None,
    *,
    jar: Path | None = None,
    java_options: Sequence[str] | None = None,
    log_path: Path | None = None,
    startup_timeout: float | None = None,
    detach: bool = False,
    server_args: Sequence[str] = (),
) -> RunningHapi:
    """Start the local HAPI server (building it first if needed) and wait until it answers.

    Args:
        port: TCP port on 127.0.0.1; a free one when None.
        jar: a jar to run instead of the cached build.
        java_options: JVM options (default :data:`DEFAULT_JAVA_OPTIONS`).
        log_path: where the server's output goes (default ``<cache>/logs/hapi-<port>.log``).
        startup_timeout: seconds to wait for ``/fhir/metadata`` (default 600).
        detach: start the JVM in its own session so it outlives this Python process
            (``python -m adapter.testing.hapi start``); it is stopped by pid then.
        server_args: more Spring arguments after the port and address, e.g.
            ``["--trialfhir.storage.mass-ingestion=false"]`` (docs/hapi.md lists the properties).

    Raises:
        HapiToolMissing, HapiBuildError: from the build.
        HapiStartError: the port is taken, the server died (with its log tail) or timed out.
    """
    jar = jar or build_server()
    java = _checked_java()
    if port is None:
        port = find_free_port()
    elif not _port_is_free(port):
        raise HapiStartError(f"port {port} on 127.0.0.1 is already in use")
    if log_path is None:
        log_path = cache_dir() / "logs" / f"hapi-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        java,
        *_java_options(java_options),
        "-jar",
        str(jar),
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        *server_args,
    ]
    timeout = _start_timeout(startup_timeout)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )
    server = RunningHapi(process=process, port=port, log_path=log_path)
    started = time.monotonic()
    try:
        while not metadata_answers(server.base_url):
            if not server.is_running():
                raise HapiStartError(
                    f"the HAPI server exited with code {process.returncode} before answering; "
                    f"log: {log_path}\n{server.log_tail()}"
                )
            if time.monotonic() - started > timeout:
                raise HapiStartError(
                    f"the HAPI server did not answer {server.base_url}/metadata within "
                    f"{timeout:.0f} s; log: {log_path}\n{server.log_tail()}"
                )
            time.sleep(0.5)
        time.sleep(0.2)
        if not server.is_running():  # what answered was another server on the same port
            raise HapiStartError(
                f"the HAPI server exited with code {process.returncode} although something "
                f"answers at {server.base_url}; log: {log_path}\n{server.log_tail()}"
            )
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - started
    return server


def expunge_everything(base_url: str, *, timeout: float = 300.0) -> None:
    """Delete every resource and every version from the server (``POST [base]/$expunge`` with
    ``expungeEverything=true``; the server must allow it, as trialfhir's local one does).

    Raises:
        HapiServerError: the server refused or could not be reached.
    """
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "expungeEverything", "valueBoolean": True}],
    }
    try:
        response = httpx.post(
            f"{base_url.rstrip('/')}/$expunge",
            json=parameters,
            headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise HapiServerError(f"$expunge at {base_url} failed: {exc}") from exc
    if response.status_code != 200:
        raise HapiServerError(
            f"$expunge at {base_url} answered HTTP {response.status_code}: {response.text[:500]}"
        )


def stop_pid(pid: int, *, timeout: float = 30.0) -> bool:
    """Stop a server started with ``detach=True`` by its pid; False when it was not running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def _main(argv: Sequence[str]) -> int:
    """``python -m adapter.testing.hapi build | serve [--port N] | start [--port N] [--pid-file F] |
    stop --pid-file F``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m adapter.testing.hapi", description=_main.__doc__
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the server jar (cached) and print its path")
    serve = commands.add_parser("serve", help="run in the foreground until Ctrl-C")
    serve.add_argument("--port", type=int)
    start = commands.add_parser("start", help="start in the background, print the base URL")
    start.add_argument("--port", type=int)
    start.add_argument("--pid-file", type=Path)
    start.add_argument("--log", type=Path)
    stop = commands.add_parser("stop", help="stop a server started with `start`")
    stop.add_argument("--pid-file", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(build_server())
        elif args.command == "serve":
            with start_server(args.port) as server:
                print(server.base_url, flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    server.process.wait()
        elif args.command == "start":
            server = start_server(args.port, log_path=args.log, detach=True)
            if args.pid_file:
                args.pid_file.write_text(f"{server.pid}\n")
            print(server.base_url, flush=True)
        else:
            pid = int(args.pid_file.read_text().strip())
            if not stop_pid(pid):
                print(f"no server with pid {pid}", file=sys.stderr)
    except HapiServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
