"""Transaction and batch Bundles: build them from resources, read their per-entry outcomes (no I/O).

``transaction_bundle`` turns resource dicts into a transaction (or batch) whose entries are conditional on
each resource's business identifier, so loading the same data twice creates nothing new.
``parse_bundle_response`` reads a transaction-response / batch-response into ``EntryOutcome`` records;
``UploadSummary`` adds them up per resource type for chunked uploads.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ._errors import (
    FhirHttpError,
    InvalidResponse,
    Issue,
    TransactionFailed,
    TransactionResponseMismatch,
    parse_issues,
)
from ._query import encode_query, token

__all__ = [
    "BundleResult",
    "EntryOutcome",
    "TransactionMode",
    "UnwritableResources",
    "UploadPlan",
    "UploadSummary",
    "bundle_is_idempotent",
    "business_condition",
    "chunked",
    "entry_request",
    "parse_bundle_response",
    "response_problems",
    "shift_indexes",
    "transaction_bundle",
]

TransactionMode = Literal["conditional-update", "conditional-create", "update", "create"]
"""How ``transaction_bundle`` writes each resource.

- ``conditional-update``: ``PUT Type?identifier=system|value`` carrying the resource with its own id;
- ``conditional-create``: ``POST Type`` with ``ifNoneExist: identifier=system|value``;
- ``update``: ``PUT Type/id`` (idempotent by id, no identifier check);
- ``create``: plain ``POST Type`` (not idempotent: never retried).
"""

EntryResult = Literal["created", "updated", "unchanged", "deleted", "read", "ok", "failed"]

HAPI_STORAGE_CODES = "https://hapifhir.io/fhir/CodeSystem/hapi-fhir-storage-response-code"


# --------------------------------------------------------------------------------------------------
# Building


def _business_identifier(
    resource: Mapping[str, Any], identifier_system: str | None
) -> tuple[str, str] | None:
    identifiers = resource.get("identifier") or []
    if isinstance(identifiers, Mapping):  # one object: R4's 0..1 (AdverseEvent)
        identifiers = [identifiers]
    for ident in identifiers:
        if not isinstance(ident, dict):
            continue
        system, value = ident.get("system"), ident.get("value")
        if not isinstance(system, str) or not isinstance(value, str):
            continue
        if identifier_system is None or system == identifier_system:
            return system, value
    return None


def business_condition(
    resource: Mapping[str, Any], identifier_system: str | None = None
) -> list[tuple[str, str]] | None:
    """The search that finds ``resource`` by its business key: ``identifier=system|value`` or, for a
    canonical resource without an identifier (CodeSystem, ValueSet, ...), ``url=`` (and ``version=``)."""
    ident = _business_identifier(resource, identifier_system)
    if ident is not None:
        return [("identifier", token(*ident))]
    url = resource.get("url")
    if isinstance(url, str) and url:
        version = resource.get("version")
        return [("url", url)] + ([("version", version)] if isinstance(version, str) else [])
    return None


def entry_request(
    resource: Any, mode: TransactionMode, identifier_system: str | None = None
) -> dict[str, Any] | str:
    """The ``request`` of the entry that writes ``resource`` in ``mode``, or why it cannot be written
    (a text starting with the resource's type in brackets, to follow its position)."""
    if not isinstance(resource, Mapping):
        return ": not a JSON object"
    rt = resource.get("resourceType")
    if not isinstance(rt, str):
        return ": no resourceType"
    rid = resource.get("id")
    if mode in ("conditional-update", "conditional-create"):
        pairs = business_condition(resource, identifier_system)
        if pairs is None:
            return f" ({rt}): no identifier with system and value (nor a canonical url)"
        condition = encode_query(pairs)
        if mode == "conditional-update":
            return {"method": "PUT", "url": f"{rt}?{condition}"}
        return {"method": "POST", "url": rt, "ifNoneExist": condition}
    if mode == "update":
        if not isinstance(rid, str):
            return f" ({rt}): no id for an update"
        return {"method": "PUT", "url": f"{rt}/{rid}"}
    if mode == "create":
        return {"method": "POST", "url": rt}
    raise ValueError(f"unknown transaction mode {mode!r}")


def transaction_bundle(
    resources: Iterable[Mapping[str, Any]],
    *,
    mode: TransactionMode = "conditional-update",
    bundle_type: Literal["transaction", "batch"] = "transaction",
    identifier_system: str | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """A transaction (or batch) Bundle writing ``resources`` in the given ``mode``.

    The business identifier is the resource's first ``identifier`` with a system and a value (or the
    first with ``identifier_system``); a canonical resource without one (a CodeSystem) is matched on
    its ``url`` (and ``version``). ``fullUrl`` is ``{base_url}{Type}/{id}`` for resources with an id
    when ``base_url`` is given, else a ``urn:uuid`` derived from type and id (or random without an id).

    Raises:
        ValueError: listing every resource that lacks what the mode needs (a type, an id for
            ``update``, a business identifier for the conditional modes), all at once.
    """
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    base = None if base_url is None else base_url.rstrip("/") + "/"
    for index, resource in enumerate(resources):
        request = entry_request(resource, mode, identifier_system)
        if isinstance(request, str):
            problems.append(f"resource {index}{request}")
            continue
        rt, rid = resource["resourceType"], resource.get("id")
        if rid is not None and base is not None:
            full_url = f"{base}{rt}/{rid}"
        elif rid is not None:
            full_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{rt}/{rid}')}"
        else:
            full_url = f"urn:uuid:{uuid.uuid4()}"
        entries.append({"fullUrl": full_url, "resource": dict(resource), "request": request})
    if problems:
        raise ValueError("cannot build the bundle: " + "; ".join(problems))
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def shift_indexes(entries: Iterable[EntryOutcome], offset: int) -> list[EntryOutcome]:
    """Entry outcomes with their indexes moved by ``offset`` (chunk positions -> upload positions)."""
    return [replace(e, index=e.index + offset) for e in entries]


def bundle_is_idempotent(bundle: Mapping[str, Any]) -> bool:
    """True when sending the bundle twice is harmless: every entry is a GET, PUT, DELETE or a POST
    with ``ifNoneExist`` (a conditional create)."""
    for entry in bundle.get("entry") or []:
        request = entry.get("request") or {}
        method = str(request.get("method", "")).upper()
        if method in ("GET", "HEAD", "PUT", "DELETE"):
            continue
        if method == "POST" and request.get("ifNoneExist"):
            continue
        return False
    return True


def chunked(items: Sequence[Any] | Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most ``size`` items."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --------------------------------------------------------------------------------------------------
# Reading responses


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """What the server did with one entry of a transaction or batch.

    ``index`` is the entry's position in the request bundle; ``result`` is the classified result
    (``created``, ``updated``, ``unchanged``, ``deleted``, ``read``, ``ok`` or ``failed``).
    """

    index: int
    resource_type: str | None
    method: str | None
    status: int
    status_text: str
    result: EntryResult
    location: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    outcome: dict[str, Any] | None = None
    resource: dict[str, Any] | None = None
    issues: tuple[Issue, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result != "failed"

    def summary(self) -> str:
        """Method, type, status and what the server said (no ids, no query)."""
        said = "; ".join(i.text for i in self.issues if i.text)
        head = (
            f"{self.method or '?'} {self.resource_type or '?'} -> {self.status_text or self.status}"
        )
        return f"{head}: {said}" if said else head


@dataclass(frozen=True, slots=True)
class BundleResult:
    """The per-entry outcomes of a transaction or batch, in request order."""

    bundle_type: str
    entries: tuple[EntryOutcome, ...]
    response: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def failed(self) -> list[EntryOutcome]:
        return [e for e in self.entries if not e.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, dict[str, int]]:
        """``{resource_type: {result: n}}``."""
        out: dict[str, Counter[str]] = {}
        for entry in self.entries:
            out.setdefault(entry.resource_type or "?", Counter())[entry.result] += 1
        return {rt: dict(c) for rt, c in sorted(out.items())}


def _status_code(text: str) -> int:
    head = text.strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


def _request_type(request: Mapping[str, Any]) -> str | None:
    url = str(request.get("url", ""))
    head = url.split("?", 1)[0].split("/", 1)[0]
    return head or None


HAPI_RESULTS: dict[str, EntryResult] = {
    "SUCCESSFUL_CREATE": "created",
    "SUCCESSFUL_CREATE_NO_CONDITIONAL_MATCH": "created",
    "SUCCESSFUL_CREATE_WITH_CONDITIONAL_MATCH": "unchanged",
    "SUCCESSFUL_UPDATE": "updated",
    "SUCCESSFUL_UPDATE_AS_CREATE": "created",
    "SUCCESSFUL_UPDATE_NO_CHANGE": "unchanged",
    "SUCCESSFUL_UPDATE_NO_CONDITIONAL_MATCH": "created",
    "SUCCESSFUL_UPDATE_WITH_CONDITIONAL_MATCH": "updated",
    "SUCCESSFUL_UPDATE_WITH_CONDITIONAL_MATCH_NO_CHANGE": "unchanged",
    "SUCCESSFUL_PATCH": "updated",
    "SUCCESSFUL_PATCH_NO_CHANGE": "unchanged",
    "SUCCESSFUL_CONDITIONAL_PATCH": "updated",
    "SUCCESSFUL_CONDITIONAL_PATCH_NO_CHANGE": "unchanged",
    "SUCCESSFUL_DELETE": "deleted",
    "SUCCESSFUL_DELETE_ALREADY_DELETED": "deleted",
    "SUCCESSFUL_DELETE_NOT_FOUND": "deleted",
}
"""HAPI's storage-response codes (``response.outcome`` of each entry) and what they mean here."""


def _hapi_result(outcome: dict[str, Any] | None) -> EntryResult | None:
    issues = (outcome or {}).get("issue")
    for issue in issues if isinstance(issues, list) else []:
        details = issue.get("details") if isinstance(issue, dict) else None
        codings = details.get("coding") if isinstance(details, dict) else None
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, dict) and coding.get("system") == HAPI_STORAGE_CODES:
                code = str(coding.get("code", ""))
                if code in HAPI_RESULTS:
                    return HAPI_RESULTS[code]
                if "NO_CHANGE" in code:
                    return "unchanged"
    return None


def _classify(status: int, method: str | None, outcome: dict[str, Any] | None) -> EntryResult:
    if not 200 <= status < 300:
        return "failed"
    if status == 201:
        return "created"
    known = _hapi_result(outcome)
    if known is not None:
        return known
    match method:
        case "POST":
            return "unchanged"  # 200 to a (conditional) create: an existing match
        case "PUT" | "PATCH":
            return "updated"
        case "DELETE":
            return "deleted"
        case "GET" | "HEAD":
            return "read"
    return "ok"


_LOCATION_RE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/?#]+)?/?$"
)
"""``Type/id``, ``Type/id/_history/v`` or the same after a base URL (a transaction entry's location)."""

_PLAUSIBLE_STATUSES: dict[str, frozenset[int]] = {
    "PUT": frozenset({200, 201}),
    "POST": frozenset({200, 201}),
    "PATCH": frozenset({200}),
    "DELETE": frozenset({200, 202, 204}),
    "GET": frozenset({200, 304}),
    "HEAD": frozenset({200, 304}),
}
"""The success statuses that can answer each request method in a transaction or batch."""


def _response_entries(response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The entries of a transaction-response / batch-response, each checked to be an object with a
    ``response`` object holding a ``status`` string; else InvalidResponse (wrongly shaped JSON)."""
    raw = response.get("entry")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidResponse("the server's Bundle.entry is not a list")
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise InvalidResponse(f"the server's Bundle.entry[{index}] is not an object")
        answer = entry.get("response")
        if not isinstance(answer, dict) or not isinstance(answer.get("status"), str):
            raise InvalidResponse(
                f"the server's Bundle.entry[{index}].response has no status (a string)"
            )
    return raw


def response_problems(response: Mapping[str, Any], request: Mapping[str, Any]) -> list[str]:
    """Why a transaction-response / batch-response does not answer ``request`` (empty when it does).

    Checked: the response type (``transaction-response`` for a transaction, ``batch-response`` for a
    batch), one entry per request entry, an HTTP status in each, and for each successful entry a
    status its method can have (PUT/POST 200 or 201, DELETE 200/202/204, GET 200/304), a location
    (and returned resource) of the request's resource type, and for a PUT of a resource with an id a
    location with that id. Problems name entry positions and types, never ids or values.
    """
    problems: list[str] = []
    wanted_type = f"{request.get('type')}-response"
    if response.get("type") != wanted_type:
        problems.append(f"the Bundle type is {response.get('type')!r}, not {wanted_type!r}")
    answers = _response_entries(response)
    requests = list(request.get("entry") or [])
    if len(answers) != len(requests):
        problems.append(f"{len(answers)} entries answer the {len(requests)} sent")
    for index, (sent, entry) in enumerate(zip(requests, answers, strict=False)):
        req = sent.get("request") or {}
        method = str(req.get("method", "")).upper()
        rt = _request_type(req)
        where = f"entry {index} ({method} {rt})"
        answer = entry["response"]
        status = _status_code(answer["status"])
        if not 100 <= status <= 599:
            problems.append(f"{where}: status {answer['status'][:20]!r} is not an HTTP status")
            continue
        if not 200 <= status < 300:
            continue  # a failing entry: reported as such (TransactionFailed or BundleResult.failed)
        if status not in _PLAUSIBLE_STATUSES.get(method, frozenset(range(200, 300))):
            problems.append(f"{where}: status {status} cannot answer a {method}")
        location = answer.get("location")
        if location is not None:
            found = _LOCATION_RE.search(str(location).split("?", 1)[0])
            if found is None:
                problems.append(f"{where}: the location is not Type/id")
            elif found["type"] != rt:
                problems.append(f"{where}: the location is a {found['type']}")
            elif method == "PUT" and _sent_id(sent, req) not in (None, found["id"]):
                problems.append(f"{where}: the location has another id than the one sent")
        resource = entry.get("resource")
        if resource is not None and (
            not isinstance(resource, dict)
            or resource.get("resourceType") not in (rt, "OperationOutcome")
        ):
            problems.append(f"{where}: the returned resource is not a {rt}")
    return problems


def _sent_id(sent: Mapping[str, Any], request: Mapping[str, Any]) -> str | None:
    """The id a PUT writes: from ``Type/id``, else the resource's own id (a conditional update
    carrying an id creates or matches that id, or the server must refuse it)."""
    url = str(request.get("url", ""))
    if "?" not in url and "/" in url:
        return url.split("/", 2)[1]
    resource = sent.get("resource")
    rid = resource.get("id") if isinstance(resource, dict) else None
    return rid if isinstance(rid, str) else None


def parse_bundle_response(
    response: Mapping[str, Any], request: Mapping[str, Any] | None = None
) -> BundleResult:
    """Read a transaction-response or batch-response Bundle into per-entry outcomes.

    ``request`` (the bundle that was sent) supplies each entry's method and type; entries are matched
    by position, as the specification requires, after ``response_problems`` found none.

    Raises:
        InvalidResponse: the Bundle is wrongly shaped (entry not a list of objects with a status).
        TransactionResponseMismatch: it does not answer ``request`` (``.problems`` lists why).
    """
    entries = _response_entries(response)
    if request is not None:
        problems = response_problems(response, request)
        if problems:
            raise TransactionResponseMismatch(problems)
    request_entries = list((request or {}).get("entry") or [])
    outcomes: list[EntryOutcome] = []
    for index, entry in enumerate(entries):
        answer = entry["response"]
        status_text = str(answer.get("status", ""))
        status = _status_code(status_text)
        req = (request_entries[index].get("request") or {}) if index < len(request_entries) else {}
        method = str(req["method"]).upper() if req.get("method") else None
        resource_type = _request_type(req)
        outcome = answer.get("outcome")
        resource = entry.get("resource")
        if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
            outcome = outcome or resource
            resource = None
        if resource_type is None and isinstance(resource, dict):
            found_type = resource.get("resourceType")
            resource_type = found_type if isinstance(found_type, str) else None
        if resource_type is None and answer.get("location"):
            resource_type = str(answer["location"]).split("/", 1)[0] or None
        outcome_dict = outcome if isinstance(outcome, dict) else None
        location, etag, modified = (answer.get(k) for k in ("location", "etag", "lastModified"))
        outcomes.append(
            EntryOutcome(
                index=index,
                resource_type=resource_type,
                method=method,
                status=status,
                status_text=status_text,
                result=_classify(status, method, outcome_dict),
                location=location if isinstance(location, str) else None,
                etag=etag if isinstance(etag, str) else None,
                last_modified=modified if isinstance(modified, str) else None,
                outcome=outcome_dict,
                resource=resource if isinstance(resource, dict) else None,
                issues=tuple(parse_issues(outcome_dict)),
            )
        )
    return BundleResult(str(response.get("type", "")), tuple(outcomes), dict(response))


@dataclass
class UploadSummary:
    """Counts of a chunked upload: ``counts[resource_type][result]``, bundles sent, entries failed."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    bundles: int = 0
    failed: list[EntryOutcome] = field(default_factory=list)

    def add(self, result: BundleResult, *, offset: int = 0) -> None:
        """Count one bundle's outcomes; ``offset`` turns entry indexes into positions in the upload."""
        self.bundles += 1
        for entry in result.entries:
            self.counts.setdefault(entry.resource_type or "?", Counter())[entry.result] += 1
        self.failed.extend(replace(e, index=e.index + offset) for e in result.failed)

    def total(self, result: str) -> int:
        """How many entries, over all types, ended with ``result`` (e.g. ``"created"``)."""
        return sum(c[result] for c in self.counts.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {rt: dict(sorted(c.items())) for rt, c in sorted(self.counts.items())}


class UnwritableResources(ValueError):
    """Resources given to an upload that cannot be written in its mode (no resourceType, no business
    identifier for a conditional mode, no id for ``update``): every one is listed, nothing was sent.

    Attributes:
        problems: one line per resource: its position in the input (from 0), its type and why.
    """

    def __init__(self, problems: Sequence[str], mode: str) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:20])
        if len(self.problems) > 20:
            shown += f"; ... and {len(self.problems) - 20} more"
        super().__init__(
            f"{len(self.problems)} resource(s) cannot be written as {mode} (positions in the input, "
            f"from 0; nothing was sent): {shown}"
        )


class UploadPlan:
    """A chunked upload without the I/O: the input checked whole, the bundles to send, in order, the
    running summary, and what to say when it stops half-way.

    plan = UploadPlan(resources, chunk_size=200, base_url=client.base_url)
    plan.check()                                     # before the first write
    for bundle in plan.bundles():
        try:
            result = client.transaction(bundle)
        except FhirError as exc:
            failure = plan.interrupted(exc)          # says which chunks were committed
            ...
        plan.done(result)
    return plan.summary

    ``resources`` is read twice (once to check, once to send) when it can be (a list, or any iterable
    whose ``iter()`` starts again); a one-shot iterator is read into a list first.
    """

    def __init__(
        self,
        resources: Iterable[Mapping[str, Any]],
        *,
        chunk_size: int,
        mode: TransactionMode,
        bundle_type: Literal["transaction", "batch"],
        identifier_system: str | None,
        base_url: str | None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk size must be at least 1")
        self._resources = list(resources) if isinstance(resources, Iterator) else resources
        self._chunk_size = chunk_size
        self._mode: TransactionMode = mode
        self.bundle_type: Literal["transaction", "batch"] = bundle_type
        self._identifier_system = identifier_system
        self._base_url = base_url
        self._progress = progress
        self.summary = UploadSummary()
        self.total: int | None = None
        self.sent = 0
        self.chunk = -1
        self._chunk_len = 0

    def check(self) -> None:
        """Read the whole input once and check every resource can be written in the mode.

        Raises:
            UnwritableResources: listing every resource that cannot (nothing has been sent).
            Whatever reading the input raises (e.g. ``FhirFileError`` for a bad line in a file).
        """
        problems: list[str] = []
        total = 0
        for index, resource in enumerate(self._resources):
            request = entry_request(resource, self._mode, self._identifier_system)
            if isinstance(request, str):
                problems.append(f"resource {index}{request}")
            total += 1
        if problems:
            raise UnwritableResources(problems, self._mode)
        self.total = total

    def bundles(self) -> Iterator[dict[str, Any]]:
        """The bundles, one per chunk; an error reading the input on the way gets a note saying
        what was committed before it."""
        chunks = chunked(self._resources, self._chunk_size)
        number = 0
        while True:
            try:
                resources = next(chunks, None)
                if resources is None:
                    return
                bundle = transaction_bundle(
                    resources,
                    mode=self._mode,
                    bundle_type=self.bundle_type,
                    identifier_system=self._identifier_system,
                    base_url=self._base_url,
                )
            except Exception as exc:  # annotated and raised again, never swallowed
                exc.add_note(self.committed(f"chunk {number + 1} and later were not sent"))
                raise
            self.chunk, self._chunk_len = number, len(resources)
            number += 1
            yield bundle

    def done(self, result: BundleResult) -> None:
        """Count a committed chunk, log its counts (types and results only), report progress."""
        self.summary.add(result, offset=self.sent)
        self.sent += self._chunk_len
        logging.getLogger("trialfhir.client").info(
            "upload chunk %d: %d entries, %s",
            self.chunk,
            self._chunk_len,
            ", ".join(f"{rt} {counts}" for rt, counts in result.counts().items()),
        )
        if self._progress is not None:
            self._progress(self.sent)

    def committed(self, current: str) -> str:
        """What is on the server after a stop in the current chunk: the chunks committed before it,
        ``current`` (what became of this one), and whether re-running the upload completes it."""
        done = self.summary.bundles
        of = f" of {self.total}" if self.total is not None else ""
        if done == 0:
            before = "nothing was committed before it"
        elif done == 1:
            before = f"chunk 1 ({self.sent}{of} resources) was committed before it"
        else:
            before = f"chunks 1-{done} ({self.sent}{of} resources) were committed before it"
        if self._mode == "create":
            again = "Mode create is not idempotent: re-running would write duplicates"
        else:
            again = "Re-running the same upload completes it (it is idempotent)"
        return f"{before[0].upper()}{before[1:]}; {current}. {again}."

    def interrupted(self, exc: Exception) -> Exception:
        """The error to raise when sending the current chunk failed: a TransactionFailed or
        TransactionResponseMismatch again with the chunk, upload-wide entry indexes and what was
        committed; any other error with a note saying what was committed."""
        number = self.chunk + 1
        if isinstance(exc, TransactionFailed):
            current = (
                f"chunk {number} was rolled back (a transaction is all or nothing)"
                if self.bundle_type == "transaction"
                else f"chunk {number} failed"
            )
            return TransactionFailed(
                exc.status,
                outcome=exc.outcome,
                failed_entries=shift_indexes(exc.failed_entries, self.sent),
                chunk=self.chunk,
                completed=self.summary,
                committed=self.committed(current),
            )
        if isinstance(exc, TransactionResponseMismatch):
            current = f"the server says chunk {number} was committed too, but its answer cannot be trusted"
            return TransactionResponseMismatch(
                exc.problems,
                chunk=self.chunk,
                completed=self.summary,
                committed=self.committed(current),
            )
        if isinstance(exc, FhirHttpError):
            current = f"chunk {number} was refused"
        else:
            current = f"chunk {number} may or may not have been committed (no answer)"
        exc.add_note(self.committed(current))
        return exc

    def failed(self, exc: TransactionFailed) -> Exception:
        """``interrupted`` for a TransactionFailed (kept for callers of the earlier name)."""
        return self.interrupted(exc)
