"""Running a Bulk Data ``$export``: ``BulkExport`` (sync, downloads in threads) and
``AsyncBulkExport`` (asyncio), both over the I/O-free ``_bulk`` core and one job folder on disk.

    with FhirClient("https://fhir.example.org/fhir", auth=BearerAuth(token)) as client:
        result = BulkExport(client, Path("export.partial")).run(ExportRequest(types=("Patient",)))
        result.counts            # {"Patient": 1200}; result.issues: the error files' issues

The job folder holds one job: ``job.json`` (server, status URL, request), then the server's
``manifest.json`` once the job is complete, and the files as they are downloaded (``*.part`` and
``*.part.json`` while one is under way). A run given a folder that holds a job for the same server
and request resumes it: it polls the kept status URL, keeps the files already downloaded, resumes a
cut-off identity-encoded file with a Range request, and downloads the rest; a folder holding
another job is refused (``ExportFolderInUse``). Files of two jobs never mix: a manifest whose
transactionTime or files differ from the kept one clears the files downloaded for the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

from mappings.errors import ExitCode, TrialfhirError

from ._auth import _OriginBoundAuth
from ._bulk import (
    DEFAULT_MAX_WAIT,
    MAX_MANIFEST_PAGES,
    MAX_RETRY_AFTER,
    ExportFile,
    ExportManifest,
    ExportPending,
    ExportRequest,
    ExportTooLarge,
    FileCheck,
    InvalidExportFile,
    ManifestPages,
    PollClock,
    cancel_spec,
    check_ndjson,
    checked_url,
    interpret_status,
    kickoff_spec,
    now_iso,
    parse_manifest,
    parse_origins,
    status_spec,
    status_url_of,
    token_plan,
)
from ._core import RequestSpec, RetryState, retry_after_of
from ._errors import FhirError, FhirHttpError, Issue

if TYPE_CHECKING:
    from ._async import AsyncFhirClient
    from ._sync import FhirClient

__all__ = [
    "AsyncBulkExport",
    "BulkExport",
    "ExportEvents",
    "ExportFolderInUse",
    "ExportJob",
    "ExportResult",
]

JOB_FILE = "job.json"
MANIFEST_FILE = "manifest.json"
JOB_FORMAT = "trialfhir-bulk-job/1"
DEFAULT_IDLE_TIMEOUT = 120.0
DEFAULT_CONCURRENCY = 4
DEFAULT_MAX_BYTES = 100 * 1024**3


class ExportFolderInUse(FhirError):
    """The job folder holds another export's job (another server or request) or files this module
    did not write: nothing in it was touched."""

    code = "export_folder_in_use"
    exit_code = ExitCode.OUTPUT_REFUSED


@dataclass(frozen=True, slots=True)
class ExportJob:
    """A kicked-off job: the server, its status URL and what was asked."""

    server: str
    status_url: str
    request: ExportRequest
    kicked_off: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": JOB_FORMAT,
            "server": self.server,
            "status_url": self.status_url,
            "request": self.request.as_dict(),
            "kicked_off": self.kicked_off,
        }


@dataclass(slots=True)
class ExportResult:
    """A complete export: the manifest, what each file held, and the files' issues (error files)."""

    job: ExportJob
    manifest: ExportManifest
    files: list[FileCheck] = field(default_factory=list)
    resumed: bool = False

    @property
    def counts(self) -> dict[str, int]:
        """Resources per type in the output files."""
        counts: dict[str, int] = {}
        by_name = {f.name: f for f in self.manifest.output}
        for check in self.files:
            item = by_name.get(check.name)
            if item is not None:
                counts[item.type] = counts.get(item.type, 0) + check.resources
        return dict(sorted(counts.items()))

    @property
    def issues(self) -> list[Issue]:
        """The issues of the manifest's error files (OperationOutcomes), in file order."""
        return [issue for check in self.files for issue in check.issues]


class ExportEvents:
    """What a run reports as it goes (override what you show; every method does nothing here)."""

    def kicked_off(self, job: ExportJob) -> None: ...

    def resumed(self, job: ExportJob) -> None: ...

    def pending(self, progress: str | None, wait: float) -> None: ...

    def complete(self, manifest: ExportManifest) -> None: ...

    def received(self, size: int) -> None: ...

    def downloaded(self, name: str, resources: int) -> None: ...


# --------------------------------------------------------------------------------------------------
# The job folder (disk only; shared by both runners)


class JobFolder:
    """One job's folder: its state files, its downloads, and the disk limit."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self.written = 0
        self._lock = threading.Lock()

    # -- the job --

    def job(self) -> ExportJob | None:
        """The job kept here, or None when the folder has none (ExportFolderInUse when it holds
        something else)."""
        file = self.path / JOB_FILE
        if not file.is_file():
            if self.path.exists() and any(self.path.iterdir()):
                raise ExportFolderInUse(
                    f"{self.path} holds files but no export job: nothing was touched"
                )
            return None
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ExportFolderInUse(f"{file}: not a readable export job") from exc
        if not isinstance(data, dict) or data.get("format") != JOB_FORMAT:
            raise ExportFolderInUse(f"{file}: not an export job of trialfhir")
        request = data.get("request")
        if not all(isinstance(data.get(k), str) for k in ("server", "status_url", "kicked_off")):
            raise ExportFolderInUse(f"{file}: not an export job of trialfhir")
        return ExportJob(
            data["server"],
            data["status_url"],
            ExportRequest.from_dict(request if isinstance(request, dict) else {}),
            data["kicked_off"],
        )

    def keep_job(self, job: ExportJob) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)  # patient data: this user only
        self._write_json(JOB_FILE, job.as_dict())

    def kept_manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.path / MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def keep_manifest(self, manifest: ExportManifest) -> None:
        """Keep the manifest; when another one was kept (the job answered differently), remove
        the files downloaded for it first: files of two answers never mix."""
        kept = self.kept_manifest()
        if kept is not None and kept != manifest.raw:
            self.clear_downloads()
        self._write_json(MANIFEST_FILE, manifest.raw)

    def clear_downloads(self) -> None:
        """Remove every downloaded or partial file (the job and nothing else stays)."""
        for sub in ("", "error", "deleted"):
            folder = self.path / sub
            if not folder.is_dir():
                continue
            for child in folder.iterdir():
                if child.is_file() and (
                    child.name.endswith((".ndjson", ".part", ".part.json"))
                    or child.name == MANIFEST_FILE
                ):
                    child.unlink()

    def remove(self) -> None:
        """Remove the job folder: the files this module writes, then the folders if empty."""
        self.clear_downloads()
        with contextlib.suppress(OSError):
            (self.path / JOB_FILE).unlink()
        for sub in ("error", "deleted", ""):
            with contextlib.suppress(OSError):
                (self.path / sub).rmdir()

    def _write_json(self, name: str, data: Any) -> None:
        temporary = self.path / f".{name}.tmp"
        temporary.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, self.path / name)

    # -- downloads --

    def done(self, item: ExportFile) -> bool:
        return (self.path / item.name).is_file()

    def part(self, item: ExportFile) -> Path:
        return self.path / f"{item.name}.part"

    def resume_headers(self, item: ExportFile) -> tuple[int, dict[str, str]]:
        """Bytes already held for a cut-off file and the headers that ask for the rest (a Range,
        only when the earlier answer was not content-encoded); (0, {}) to start again."""
        part, meta_file = self.part(item), self.path / f"{item.name}.part.json"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            size = part.stat().st_size
        except (OSError, ValueError):
            return 0, {}
        if not isinstance(meta, dict) or meta.get("url") != item.url or size == 0:
            return 0, {}
        if meta.get("encoding") not in (None, "", "identity"):
            return 0, {}
        headers = {"Range": f"bytes={size}-", "Accept-Encoding": "identity"}
        etag = meta.get("etag")
        strong = etag if isinstance(etag, str) and not etag.startswith("W/") else None
        validator = strong or meta.get("last_modified")  # If-Range takes no weak ETag
        if isinstance(validator, str) and validator:
            headers["If-Range"] = validator
        return size, headers

    def open_part(
        self, item: ExportFile, response: httpx.Response, held: int
    ) -> tuple[IO[bytes], int]:
        """The part file to write the answer into (appended to when it is the rest of a cut-off
        file, else started again) and the byte offset it starts at."""
        part = self.part(item)
        part.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        start = 0
        if held and response.status_code == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {held}-"):
                raise InvalidExportFile(
                    item.name, [f"the server answered a Range request with {content_range!r}"]
                )
            start = held
        meta = {
            "url": item.url,
            "encoding": response.headers.get("Content-Encoding", "identity"),
            "etag": response.headers.get("ETag"),
            "last_modified": response.headers.get("Last-Modified"),
        }
        if start == 0:
            (self.path / f"{item.name}.part.json").write_text(json.dumps(meta), encoding="utf-8")
        handle = part.open("ab" if start else "wb")
        return handle, start

    def count(self, size: int) -> None:
        """Count bytes written against the disk limit (ExportTooLarge past it)."""
        with self._lock:
            self.written += size
            if self.written > self.max_bytes:
                raise ExportTooLarge(self.max_bytes)

    def finish(self, item: ExportFile) -> FileCheck:
        """Check the complete part file and give it its name."""
        part = self.part(item)
        with part.open("rb") as handle:
            check = check_ndjson(item.name, item, handle)
        if item.count is not None and item.count != check.resources:
            raise InvalidExportFile(
                item.name,
                [f"{check.resources} resources where the manifest announced {item.count}"],
            )
        os.replace(part, self.path / item.name)
        with contextlib.suppress(OSError):
            (self.path / f"{item.name}.part.json").unlink()
        return check

    def recheck(self, item: ExportFile) -> FileCheck:
        """A file downloaded by an earlier run, checked again (its counts are reported)."""
        with (self.path / item.name).open("rb") as handle:
            return check_ndjson(item.name, item, handle)

    def sizes(self) -> int:
        return sum(
            p.stat().st_size
            for p in self.path.rglob("*")
            if p.is_file() and p.name.endswith((".ndjson", ".part"))
        )


def _download_spec(item: ExportFile, headers: dict[str, str]) -> RequestSpec:
    merged = {"Accept": "application/fhir+ndjson", **headers}
    return RequestSpec(
        "GET", httpx.URL(item.url), item.type, "bulk-download", tuple(merged.items())
    )


def _same_request(job: ExportJob, server: str, request: ExportRequest) -> bool:
    return job.server == server and job.request == request


# --------------------------------------------------------------------------------------------------
# Sync


class BulkExport:
    """Run a Bulk Data export with a ``FhirClient`` into a job folder (see the module docstring).

    Args:
        client: the client (its auth, TLS, retry policy and limits apply to kick-off and polling).
        folder: the job folder (created when needed; one job per folder).
        concurrency: files downloaded at once.
        max_wait: seconds this run polls before it gives up (ExportTimedOut; the job is kept).
        max_poll_interval: the longest pause between two status requests, whatever Retry-After
            asks (default one hour).
        idle_timeout: seconds a download may go without receiving a byte.
        max_bytes: the disk limit: bytes all the files together may take (ExportTooLarge).
        allow_token_hosts: origins (``https://files.example.org``) besides the server's that may
            receive the access token, when the manifest says its files need it.
        events: what to tell as the run goes (``ExportEvents``).
        sleep, clock: injectable for tests.
    """

    def __init__(
        self,
        client: FhirClient,
        folder: Path,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_wait: float = DEFAULT_MAX_WAIT,
        max_poll_interval: float = MAX_RETRY_AFTER,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        allow_token_hosts: tuple[str, ...] = (),
        events: ExportEvents | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1 or not idle_timeout > 0 or not max_wait > 0:
            raise ValueError("concurrency, idle_timeout and max_wait must be positive")
        self.client = client
        self.folder = JobFolder(folder, max_bytes)
        self.concurrency = concurrency
        self.max_wait = max_wait
        self.max_poll_interval = max_poll_interval
        self.max_manifest_pages = MAX_MANIFEST_PAGES
        self.idle_timeout = idle_timeout
        self.allowed = parse_origins(allow_token_hosts)
        auth = client._http.auth
        if isinstance(auth, _OriginBoundAuth):
            auth.allow_origins(self.allowed)
        self.events = events or ExportEvents()
        self._sleep = sleep
        self._clock = clock
        self._stop = threading.Event()

    @property
    def _core(self) -> Any:
        return self.client._core

    # -- the steps --

    def start(self, request: ExportRequest) -> ExportJob:
        """Kick the export off and keep its job in the folder (which must hold none)."""
        if self.folder.job() is not None:
            raise ExportFolderInUse(f"{self.folder.path} already holds an export job")
        spec = kickoff_spec(self._core, request)
        response = self.client._send(spec)
        job = ExportJob(
            self.client.base_url,
            status_url_of(self._core, response, self.allowed),
            request,
            now_iso(),
        )
        self.folder.keep_job(job)
        self.events.kicked_off(job)
        return job

    def wait(self, job: ExportJob) -> ExportManifest:
        """Poll the job's status URL until the manifest comes (bounded by ``max_wait``)."""
        checked_url(self._core, job.status_url, self.allowed, "status URL")
        clock = PollClock(self.max_wait, self._clock(), self.max_poll_interval)
        spec = status_spec(job.status_url)
        pages = ManifestPages(job.status_url, self.max_manifest_pages)
        while True:
            response = self.client._send(spec)
            answer = interpret_status(self._core, response, spec, clock)
            if not isinstance(answer, ExportPending):
                link = pages.add(answer)
                if link is not None:  # a paged manifest: its next page, polled like the status
                    spec = status_spec(
                        str(checked_url(self._core, link, self.allowed, "next link"))
                    )
                    continue
                manifest = parse_manifest(pages.merged())
                self.folder.keep_manifest(manifest)
                self.events.complete(manifest)
                return manifest
            pause = clock.check(self._clock(), answer.wait)
            self.events.pending(answer.progress, pause)
            self._sleep(pause)

    def download(self, job: ExportJob, manifest: ExportManifest) -> ExportResult:
        """Download every file of the manifest not yet held, ``concurrency`` at a time."""
        plan = token_plan(
            self._core,
            manifest,
            has_credentials=self.client._http.auth is not None,
            allowed=self.allowed,
        )
        self.folder.written = self.folder.sizes()
        checks: dict[str, FileCheck] = {}
        todo: list[ExportFile] = []
        for item in manifest.files:
            if self.folder.done(item):
                checks[item.name] = self.folder.recheck(item)
                self.events.downloaded(item.name, checks[item.name].resources)
            else:
                todo.append(item)
        self._stop.clear()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._fetch, item, plan[item.name]): item for item in todo}
            try:
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for future in finished:
                    future.result()  # the first failure, raised here
            except BaseException:
                self._stop.set()  # Ctrl-C or a failure: the others stop between two chunks
                for future in futures:
                    future.cancel()
                raise
            for future, item in futures.items():
                checks[item.name] = future.result()
        ordered = [checks[item.name] for item in manifest.files]
        return ExportResult(job, manifest, ordered)

    def run(self, request: ExportRequest) -> ExportResult:
        """Resume the job kept in the folder when it is for the same server and request, else kick
        a new one off; wait for it; download its files."""
        job = self.folder.job()
        resumed = job is not None
        if job is None:
            job = self.start(request)
        elif not _same_request(job, self.client.base_url, request):
            raise ExportFolderInUse(
                f"{self.folder.path} holds the job of another export ({job.request.as_dict()} "
                f"on {job.server}); cancel it or use another folder"
            )
        else:
            self.events.resumed(job)
        result = self.download(job, self.wait(job))
        result.resumed = resumed
        return result

    def cancel(self) -> ExportJob | None:
        """``DELETE`` the kept job's status URL and remove the job folder; None when it holds none."""
        job = self.folder.job()
        if job is None:
            return None
        checked_url(self._core, job.status_url, self.allowed, "status URL")
        self.client._send(cancel_spec(job.status_url))
        self.folder.remove()
        return job

    # -- one file --

    def _fetch(self, item: ExportFile, send_token: bool) -> FileCheck:
        state = RetryState(self.client.retry, _download_spec(item, {}), time.monotonic())
        while True:
            state.attempt += 1
            held, headers = self.folder.resume_headers(item)
            spec = _download_spec(item, headers)
            try:
                self._stream(item, spec, held, send_token)
                return self._finish(item)
            except httpx.RequestError as exc:
                failure: FhirError = self._core.transport_error(exc, spec)
                failure.__cause__ = exc
                decision = state.decide(failure, None, time.monotonic())
            except _Retryable as exc:
                decision = state.decide(exc.error, exc.retry_after, time.monotonic())
            if isinstance(decision, FhirError):
                raise decision
            if self._stop.is_set():
                raise _Stopped
            self._sleep(decision)

    def _finish(self, item: ExportFile) -> FileCheck:
        check = self.folder.finish(item)
        self.events.downloaded(item.name, check.resources)
        return check

    def _stream(self, item: ExportFile, spec: RequestSpec, held: int, send_token: bool) -> None:
        http = self.client._http
        request = http.build_request(
            "GET",
            spec.url,
            headers=list(spec.headers),
            timeout=httpx.Timeout(self.idle_timeout, connect=self.idle_timeout),
        )
        auth: Any = httpx.USE_CLIENT_DEFAULT if send_token else None
        if not send_token:  # nor a token given as an extra header of the client
            request.headers.pop("Authorization", None)
        response = http.send(request, stream=True, auth=auth)
        try:
            _check_download_status(self._core, response, spec, held)
            handle, _ = self.folder.open_part(item, response, held)
            with handle:
                for chunk in response.iter_bytes():
                    if self._stop.is_set():
                        raise _Stopped
                    self.folder.count(len(chunk))
                    handle.write(chunk)
                    self.events.received(len(chunk))
        finally:
            response.close()


class _Stopped(TrialfhirError):
    """Another download failed or the user interrupted: this one stops, its part file kept (a signal
    between the download workers; never leaves this module)."""

    code = "download_stopped"


class _Retryable(TrialfhirError):
    """A download answer worth another try (a signal inside this module, never raised out of it)."""

    code = "download_retryable"

    def __init__(self, error: FhirHttpError, retry_after: float | None) -> None:
        self.error = error
        self.retry_after = retry_after


def _check_download_status(
    core: Any, response: httpx.Response, spec: RequestSpec, held: int
) -> None:
    """Raise for an error answer (after reading its small body); a 5xx/429 may be retried."""
    if response.status_code in (200, 206) and not (response.status_code == 206 and not held):
        return
    response.read()
    if response.status_code == 206:
        raise InvalidExportFile(spec.url.path, ["206 Partial Content to a request without Range"])
    if response.status_code == 416:  # the range was wrong: start again
        error = core.http_error(response, spec)
        raise _Retryable(error, 0.0)
    error = core.http_error(response, spec)
    if response.status_code in core.retry.statuses:
        raise _Retryable(error, retry_after_of(response))
    raise error


# --------------------------------------------------------------------------------------------------
# Async


class AsyncBulkExport:
    """``BulkExport`` for an ``AsyncFhirClient`` (same arguments; the steps are coroutines)."""

    def __init__(
        self,
        client: AsyncFhirClient,
        folder: Path,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_wait: float = DEFAULT_MAX_WAIT,
        max_poll_interval: float = MAX_RETRY_AFTER,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        allow_token_hosts: tuple[str, ...] = (),
        events: ExportEvents | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1 or not idle_timeout > 0 or not max_wait > 0:
            raise ValueError("concurrency, idle_timeout and max_wait must be positive")
        self.client = client
        self.folder = JobFolder(folder, max_bytes)
        self.concurrency = concurrency
        self.max_wait = max_wait
        self.max_poll_interval = max_poll_interval
        self.max_manifest_pages = MAX_MANIFEST_PAGES
        self.idle_timeout = idle_timeout
        self.allowed = parse_origins(allow_token_hosts)
        auth = client._http.auth
        if isinstance(auth, _OriginBoundAuth):
            auth.allow_origins(self.allowed)
        self.events = events or ExportEvents()
        self._sleep = sleep
        self._clock = clock

    @property
    def _core(self) -> Any:
        return self.client._core

    async def start(self, request: ExportRequest) -> ExportJob:
        """Kick the export off and keep its job in the folder (which must hold none)."""
        if self.folder.job() is not None:
            raise ExportFolderInUse(f"{self.folder.path} already holds an export job")
        response = await self.client._send(kickoff_spec(self._core, request))
        job = ExportJob(
            self.client.base_url,
            status_url_of(self._core, response, self.allowed),
            request,
            now_iso(),
        )
        self.folder.keep_job(job)
        self.events.kicked_off(job)
        return job

    async def wait(self, job: ExportJob) -> ExportManifest:
        """Poll the job's status URL until the manifest comes (bounded by ``max_wait``)."""
        checked_url(self._core, job.status_url, self.allowed, "status URL")
        clock = PollClock(self.max_wait, self._clock(), self.max_poll_interval)
        spec = status_spec(job.status_url)
        pages = ManifestPages(job.status_url, self.max_manifest_pages)
        while True:
            response = await self.client._send(spec)
            answer = interpret_status(self._core, response, spec, clock)
            if not isinstance(answer, ExportPending):
                link = pages.add(answer)
                if link is not None:  # a paged manifest: its next page, polled like the status
                    spec = status_spec(
                        str(checked_url(self._core, link, self.allowed, "next link"))
                    )
                    continue
                manifest = parse_manifest(pages.merged())
                self.folder.keep_manifest(manifest)
                self.events.complete(manifest)
                return manifest
            pause = clock.check(self._clock(), answer.wait)
            self.events.pending(answer.progress, pause)
            await self._sleep(pause)

    async def download(self, job: ExportJob, manifest: ExportManifest) -> ExportResult:
        """Download every file of the manifest not yet held, ``concurrency`` at a time."""
        plan = token_plan(
            self._core,
            manifest,
            has_credentials=self.client._http.auth is not None,
            allowed=self.allowed,
        )
        self.folder.written = self.folder.sizes()
        checks: dict[str, FileCheck] = {}
        todo: list[ExportFile] = []
        for item in manifest.files:
            if self.folder.done(item):
                checks[item.name] = self.folder.recheck(item)
                self.events.downloaded(item.name, checks[item.name].resources)
            else:
                todo.append(item)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(item: ExportFile) -> FileCheck:
            async with gate:
                return await self._fetch(item, plan[item.name])

        async with asyncio.TaskGroup() as group:
            tasks = {item.name: group.create_task(one(item)) for item in todo}
        for name, task in tasks.items():
            checks[name] = task.result()
        return ExportResult(job, manifest, [checks[item.name] for item in manifest.files])

    async def run(self, request: ExportRequest) -> ExportResult:
        """Resume the job kept in the folder when it is for the same server and request, else kick
        a new one off; wait for it; download its files."""
        job = self.folder.job()
        resumed = job is not None
        if job is None:
            job = await self.start(request)
        elif not _same_request(job, self.client.base_url, request):
            raise ExportFolderInUse(
                f"{self.folder.path} holds the job of another export ({job.request.as_dict()} "
                f"on {job.server}); cancel it or use another folder"
            )
        else:
            self.events.resumed(job)
        result = await self.download(job, await self.wait(job))
        result.resumed = resumed
        return result

    async def cancel(self) -> ExportJob | None:
        """``DELETE`` the kept job's status URL and remove the job folder; None when it holds none."""
        job = self.folder.job()
        if job is None:
            return None
        checked_url(self._core, job.status_url, self.allowed, "status URL")
        await self.client._send(cancel_spec(job.status_url))
        self.folder.remove()
        return job

    async def _fetch(self, item: ExportFile, send_token: bool) -> FileCheck:
        state = RetryState(self.client.retry, _download_spec(item, {}), time.monotonic())
        while True:
            state.attempt += 1
            held, headers = self.folder.resume_headers(item)
            spec = _download_spec(item, headers)
            try:
                await self._stream(item, spec, held, send_token)
                check = self.folder.finish(item)
                self.events.downloaded(item.name, check.resources)
                return check
            except httpx.RequestError as exc:
                failure: FhirError = self._core.transport_error(exc, spec)
                failure.__cause__ = exc
                decision = state.decide(failure, None, time.monotonic())
            except _Retryable as exc:
                decision = state.decide(exc.error, exc.retry_after, time.monotonic())
            if isinstance(decision, FhirError):
                raise decision
            await self._sleep(decision)

    async def _stream(
        self, item: ExportFile, spec: RequestSpec, held: int, send_token: bool
    ) -> None:
        http = self.client._http
        request = http.build_request(
            "GET",
            spec.url,
            headers=list(spec.headers),
            timeout=httpx.Timeout(self.idle_timeout, connect=self.idle_timeout),
        )
        auth: Any = httpx.USE_CLIENT_DEFAULT if send_token else None
        if not send_token:  # nor a token given as an extra header of the client
            request.headers.pop("Authorization", None)
        response = await http.send(request, stream=True, auth=auth)
        try:
            if response.status_code not in (200, 206) or (response.status_code == 206 and not held):
                await response.aread()
            _check_download_status(self._core, response, spec, held)
            handle, _ = self.folder.open_part(item, response, held)
            with handle:
                async for chunk in response.aiter_bytes():
                    self.folder.count(len(chunk))
                    handle.write(chunk)
                    self.events.received(len(chunk))
        finally:
            await response.aclose()
