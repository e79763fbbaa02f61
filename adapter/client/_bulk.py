"""FHIR Bulk Data Access (IG v2) ``$export``: everything that is not I/O.

The kick-off request (system, ``Patient`` or ``Group/[id]`` level; ``_type``, ``_since``,
``_typeFilter``, ``_outputFormat``), the status URL's answers (202 + ``X-Progress`` +
``Retry-After``, 200 + the manifest, an error with its OperationOutcome), the manifest's checks, the
plan of the downloads (local file names, which request carries the access token) and the checks of a
downloaded NDJSON file. ``BulkExport`` and ``AsyncBulkExport`` (``_bulk_run``) only send what this
builds and write what it names. See docs/client.md ("Bulk Data").
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

from adapter.fhir_query import encode_query

from ._core import (
    FHIR_JSON,
    RESOURCE_ID_RE,
    RESOURCE_TYPE_RE,
    ClientCore,
    RequestSpec,
    loads_json,
    origin_of,
    origin_text,
    retry_after_of,
)
from ._errors import FhirTimeout, InvalidResponse, Issue, parse_issues

__all__ = [
    "DEFAULT_MAX_WAIT",
    "MAX_MANIFEST_PAGES",
    "NDJSON",
    "ExportFile",
    "ExportLevel",
    "ExportManifest",
    "ExportPending",
    "ExportRequest",
    "ExportTimedOut",
    "ExportTooLarge",
    "FileCheck",
    "InvalidExportFile",
    "InvalidManifest",
    "ManifestPages",
    "TokenHostRefused",
    "check_ndjson",
    "parse_manifest",
]

NDJSON = "application/fhir+ndjson"
ExportLevel = Literal["system", "patient", "group"]

DEFAULT_MAX_WAIT = 6 * 3600.0
"""Seconds a run polls a job before it gives up (the job is kept: a re-run resumes it)."""

FIRST_POLL = 1.0
"""Seconds before the first status request when the server sends no Retry-After."""

MAX_POLL = 60.0
"""Longest pause between two status requests without Retry-After (the interval grows by half each
time up to this); a Retry-After is honoured up to MAX_RETRY_AFTER."""

MAX_RETRY_AFTER = 3600.0

MAX_PROGRESS_TEXT = 80
"""Characters of X-Progress shown (the header is the server's free text)."""

_SINCE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?")
_TYPE_FILTER_RE = re.compile(r"([A-Z][A-Za-z]{1,63})\?[^\s#]+")


# --------------------------------------------------------------------------------------------------
# Errors (all under InvalidResponse or FhirTimeout: the CLI's exit codes 10 and 7)


class InvalidManifest(InvalidResponse):
    """The completed job's manifest is not a Bulk Data manifest (every problem listed)."""

    code = "invalid_manifest"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:5])
        more = f"; ... and {len(self.problems) - 5} more" if len(self.problems) > 5 else ""
        super().__init__(f"the export manifest was refused: {shown}{more}")


class TokenHostRefused(InvalidResponse):
    """The manifest says its files need the access token and they lie on another origin than the
    FHIR server's: the token is not sent there unless the user allows that host."""

    code = "token_host_refused"

    def __init__(self, host_origin: str, server_origin: str) -> None:
        self.host_origin = host_origin
        self.server_origin = server_origin
        super().__init__(
            f"the export's files are on {host_origin} and need the access token, which is only "
            f"sent to the FHIR server ({server_origin}); allow that host explicitly "
            "(allow_token_hosts, --allow-token-host) if you trust it"
        )


class InvalidExportFile(InvalidResponse):
    """A downloaded file is not the NDJSON the manifest announced (file, line, reason)."""

    code = "invalid_export_file"

    def __init__(self, name: str, problems: Sequence[str]) -> None:
        self.name = name
        self.problems = list(problems)
        shown = "; ".join(self.problems[:5])
        more = f"; ... and {len(self.problems) - 5} more" if len(self.problems) > 5 else ""
        super().__init__(f"downloaded file {name} was refused: {shown}{more}")


class ExportTooLarge(InvalidResponse):
    """The export's files together pass the disk limit (``max_bytes``): downloading stopped."""

    code = "export_too_large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"the export's files pass the disk limit of {limit} bytes; downloading stopped "
            "(the job is kept): raise the limit (max_bytes, --max-disk-gb) and run again"
        )


class ExportTimedOut(FhirTimeout):
    """The job did not complete within ``max_wait`` seconds of polling (it is kept on the server)."""

    code = "export_timed_out"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"the export job did not complete within {seconds:g} s of polling (the wait limit); "
            "it is kept: run again to resume it, or cancel it",
            method="GET",
            resource_type="$export",
        )


# --------------------------------------------------------------------------------------------------
# The kick-off


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export.

    Args:
        level: ``system`` (``[base]/$export``), ``patient`` (``[base]/Patient/$export``) or
            ``group`` (``[base]/Group/[id]/$export``, with ``group_id``).
        types: ``_type``: resource types to export (all the server offers when empty).
        since: ``_since``: only resources changed after this FHIR instant (``2026-01-01T00:00:00Z``;
            a date alone is accepted and sent as given).
        type_filters: ``_typeFilter``: ``Type?search`` queries (one parameter each).
        output_format: ``_outputFormat`` (``application/fhir+ndjson``; ``None`` leaves it out).
    """

    level: ExportLevel = "system"
    group_id: str | None = None
    types: tuple[str, ...] = ()
    since: str | None = None
    type_filters: tuple[str, ...] = ()
    output_format: str | None = NDJSON

    def problems(self) -> list[str]:
        """Everything wrong with the request (empty when it can be sent)."""
        found: list[str] = []
        if self.level not in ("system", "patient", "group"):
            found.append(f"level {self.level!r}: system, patient or group")
        if self.level == "group":
            if not self.group_id or not RESOURCE_ID_RE.fullmatch(self.group_id):
                found.append("group: a Group id (1-64 of A-Z a-z 0-9 - .)")
        elif self.group_id is not None:
            found.append("a group id is only for the group level")
        for name in self.types:
            if not RESOURCE_TYPE_RE.fullmatch(name):
                found.append(f"type {name!r}: not a FHIR resource type")
        if self.since is not None and not _SINCE_RE.fullmatch(self.since):
            found.append(
                f"since {self.since!r}: a FHIR instant such as 2026-01-31T12:00:00Z (with its zone)"
            )
        for query in self.type_filters:
            match = _TYPE_FILTER_RE.fullmatch(query)
            if match is None:
                found.append(f"type filter {query!r}: Type?search, e.g. Observation?code=8480-6")
            elif self.types and match.group(1) not in self.types:
                found.append(f"type filter {query!r}: its type is not among the types asked for")
        return found

    def check(self) -> ExportRequest:
        """The request itself, or ValueError listing every problem."""
        found = self.problems()
        if found:
            raise ValueError("; ".join(found))
        return self

    def segments(self) -> tuple[str, ...]:
        if self.level == "group":
            assert self.group_id is not None
            return ("Group", self.group_id, "$export")
        if self.level == "patient":
            return ("Patient", "$export")
        return ("$export",)

    def pairs(self) -> list[tuple[str, str]]:
        """The query parameters, in a fixed order."""
        pairs: list[tuple[str, str]] = []
        if self.output_format:
            pairs.append(("_outputFormat", self.output_format))
        if self.since:
            pairs.append(("_since", self.since))
        if self.types:
            pairs.append(("_type", ",".join(self.types)))
        pairs.extend(("_typeFilter", query) for query in self.type_filters)
        return pairs

    def as_dict(self) -> dict[str, Any]:
        """The request as JSON (kept beside the job, to recognise it when a run resumes)."""
        return {
            "level": self.level,
            "group_id": self.group_id,
            "types": list(self.types),
            "since": self.since,
            "type_filters": list(self.type_filters),
            "output_format": self.output_format,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportRequest:
        level = data.get("level")
        return cls(
            level=level if level in ("system", "patient", "group") else "system",
            group_id=data.get("group_id"),
            types=tuple(data.get("types") or ()),
            since=data.get("since"),
            type_filters=tuple(data.get("type_filters") or ()),
            output_format=data.get("output_format"),
        )


def kickoff_spec(core: ClientCore, request: ExportRequest) -> RequestSpec:
    """``GET [base]/.../$export?...`` with ``Prefer: respond-async``.

    Marked safe to repeat: a 429/503 answer created no job; a kick-off whose answer was lost may
    leave one job orphaned on the server (servers expire them)."""
    request.check()
    url = core.url(*request.segments(), query=encode_query(request.pairs()))
    headers = (("Accept", FHIR_JSON), ("Prefer", "respond-async"))
    return RequestSpec("GET", url, "$export", "bulk-kickoff", headers)


def status_url_of(
    core: ClientCore, response: httpx.Response, allowed: frozenset[tuple[str, str, int]]
) -> str:
    """The job's status URL from the kick-off's 202 answer (its ``Content-Location``)."""
    if response.status_code != 202:
        raise InvalidResponse(
            f"GET $export: HTTP {response.status_code} instead of 202 Accepted "
            "(the server did not start an asynchronous export)"
        )
    location = response.headers.get("Content-Location")
    if not location:
        raise InvalidResponse("GET $export: 202 Accepted without a Content-Location (status URL)")
    return str(checked_url(core, location, allowed, "status URL"))


def checked_url(
    core: ClientCore, link: str, allowed: frozenset[tuple[str, str, int]], what: str
) -> httpx.URL:
    """An absolute http(s) URL (relative ones resolved against the base) on the server's origin or
    an allowed one; InvalidResponse otherwise."""
    try:
        url = httpx.URL(link)
        if not url.is_absolute_url:
            url = core.base_url.join(link)
    except httpx.InvalidURL as exc:
        raise InvalidResponse(f"the server's {what} is not a URL") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidResponse(f"the server's {what} is not an http(s) URL")
    origin = origin_of(url)
    if origin != core.origin and origin not in allowed:
        raise InvalidResponse(
            f"the server's {what} is on {origin_text(url)}, not on the FHIR server "
            f"({origin_text(core.base_url)}); refusing to send the credentials there"
        )
    return url


def status_spec(status_url: str) -> RequestSpec:
    """``GET`` the status URL (202 while the job runs, 200 and the manifest when it is done)."""
    return RequestSpec(
        "GET", httpx.URL(status_url), "$export", "bulk-status", (("Accept", "application/json"),)
    )


def cancel_spec(status_url: str) -> RequestSpec:
    """``DELETE`` the status URL (cancel the job, or tell the server its files may go); a job that
    is already gone (404, 410) is not an error."""
    return RequestSpec(
        "DELETE",
        httpx.URL(status_url),
        "$export",
        "bulk-cancel",
        (("Accept", FHIR_JSON),),
        ok_statuses=frozenset({404, 410}),
    )


# --------------------------------------------------------------------------------------------------
# Polling


@dataclass(frozen=True, slots=True)
class ExportPending:
    """The job still runs: what the server says of its progress and how long to wait."""

    progress: str | None
    wait: float


class PollClock:
    """The polling bound and intervals of one run (no sleeping: the runners sleep)."""

    def __init__(
        self, max_wait: float, started: float, max_interval: float = MAX_RETRY_AFTER
    ) -> None:
        if not max_wait > 0 or not max_interval > 0:
            raise ValueError("max_wait and max_interval must be positive")
        self.max_wait = max_wait
        self.max_interval = max_interval
        self.started = started
        self.interval = FIRST_POLL

    def next_wait(self, retry_after: float | None) -> float:
        """Seconds to wait before the next status request: the server's Retry-After when it sent
        one, else an interval growing from FIRST_POLL to MAX_POLL; never more than
        ``max_interval`` (HAPI asks for 120 s however small the job)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_interval)
        wait = min(self.interval, self.max_interval)
        self.interval = min(self.interval * 1.5, MAX_POLL)
        return wait

    def check(self, now: float, wait: float) -> float:
        """``wait``, cut to the time left; ExportTimedOut when no time is left."""
        left = self.started + self.max_wait - now
        if left <= 0:
            raise ExportTimedOut(self.max_wait)
        return min(wait, left)


def progress_text(response: httpx.Response) -> str | None:
    """X-Progress as printable text, cut to MAX_PROGRESS_TEXT characters (None when absent)."""
    value = response.headers.get("X-Progress")
    if not value:
        return None
    text = "".join(c if c.isprintable() else " " for c in value).strip()
    return text[:MAX_PROGRESS_TEXT] or None


def interpret_status(
    core: ClientCore, response: httpx.Response, spec: RequestSpec, clock: PollClock
) -> ExportPending | dict[str, Any]:
    """A status answer as ExportPending (202) or the manifest's JSON (200). Error statuses were
    already raised by the client's send loop (with the server's OperationOutcome)."""
    if response.status_code == 202:
        return ExportPending(progress_text(response), clock.next_wait(retry_after_of(response)))
    if response.status_code != 200:
        raise InvalidResponse(
            f"GET $export status: HTTP {response.status_code} (expected 200 or 202)"
        )
    body = loads_json(response, spec)
    if not isinstance(body, dict):
        raise InvalidManifest(["the body is not a JSON object"])
    return body


# --------------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One file of the manifest: its kind (``output``, ``error`` or ``deleted``), resource type,
    URL, the count the server announced (when it did) and the local name it gets."""

    kind: Literal["output", "error", "deleted"]
    type: str
    url: str
    count: int | None
    name: str


@dataclass(frozen=True, slots=True)
class ExportManifest:
    """A completed job's manifest, checked."""

    transaction_time: str
    request: str
    requires_access_token: bool
    files: tuple[ExportFile, ...]
    raw: dict[str, Any] = field(compare=False)

    @property
    def output(self) -> tuple[ExportFile, ...]:
        return tuple(f for f in self.files if f.kind == "output")

    @property
    def errors(self) -> tuple[ExportFile, ...]:
        return tuple(f for f in self.files if f.kind == "error")


_FOLDERS = {"output": "", "error": "error/", "deleted": "deleted/"}


def parse_manifest(body: Mapping[str, Any]) -> ExportManifest:
    """Check a manifest and name its files locally: ``<Type>.<nnn>.ndjson`` for output,
    ``error/<Type>.<nnn>.ndjson`` for errors, ``deleted/<Type>.<nnn>.ndjson`` for deletions, numbered
    from 000 per type in the manifest's order. Every problem is listed in one InvalidManifest."""
    problems: list[str] = []
    transaction_time = body.get("transactionTime")
    if not isinstance(transaction_time, str) or not transaction_time:
        problems.append("transactionTime: missing or not a string")
    request = body.get("request")
    if not isinstance(request, str):
        problems.append("request: missing or not a string")
    requires = body.get("requiresAccessToken")
    if not isinstance(requires, bool):
        problems.append("requiresAccessToken: missing or not true/false")
    links = body.get("link")
    if isinstance(links, list) and any(
        isinstance(link, dict) and link.get("relation") == "next" for link in links
    ):
        problems.append(
            "a manifest page (link next) read alone: its other pages' files would be lost "
            "(ManifestPages puts them together)"
        )
    files: list[ExportFile] = []
    numbers: dict[str, int] = {}
    for kind in ("output", "error", "deleted"):
        entries = body.get(kind, [])
        if kind == "output" and kind not in body:
            problems.append("output: missing")
            continue
        if not isinstance(entries, list):
            problems.append(f"{kind}: not an array")
            continue
        for index, entry in enumerate(entries):
            where = f"{kind}[{index}]"
            if not isinstance(entry, dict):
                problems.append(f"{where}: not an object")
                continue
            rtype, url, count = entry.get("type"), entry.get("url"), entry.get("count")
            bad = False
            if not isinstance(rtype, str) or not RESOURCE_TYPE_RE.fullmatch(rtype):
                problems.append(f"{where}.type: not a FHIR resource type")
                bad = True
            if not isinstance(url, str) or not _is_http_url(url):
                problems.append(f"{where}.url: not an absolute http(s) URL")
                bad = True
            if count is not None and (type(count) is not int or count < 0):
                problems.append(f"{where}.count: not a whole number")
                bad = True
            if bad:
                continue
            assert isinstance(rtype, str) and isinstance(url, str)
            key = _FOLDERS[kind] + rtype
            number = numbers.get(key, 0)
            numbers[key] = number + 1
            files.append(
                ExportFile(
                    kind,
                    rtype,
                    url,
                    count if isinstance(count, int) else None,
                    f"{key}.{number:03d}.ndjson",
                )
            )
    if problems:
        raise InvalidManifest(problems)
    assert isinstance(transaction_time, str) and isinstance(request, str)
    return ExportManifest(transaction_time, request, bool(requires), tuple(files), dict(body))


MAX_MANIFEST_PAGES = 1000
"""Pages of one manifest (``link`` with relation ``next``) followed before the manifest is refused."""

_FILE_KINDS = ("output", "error", "deleted")


class ManifestPages:
    """A manifest the server gives in pages (each page's ``link`` with relation ``next`` names the
    next one, as the Bulk Data IG's partial manifests do): the pages' ``output``, ``error`` and
    ``deleted`` files put together into one manifest, at most ``max_pages`` pages, no link twice.

        pages = ManifestPages(status_url)
        link = pages.add(first_page)          # None: that was the last page
        ...                                   # GET each link (a 202 there: poll it like the status URL)
        manifest = parse_manifest(pages.merged())
    """

    def __init__(self, first_url: str, max_pages: int = MAX_MANIFEST_PAGES) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self.max_pages = max_pages
        self.pages: list[dict[str, Any]] = []
        self._seen = {first_url}

    def add(self, page: Mapping[str, Any]) -> str | None:
        """Keep a page; its ``next`` link (as the server wrote it: the caller checks its origin), or
        None for the last page.

        Raises:
            InvalidManifest: ``link`` is not an array of objects, a ``next`` without a URL or more
                than one, a link already followed, more than ``max_pages`` pages.
        """
        self.pages.append(dict(page))
        links = page.get("link", [])
        if not isinstance(links, list) or not all(isinstance(link, dict) for link in links):
            raise InvalidManifest([f"page {len(self.pages)}: link: not an array of objects"])
        following = [link.get("url") for link in links if link.get("relation") == "next"]
        if not following:
            return None
        if len(following) > 1 or not isinstance(following[0], str) or not following[0]:
            raise InvalidManifest([f"page {len(self.pages)}: link next: not one URL"])
        url = following[0]
        if url in self._seen:
            raise InvalidManifest([f"page {len(self.pages)}: link next: a page already read"])
        if len(self.pages) >= self.max_pages:
            raise InvalidManifest([f"more than {self.max_pages} manifest pages"])
        self._seen.add(url)
        return url

    def merged(self) -> dict[str, Any]:
        """One manifest: the first page without its ``link``, with every page's files in order
        (a single page comes back as it was). Pages that disagree on ``transactionTime`` or
        ``requiresAccessToken`` are refused (InvalidManifest): they are not one export."""
        first = {k: v for k, v in self.pages[0].items() if k != "link"}
        if len(self.pages) == 1:
            return first
        problems: list[str] = []
        for number, page in enumerate(self.pages[1:], start=2):
            for key in ("transactionTime", "requiresAccessToken"):
                if page.get(key) != first.get(key):
                    problems.append(f"page {number}: {key} differs from page 1's")
        for kind in _FILE_KINDS:
            combined: list[Any] = []
            present = False
            for number, page in enumerate(self.pages, start=1):
                if kind not in page:
                    continue
                present = True
                if not isinstance(page[kind], list):
                    problems.append(f"page {number}: {kind}: not an array")
                    continue
                combined.extend(page[kind])
            if present:
                first[kind] = combined
        if problems:
            raise InvalidManifest(problems)
        return first


def _is_http_url(text: str) -> bool:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def token_plan(
    core: ClientCore,
    manifest: ExportManifest,
    *,
    has_credentials: bool,
    allowed: frozenset[tuple[str, str, int]],
) -> dict[str, bool]:
    """For each file (by local name), whether its download carries the client's credentials: only
    when the manifest says ``requiresAccessToken`` and the file is on the server's origin or on a
    host the user allowed. A file that needs the token on any other host is refused
    (TokenHostRefused) before anything is downloaded, when there is a token to send."""
    plan: dict[str, bool] = {}
    for item in manifest.files:
        url = httpx.URL(item.url)
        origin = origin_of(url)
        trusted = origin == core.origin or origin in allowed
        if manifest.requires_access_token and has_credentials and not trusted:
            raise TokenHostRefused(origin_text(url), origin_text(core.base_url))
        plan[item.name] = manifest.requires_access_token and trusted
    return plan


def parse_origins(hosts: Iterable[str]) -> frozenset[tuple[str, str, int]]:
    """User-allowed hosts (``https://files.example.org`` or ``https://files.example.org:8443``) as
    origins; ValueError for anything else."""
    origins = set()
    for host in hosts:
        try:
            url = httpx.URL(host)
        except httpx.InvalidURL as exc:
            raise ValueError(f"{host!r}: not a URL") from exc
        if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/"):
            raise ValueError(f"{host!r}: give an origin, e.g. https://files.example.org")
        origins.add(origin_of(url))
    return frozenset(origins)


# --------------------------------------------------------------------------------------------------
# A downloaded file


@dataclass(slots=True)
class FileCheck:
    """What a downloaded NDJSON file held: resources per line, and for error files their issues."""

    name: str
    resources: int = 0
    issues: list[Issue] = field(default_factory=list)


MAX_PROBLEMS = 20


def check_ndjson(name: str, item: ExportFile, lines: Iterable[bytes]) -> FileCheck:
    """Check every line of a downloaded file: a JSON object whose resourceType is the file's type
    (any type in an error file, whose OperationOutcomes give their issues); blank lines are
    skipped. Raises InvalidExportFile (line numbers, never values) on the first MAX_PROBLEMS."""
    result = FileCheck(name)
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            problems.append(f"line {number}: not JSON (cut off, or not NDJSON)")
        else:
            rtype = value.get("resourceType") if isinstance(value, dict) else None
            if not isinstance(rtype, str):
                problems.append(f"line {number}: not a FHIR resource")
            elif item.kind == "error":
                result.resources += 1
                result.issues.extend(parse_issues(value))
            elif rtype != item.type:
                problems.append(f"line {number}: a {rtype} in a file of {item.type}")
            else:
                result.resources += 1
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise InvalidExportFile(name, problems)
    return result


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
