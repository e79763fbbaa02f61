"""Transaction and batch Bundles and their outcomes: the one home of the rule (no I/O, no client).

Building: ``entry_request`` decides what an entry does to write a resource in a ``TransactionMode``
(conditional on the resource's business identifier, or on the canonical ``url`` of a CodeSystem);
``full_url`` names the entry; ``bundle_entry`` and ``transaction_bundle`` put them together.
Reading the answer: ``response_problems`` says why a transaction-response / batch-response does not
answer the request; ``bundle_result`` reads it into ``EntryOutcome`` records (``Issue`` for what the
server said); ``UploadSummary`` adds them up per resource type for chunked uploads.

Two users, neither importing the other: ``adapter.fhir_files`` (the transaction Bundle ``convert``
writes) and ``adapter.client`` (transactions, batches, uploads; it adds the sending and its errors).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from adapter.fhir_query import encode_query, token

__all__ = [
    "HAPI_RESULTS",
    "BundleResult",
    "EntryOutcome",
    "EntryResult",
    "Issue",
    "TransactionMode",
    "UploadSummary",
    "bundle_entry",
    "bundle_is_idempotent",
    "bundle_result",
    "business_condition",
    "business_identifier",
    "chunked",
    "entry_request",
    "full_url",
    "parse_issues",
    "response_entries",
    "response_problems",
    "shift_indexes",
    "transaction_bundle",
]

TransactionMode = Literal["conditional-update", "conditional-create", "update", "create"]
"""How an entry writes its resource.

- ``conditional-update``: ``PUT Type?identifier=system|value`` carrying the resource with its own id;
- ``conditional-create``: ``POST Type`` with ``ifNoneExist: identifier=system|value``;
- ``update``: ``PUT Type/id`` (idempotent by id, no identifier check);
- ``create``: plain ``POST Type`` (not idempotent: never retried).
"""

EntryResult = Literal["created", "updated", "unchanged", "deleted", "read", "ok", "failed"]

HAPI_STORAGE_CODES = "https://hapifhir.io/fhir/CodeSystem/hapi-fhir-storage-response-code"


# --------------------------------------------------------------------------------------------------
# Building


def business_identifier(
    resource: Mapping[str, Any], identifier_system: str | None = None
) -> tuple[str, str] | None:
    """The resource's business key: its first ``identifier`` with a system and a value (or the first
    in ``identifier_system``), as ``(system, value)``."""
    identifiers = resource.get("identifier") or ()
    if isinstance(identifiers, Mapping):  # one object: R4's 0..1 (AdverseEvent)
        identifiers = (identifiers,)
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
    ident = business_identifier(resource, identifier_system)
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


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def full_url(resource: Mapping[str, Any], base_url: str | None = None) -> str:
    """The ``fullUrl`` of the entry holding ``resource``.

    With an id: ``{base_url}/{Type}/{id}`` when ``base_url`` is given (what a server would call it);
    else ``urn:uuid:{id}`` when the id is a lower-case UUID (our ids are name-based UUIDs), else a
    name-based ``urn:uuid`` of ``Type/id`` (stable, e.g. for the project CodeSystem's ``trialfhir``).
    Without an id: a random ``urn:uuid``.
    """
    rid = resource.get("id")
    if rid is None:
        return f"urn:uuid:{uuid.uuid4()}"
    rt = resource.get("resourceType")
    if base_url is not None:
        return f"{base_url.rstrip('/')}/{rt}/{rid}"
    if isinstance(rid, str) and _UUID_RE.fullmatch(rid):
        return f"urn:uuid:{rid}"
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{rt}/{rid}')}"


def bundle_entry(
    resource: Mapping[str, Any],
    request: Mapping[str, Any] | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """One Bundle entry: ``fullUrl`` (``full_url``), the resource as given, and ``request`` when given
    (a collection Bundle's entries have none)."""
    entry: dict[str, Any] = {"fullUrl": full_url(resource, base_url), "resource": resource}
    if request is not None:
        entry["request"] = request
    return entry


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
    its ``url`` (and ``version``). ``fullUrl`` as ``full_url`` makes it (``base_url`` given: the
    resource's URL on that server).

    Raises:
        ValueError: listing every resource that lacks what the mode needs (a type, an id for
            ``update``, a business identifier for the conditional modes), all at once.
    """
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, resource in enumerate(resources):
        request = entry_request(resource, mode, identifier_system)
        if isinstance(request, str):
            problems.append(f"resource {index}{request}")
            continue
        entries.append(bundle_entry(dict(resource), request, base_url))
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
# Outcomes


@dataclass(frozen=True, slots=True)
class Issue:
    """One ``OperationOutcome.issue``: severity, code, what the server said and where."""

    severity: str
    code: str
    diagnostics: str | None = None
    details: str | None = None
    expression: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The human-readable part: diagnostics, else details.text, else the issue code."""
        return self.diagnostics or self.details or self.code

    @property
    def is_error(self) -> bool:
        """True for severity ``error`` or ``fatal``."""
        return self.severity in ("error", "fatal")


def parse_issues(outcome: Any) -> list[Issue]:
    """The issues of an OperationOutcome dict (an empty list for anything else)."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return []
    issues: list[Issue] = []
    raw_issues = outcome.get("issue")
    for raw in raw_issues if isinstance(raw_issues, list) else []:
        if not isinstance(raw, dict):
            continue
        details = raw.get("details")
        details_text = details.get("text") if isinstance(details, dict) else None
        diagnostics = raw.get("diagnostics")
        expression = raw.get("expression") or raw.get("location") or []
        issues.append(
            Issue(
                severity=str(raw.get("severity", "")),
                code=str(raw.get("code", "")),
                diagnostics=diagnostics if isinstance(diagnostics, str) else None,
                details=details_text if isinstance(details_text, str) else None,
                expression=tuple(
                    e
                    for e in (expression if isinstance(expression, list) else [])
                    if isinstance(e, str)
                ),
            )
        )
    return issues


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
        self.failed.extend(shift_indexes(result.failed, offset))

    def total(self, result: str) -> int:
        """How many entries, over all types, ended with ``result`` (e.g. ``"created"``)."""
        return sum(c[result] for c in self.counts.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {rt: dict(sorted(c.items())) for rt, c in sorted(self.counts.items())}


# --------------------------------------------------------------------------------------------------
# Reading answers


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


def response_entries(response: Mapping[str, Any]) -> list[Mapping[str, Any]] | str:
    """The entries of a transaction-response / batch-response, each checked to be an object with a
    ``response`` object holding a ``status`` string; or why the Bundle is wrongly shaped."""
    raw = response.get("entry")
    if raw is None:
        return []
    if not isinstance(raw, list):
        return "the server's Bundle.entry is not a list"
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            return f"the server's Bundle.entry[{index}] is not an object"
        answer = entry.get("response")
        if not isinstance(answer, dict) or not isinstance(answer.get("status"), str):
            return f"the server's Bundle.entry[{index}].response has no status (a string)"
    return raw


def response_problems(response: Mapping[str, Any], request: Mapping[str, Any]) -> list[str]:
    """Why a transaction-response / batch-response does not answer ``request`` (empty when it does).

    Checked: the entries' shape (``response_entries``), the response type (``transaction-response``
    for a transaction, ``batch-response`` for a batch), one entry per request entry, an HTTP status in
    each, and for each successful entry a status its method can have (PUT/POST 200 or 201, DELETE
    200/202/204, GET 200/304), a location (and returned resource) of the request's resource type, and
    for a PUT of a resource with an id a location with that id. Problems name entry positions and
    types, never ids or values.
    """
    answers = response_entries(response)
    if isinstance(answers, str):
        return [answers]
    problems: list[str] = []
    wanted_type = f"{request.get('type')}-response"
    if response.get("type") != wanted_type:
        problems.append(f"the Bundle type is {response.get('type')!r}, not {wanted_type!r}")
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


def bundle_result(
    response: Mapping[str, Any], request: Mapping[str, Any] | None = None
) -> BundleResult:
    """The per-entry outcomes of a transaction-response or batch-response Bundle.

    ``request`` (the bundle that was sent) supplies each entry's method and type; entries are matched
    by position, as the specification requires. Whether the answer fits the request is
    ``response_problems``' question, asked first by the caller (the client refuses it then).

    Raises:
        ValueError: the Bundle is wrongly shaped (``response_entries`` says why).
    """
    entries = response_entries(response)
    if isinstance(entries, str):
        raise ValueError(entries)
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
