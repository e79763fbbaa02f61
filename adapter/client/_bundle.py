"""Transaction and batch Bundles: build them from resources, read their per-entry outcomes (no I/O).

``transaction_bundle`` turns resource dicts into a transaction (or batch) whose entries are conditional on
each resource's business identifier, so loading the same data twice creates nothing new.
``parse_bundle_response`` reads a transaction-response / batch-response into ``EntryOutcome`` records;
``UploadSummary`` adds them up per resource type for chunked uploads.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ._errors import Issue, TransactionFailed, parse_issues
from ._query import encode_query, token

__all__ = [
    "BundleResult",
    "EntryOutcome",
    "TransactionMode",
    "UploadPlan",
    "UploadSummary",
    "bundle_is_idempotent",
    "business_condition",
    "chunked",
    "parse_bundle_response",
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
    for ident in resource.get("identifier") or []:
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
        rt = resource.get("resourceType")
        rid = resource.get("id")
        if not isinstance(rt, str):
            problems.append(f"resource {index}: no resourceType")
            continue
        if rid is not None and base is not None:
            full_url = f"{base}{rt}/{rid}"
        elif rid is not None:
            full_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{rt}/{rid}')}"
        else:
            full_url = f"urn:uuid:{uuid.uuid4()}"
        request: dict[str, Any]
        if mode in ("conditional-update", "conditional-create"):
            pairs = business_condition(resource, identifier_system)
            if pairs is None:
                problems.append(
                    f"resource {index} ({rt}): no identifier with system and value (nor a canonical url)"
                )
                continue
            condition = encode_query(pairs)
            if mode == "conditional-update":
                request = {"method": "PUT", "url": f"{rt}?{condition}"}
            else:
                request = {"method": "POST", "url": rt, "ifNoneExist": condition}
        elif mode == "update":
            if not isinstance(rid, str):
                problems.append(f"resource {index} ({rt}): no id for an update")
                continue
            request = {"method": "PUT", "url": f"{rt}/{rid}"}
        elif mode == "create":
            request = {"method": "POST", "url": rt}
        else:
            raise ValueError(f"unknown transaction mode {mode!r}")
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
    for issue in (outcome or {}).get("issue") or []:
        for coding in (issue.get("details") or {}).get("coding") or []:
            if coding.get("system") == HAPI_STORAGE_CODES:
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


def parse_bundle_response(
    response: Mapping[str, Any], request: Mapping[str, Any] | None = None
) -> BundleResult:
    """Read a transaction-response or batch-response Bundle into per-entry outcomes.

    ``request`` (the bundle that was sent) supplies each entry's method and type; entries are matched
    by position, as the specification requires.
    """
    request_entries = list((request or {}).get("entry") or [])
    outcomes: list[EntryOutcome] = []
    for index, entry in enumerate(response.get("entry") or []):
        answer = entry.get("response") or {}
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
            resource_type = resource.get("resourceType")
        if resource_type is None and answer.get("location"):
            resource_type = str(answer["location"]).split("/", 1)[0] or None
        outcome_dict = outcome if isinstance(outcome, dict) else None
        outcomes.append(
            EntryOutcome(
                index=index,
                resource_type=resource_type,
                method=method,
                status=status,
                status_text=status_text,
                result=_classify(status, method, outcome_dict),
                location=answer.get("location"),
                etag=answer.get("etag"),
                last_modified=answer.get("lastModified"),
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


class UploadPlan:
    """A chunked upload without the I/O: the bundles to send, in order, and the running summary.

    plan = UploadPlan(resources, chunk_size=200, base_url=client.base_url)
    for bundle in plan.bundles():
        try:
            result = client.transaction(bundle)
        except TransactionFailed as exc:
            raise plan.failed(exc) from exc
        plan.done(result)
    return plan.summary
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
        self._resources = resources
        self._chunk_size = chunk_size
        self._mode: TransactionMode = mode
        self.bundle_type: Literal["transaction", "batch"] = bundle_type
        self._identifier_system = identifier_system
        self._base_url = base_url
        self._progress = progress
        self.summary = UploadSummary()
        self.sent = 0
        self.chunk = -1
        self._chunk_len = 0

    def bundles(self) -> Iterator[dict[str, Any]]:
        for number, resources in enumerate(chunked(self._resources, self._chunk_size)):
            self.chunk, self._chunk_len = number, len(resources)
            yield transaction_bundle(
                resources,
                mode=self._mode,
                bundle_type=self.bundle_type,
                identifier_system=self._identifier_system,
                base_url=self._base_url,
            )

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

    def failed(self, exc: TransactionFailed) -> TransactionFailed:
        """The failure of the current chunk, with upload-wide entry indexes and what was committed."""
        return TransactionFailed(
            exc.status,
            outcome=exc.outcome,
            failed_entries=shift_indexes(exc.failed_entries, self.sent),
            chunk=self.chunk,
            completed=self.summary,
        )
