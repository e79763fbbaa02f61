"""Uploads of FHIR written elsewhere (a Synthea transaction Bundle, a Bulk Data export folder, a batch or
collection Bundle): which path each resource takes, its references, the order and the transactions.

The paths (docs/client.md, "Foreign uploads"):
- ``as-is``: a transaction Bundle with resources not the adapter's is sent as it is (its ``fullUrl``,
  ``request`` and ``urn:uuid:`` references untouched: the server resolves them), split only where no
  reference ties two entries (`split_transaction`); a part that cannot be split is sent whole, up to
  ``max_transaction_entries``;
- ``conditional``: the adapter's own resources (`is_own`: the one rule, shared with ``convert``) keep their conditional, idempotent request (``entry_request``);
- ``create`` (default for the others): ``POST Type``, the server assigns the id (a batch entry's
  ``ifNoneExist`` is kept: ``create-if-none-exist``); references between the uploaded resources are
  rewritten to ``urn:uuid:`` inside a transaction and to the id the server
  assigned (its answer's ``location``) across transactions, in dependency order;
- ``update-by-id`` (only with ``keep_ids``): ``PUT Type/id``, which can overwrite what others stored.

``read_upload`` reads a file or folder (the one I/O part, through ``adapter.fhir_files``' listing and
codec); ``upload_of`` takes resources already in memory; ``ForeignPlan`` checks everything before the
first write and hands out the Bundles one at a time (a later one needs the ids the server gave the
earlier ones), with no I/O.
"""

from __future__ import annotations

import heapq
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import unquote

from adapter.bundles import (
    BundleResult,
    TransactionMode,
    UploadSummary,
    bundle_is_idempotent,
    entry_request,
    full_url,
)
from adapter.fhir_files import MAX_BUNDLE_NESTING, FhirFileError, ReadStats, read_files
from adapter.fhir_files import resource_files as fhir_data_files
from adapter.fhir_json import JSONDecodeErrors, loads
from mappings.errors import ExitCode, TrialfhirError
from mappings.foreign.combine import is_own  # the one rule, shared with convert --to sdtm

__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_RESOURCES",
    "MAX_TRANSACTION_ENTRIES",
    "ForeignPlan",
    "ForeignSummary",
    "Step",
    "TransactionInput",
    "Upload",
    "UploadInputError",
    "UploadItem",
    "UploadPath",
    "dependency_order",
    "is_own",
    "pack",
    "read_upload",
    "split_transaction",
    "upload_of",
]

JSON = dict[str, Any]
UploadPath = Literal["as-is", "conditional", "create", "create-if-none-exist", "update-by-id"]

MAX_TRANSACTION_ENTRIES = 10_000
"""Entries of one transaction that cannot be split (``urn:uuid:`` references tie them together) or of a
group of resources that refer to each other in a cycle; more is refused before anything is sent."""
MAX_RESOURCES = 1_000_000
"""Resources of one foreign upload (they are held in memory to be put in dependency order)."""
DEFAULT_CONCURRENCY = 1
"""Transactions in flight at once when `push` writes the adapter's own resources (dependency waves:
``AsyncFhirClient.upload``); foreign uploads go one at a time. Why 1: docs/decisions.md."""

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_RELATIVE = re.compile(r"(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})")
_CONDITIONAL = re.compile(r"(?P<type>[A-Z][A-Za-z]{1,63})\?identifier=(?P<token>[^&]+)")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})


class UploadInputError(TrialfhirError, ValueError):
    """What is to be uploaded cannot be, as it is: every problem listed (file, line or entry, and
    why; never ids or values), nothing was sent."""

    code: ClassVar[str] = "bad_upload_input"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:20])
        if len(self.problems) > 20:
            shown += f"; ... and {len(self.problems) - 20} more"
        super().__init__(
            f"{len(self.problems)} problem(s) in the upload (nothing was sent): {shown}"
        )


# --------------------------------------------------------------------------------------------------
# What is uploaded


@dataclass(frozen=True)
class UploadItem:
    """One resource, where it was read (``file, line 3``, ``file, Bundle entry 2``) and the ``fullUrl``
    of its Bundle entry, if it had one."""

    resource: JSON
    where: str
    full_url: str | None = None
    if_none_exist: str | None = None
    """The ``ifNoneExist`` of its batch entry's ``POST`` (Synthea's hospitals and practitioners): kept,
    so the resource is created only when nothing matches it."""

    @property
    def own(self) -> bool:
        return is_own(self.resource)

    @property
    def resource_type(self) -> str:
        return str(self.resource.get("resourceType"))


@dataclass(frozen=True)
class TransactionInput:
    """A transaction Bundle read from ``where``, to be sent as it is."""

    bundle: JSON
    where: str


@dataclass
class Upload:
    """Everything to upload: the resources (each on its path) and the transaction Bundles sent as
    they are; ``outcomes_skipped`` counts a searchset's OperationOutcome entries (messages, not data)."""

    items: list[UploadItem] = field(default_factory=list)
    transactions: list[TransactionInput] = field(default_factory=list)
    outcomes_skipped: int = 0

    @property
    def foreign(self) -> bool:
        """Whether anything takes another path than the adapter's conditional one."""
        return bool(self.transactions) or not all(item.own for item in self.items)


def upload_of(resources: Iterable[Mapping[str, Any]], max_resources: int = MAX_RESOURCES) -> Upload:
    """Resources given in memory (``resource N``, from 0, is where each was found)."""
    upload = Upload()
    for index, resource in enumerate(resources):
        if index >= max_resources:
            raise UploadInputError([f"more than {max_resources} resources in one upload"])
        if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
            raise UploadInputError([f"resource {index}: not a FHIR resource (no resourceType)"])
        upload.items.append(UploadItem(dict(resource), f"resource {index}"))
    return upload


def _is_ndjson(file: Path) -> bool:
    return file.name.lower().endswith((".ndjson", ".ndjson.gz"))


def read_upload(path: str | Path, max_resources: int = MAX_RESOURCES) -> Upload:
    """Read the files ``adapter.fhir_files`` lists for ``path`` (NDJSON, Bundle or resource ``.json``)
    keeping what an upload needs: each Bundle entry's ``fullUrl``, and transaction Bundles whole.

    A transaction Bundle all of whose resources are the adapter's own is read as its resources (they
    take the adapter's conditional path, as ``convert``'s ``bundle.json`` always did).

    Raises:
        FhirFileError: a file is not JSON, not FHIR, a line is bad (the first one, file and line).
        UploadInputError: Bundle entries that cannot be uploaded (every one), too many resources.
    """
    upload = Upload()
    problems: list[str] = []
    for file in fhir_data_files(Path(path)):
        if _is_ndjson(file):
            stats = ReadStats()
            for resource in read_files([file], stats):
                where = f"{file}, line {stats.line}" + (f", {stats.entry}" if stats.entry else "")
                upload.items.append(UploadItem(resource, where))
                _bound(upload, max_resources)
            continue
        try:
            document = loads(file.read_bytes())
        except JSONDecodeErrors as exc:
            raise FhirFileError(file, getattr(exc, "lineno", None), f"not JSON: {exc}") from exc
        except OSError as exc:
            raise FhirFileError(file, None, f"cannot read: {exc.strerror or exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
            raise FhirFileError(file, None, "not a FHIR resource or Bundle (no resourceType)")
        if document["resourceType"] != "Bundle":
            upload.items.append(UploadItem(document, str(file)))
        elif document.get("type") == "transaction" and not _all_own(document):
            upload.transactions.append(TransactionInput(document, str(file)))
        else:
            _take_bundle(document, str(file), upload, problems, 1)
        _bound(upload, max_resources)
    if problems:
        raise UploadInputError(problems)
    return upload


def _bound(upload: Upload, max_resources: int) -> None:
    if len(upload.items) > max_resources:
        raise UploadInputError([f"more than {max_resources} resources in one upload"])


def _all_own(bundle: JSON) -> bool:
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        return False
    return all(
        isinstance(e, dict) and isinstance(e.get("resource"), dict) and is_own(e["resource"])
        for e in entries
    )


def _take_bundle(bundle: JSON, where: str, upload: Upload, problems: list[str], level: int) -> None:
    """The resources of a batch, collection, searchset (or nested) Bundle, each with its fullUrl;
    ``where`` is the file (level 1) or the entry holding the Bundle."""
    entries = bundle.get("entry")
    if entries is None:
        return
    if not isinstance(entries, list):
        problems.append(f"{where}: Bundle.entry is not a list")
        return
    for number, entry in enumerate(entries, start=1):
        place = f"{where}, Bundle entry {number}" if level == 1 else f"{where} > entry {number}"
        if not isinstance(entry, dict):
            problems.append(f"{place}: not a Bundle entry (an object)")
            continue
        resource = entry.get("resource")
        if resource is None:
            request = entry.get("request")
            method = request.get("method") if isinstance(request, dict) else None
            what = f"a {method} entry" if isinstance(method, str) else "an entry"
            problems.append(f"{place}: {what} without a resource cannot be uploaded")
            continue
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            problems.append(f"{place}: not a FHIR resource (no resourceType)")
            continue
        search = entry.get("search")
        if resource["resourceType"] == "OperationOutcome" and (
            isinstance(search, dict) and search.get("mode") == "outcome"
        ):
            upload.outcomes_skipped += 1
            continue
        if resource["resourceType"] == "Bundle":
            if level >= MAX_BUNDLE_NESTING:
                problems.append(f"{place}: a Bundle nested more than {MAX_BUNDLE_NESTING} deep")
                continue
            _take_bundle(resource, place, upload, problems, level + 1)
            continue
        url = entry.get("fullUrl")
        request = _request_of(entry)
        condition = request.get("ifNoneExist")
        if str(request.get("method", "")).upper() != "POST" or not isinstance(condition, str):
            condition = None
        upload.items.append(
            UploadItem(resource, place, url if isinstance(url, str) else None, condition or None)
        )


# --------------------------------------------------------------------------------------------------
# References


def references(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``reference`` string in ``value`` (a resource), as ``(element path, reference)``."""
    if isinstance(value, dict):
        for key, inner in value.items():
            where = f"{path}.{key}" if path else key
            if key == "reference" and isinstance(inner, str):
                yield path, inner
            elif isinstance(inner, dict | list):
                yield from references(inner, where)
    elif isinstance(value, list):
        for inner in value:
            yield from references(inner, path)


def _rewritten(value: Any, replace: Callable[[str], str | None]) -> tuple[Any, int]:
    """``value`` with every ``reference`` string for which ``replace`` gives a new one replaced (a copy
    of what changed only) and how many were."""
    if isinstance(value, dict):
        changed = 0
        out: dict[str, Any] | None = None
        for key, inner in value.items():
            if key == "reference" and isinstance(inner, str):
                new = replace(inner)
                if new is not None and new != inner:
                    out = dict(value) if out is None else out
                    out[key] = new
                    changed += 1
            elif isinstance(inner, dict | list):
                new_inner, n = _rewritten(inner, replace)
                if n:
                    out = dict(value) if out is None else out
                    out[key] = new_inner
                    changed += n
        return (value if out is None else out), changed
    if isinstance(value, list):
        changed = 0
        items: list[Any] | None = None
        for index, inner in enumerate(value):
            new_inner, n = _rewritten(inner, replace)
            if n:
                items = list(value) if items is None else items
                items[index] = new_inner
                changed += n
        return (value if items is None else items), changed
    return value, 0


def _token(text: str) -> tuple[str, str] | None:
    system, bar, value = unquote(text).partition("|")
    return (system, value) if bar and system and value else None


class _Index:
    """Which uploaded resource a reference points at: by an entry's ``fullUrl``, by ``Type/id`` (and
    ``urn:uuid:<id>`` for a resource read without a fullUrl whose id is a UUID: NDJSON written with
    Synthea's references), by a batch entry's ``Type?ifNoneExist``, or a conditional
    ``Type?identifier=system|value`` matching exactly one resource's identifier."""

    def __init__(self, items: Sequence[UploadItem], problems: list[str]) -> None:
        self.keys: dict[str, int] = {}
        self.conditions: dict[str, int] = {}
        self.identifiers: dict[tuple[str, str, str], int | None] = {}
        for index, item in enumerate(items):
            rid = item.resource.get("id")
            own_keys = [item.full_url] if item.full_url else []
            if isinstance(rid, str) and rid:
                own_keys.append(f"{item.resource_type}/{rid}")
                if item.full_url is None and _UUID.fullmatch(rid):
                    own_keys.append(f"urn:uuid:{rid}")  # NDJSON has no fullUrl: the id is the uuid
            if item.if_none_exist:
                self.conditions.setdefault(f"{item.resource_type}?{item.if_none_exist}", index)
            for key in dict.fromkeys(own_keys):
                seen = self.keys.setdefault(key, index)
                if seen != index:
                    what = "fullUrl" if key == item.full_url else "type and id"
                    problems.append(f"{item.where}: the same {what} as {items[seen].where}")
            idents = item.resource.get("identifier")
            for ident in [idents] if isinstance(idents, dict) else idents or []:
                if isinstance(ident, dict) and isinstance(ident.get("system"), str):
                    value = ident.get("value")
                    if isinstance(value, str):
                        key3 = (item.resource_type, ident["system"], value)
                        self.identifiers[key3] = index if key3 not in self.identifiers else None

    def resolve(self, reference: str) -> int | Literal["outside", "conditional", "contained"]:
        if reference.startswith("#"):
            return "contained"
        found = self.keys.get(reference)
        if found is None:
            head = reference.split("/_history/", 1)[0]
            found = self.keys.get(head)
            if found is None and _RELATIVE.fullmatch(head) is None and "?" in reference:
                found = self.conditions.get(reference)
                match = _CONDITIONAL.fullmatch(reference) if found is None else None
                token = _token(match["token"]) if match else None
                if match and token:
                    found = self.identifiers.get((match["type"], *token))
                return "conditional" if found is None else found
        return "outside" if found is None else found


# --------------------------------------------------------------------------------------------------
# Order and splitting (pure graph work)


def dependency_order(count: int, edges: Mapping[int, Iterable[int]]) -> list[list[int]]:
    """Nodes ``0..count-1`` in groups, each group before the groups that refer to it: the strongly
    connected components (resources that refer to each other in a cycle stay together), ordered so
    that what is referred to comes first, ties broken by input order. ``edges[a]`` holds the nodes
    ``a`` refers to."""
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(count):
        if root in index_of:
            continue
        work: list[tuple[int, Iterator[int]]] = [(root, iter(edges.get(root, ())))]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            advanced = False
            for target in targets:
                if target not in index_of:
                    index_of[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges.get(target, ()))))
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index_of[target])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index_of[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    # Kahn over the components: a component goes once everything it refers to went
    component_of = {node: c for c, members in enumerate(components) for node in members}
    waiting = [0] * len(components)
    referrers: dict[int, set[int]] = {}
    for c, members in enumerate(components):
        needs = {component_of[t] for m in members for t in edges.get(m, ())} - {c}
        waiting[c] = len(needs)
        for need in needs:
            referrers.setdefault(need, set()).add(c)
    ready = [(components[c][0], c) for c in range(len(components)) if waiting[c] == 0]
    heapq.heapify(ready)
    ordered: list[list[int]] = []
    while ready:
        _, c = heapq.heappop(ready)
        ordered.append(components[c])
        for referrer in referrers.get(c, ()):
            waiting[referrer] -= 1
            if waiting[referrer] == 0:
                heapq.heappush(ready, (components[referrer][0], referrer))
    return ordered


def pack(groups: Iterable[list[int]], chunk_size: int) -> list[list[int]]:
    """Consecutive groups packed into chunks of at most ``chunk_size`` (a group is never cut: one
    larger than ``chunk_size`` is a chunk of its own)."""
    chunks: list[list[int]] = []
    current: list[int] = []
    for group in groups:
        if current and len(current) + len(group) > chunk_size:
            chunks.append(current)
            current = []
        current = current + group
        if len(current) >= chunk_size:
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


def _request_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    request = entry.get("request")
    return request if isinstance(request, dict) else {}


def _entry_type(entry: Mapping[str, Any]) -> str | None:
    resource = entry.get("resource")
    if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
        return str(resource["resourceType"])
    request = entry.get("request")
    url = request.get("url") if isinstance(request, dict) else None
    return url.split("?", 1)[0].split("/", 1)[0] if isinstance(url, str) else None


def transaction_problems(bundle: Mapping[str, Any], where: str) -> list[str]:
    """Why a transaction Bundle cannot be sent as it is (entries counted from 1, as in the files): an
    entry that is not an object, a request without a method and url, a POST or PUT without a resource
    of the url's type, a ``fullUrl`` twice, a ``urn:uuid:`` reference to no entry."""
    entries = bundle.get("entry")
    if entries is None:
        return []
    if not isinstance(entries, list):
        return [f"{where}: Bundle.entry is not a list"]
    problems: list[str] = []
    full_urls: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        place = f"{where}, Bundle entry {number}"
        if not isinstance(entry, dict):
            problems.append(f"{place}: not a Bundle entry (an object)")
            continue
        url = entry.get("fullUrl")
        if url is not None and not isinstance(url, str):
            problems.append(f"{place}: fullUrl is not a string")
        elif isinstance(url, str):
            first = full_urls.setdefault(url, number)
            if first != number:
                problems.append(f"{place}: the same fullUrl as Bundle entry {first}")
        request = entry.get("request")
        method = request.get("method") if isinstance(request, dict) else None
        target = request.get("url") if isinstance(request, dict) else None
        if not isinstance(method, str) or method.upper() not in _METHODS:
            problems.append(f"{place}: request.method is not one of {', '.join(sorted(_METHODS))}")
            continue
        if not isinstance(target, str) or not target:
            problems.append(f"{place}: request.url is missing")
            continue
        resource = entry.get("resource")
        if method.upper() in ("POST", "PUT"):
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                problems.append(f"{place}: a {method.upper()} without a resource")
                continue
            if target.split("?", 1)[0].split("/", 1)[0] != resource["resourceType"]:
                problems.append(f"{place}: request.url is not of the resource's type")
    for number, entry in enumerate(entries, start=1):
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            for path, reference in references(entry["resource"]):
                if reference.startswith("urn:uuid:") and reference not in full_urls:
                    rt = entry["resource"].get("resourceType")
                    problems.append(
                        f"{where}, Bundle entry {number} ({rt}) {path}: a urn:uuid reference to "
                        "no entry of the Bundle"
                    )
    return problems


def split_transaction(bundle: Mapping[str, Any], chunk_size: int) -> list[list[int]]:
    """The entries of a transaction Bundle (0-based positions) in parts of at most ``chunk_size``,
    cut only where no reference ties two entries: a reference to another entry's ``fullUrl`` (a
    ``urn:uuid:`` above all), to its ``Type/id``, or a conditional reference equal to another entry's
    conditional request (``ifNoneExist``, a conditional ``PUT``). A part that cannot be cut is larger
    than ``chunk_size``. Entries keep their order inside a part; parts go in order of their first entry."""
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    keys: dict[str, int] = {}
    for index, entry in enumerate(entries):
        resource = entry.get("resource")
        request = _request_of(entry)
        rt = _entry_type(entry)
        if isinstance(entry.get("fullUrl"), str):
            keys.setdefault(entry["fullUrl"], index)
        if isinstance(resource, dict) and isinstance(resource.get("id"), str):
            keys.setdefault(f"{rt}/{resource['id']}", index)
        url = request.get("url")
        if isinstance(url, str) and "?" in url:
            keys.setdefault(url, index)
        if isinstance(request.get("ifNoneExist"), str):
            keys.setdefault(f"{rt}?{request['ifNoneExist']}", index)
    parent = list(range(len(entries)))

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for index, entry in enumerate(entries):
        if not isinstance(entry.get("resource"), dict):
            continue
        for _, reference in references(entry["resource"]):
            target = keys.get(reference, keys.get(reference.split("/_history/", 1)[0]))
            if target is not None:
                a, b = find(index), find(target)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for index in range(len(entries)):
        groups.setdefault(find(index), []).append(index)
    return pack(sorted(groups.values(), key=lambda g: g[0]), chunk_size)


# --------------------------------------------------------------------------------------------------
# The plan


@dataclass
class ForeignSummary(UploadSummary):
    """An ``UploadSummary`` that also says which path the resources took and what became of their
    references."""

    paths: Counter[str] = field(default_factory=Counter)
    """Entries per path: ``as-is``, ``conditional``, ``create``, ``create-if-none-exist`` (a batch
    entry's ``ifNoneExist`` kept), ``update-by-id``."""
    references_rewritten: int = 0
    """References to another uploaded resource, rewritten to its ``urn:uuid:`` or its new id."""
    references_outside: int = 0
    """Literal references to resources not in the upload, left as they are."""
    references_conditional: int = 0
    """Conditional references (``Type?identifier=...``) matching nothing uploaded: left for the server."""
    sent_whole: list[str] = field(default_factory=list)
    """Transactions larger than the chunk size that could not be split (what, how many entries)."""
    outcomes_skipped: int = 0


@dataclass(frozen=True)
class Step:
    """One Bundle to send: its entries' source positions and what it is (for messages)."""

    bundle: JSON
    label: str
    size: int


class ForeignPlan:
    """A foreign upload without the I/O.

        plan = ForeignPlan(upload, chunk_size=50, mode="conditional-update", keep_ids=False,
                           base_url=client.base_url)
        plan.check()                       # UploadInputError: nothing is sent
        for step in plan.steps():          # the next Bundle is built once the last one is done
            result = client.transaction(step.bundle)
            problems = plan.done(result)   # non-empty: the answer does not say what is needed next

    Resources go in dependency order (what is referred to first), ``chunk_size`` per transaction,
    resources that refer to each other in a cycle always in the same one; then the transaction
    Bundles sent as they are, in an order where a Bundle whose conditional or literal references
    match another's entries comes after it.
    """

    def __init__(
        self,
        upload: Upload,
        *,
        chunk_size: int,
        mode: TransactionMode = "conditional-update",
        keep_ids: bool = False,
        base_url: str | None = None,
        max_transaction_entries: int = MAX_TRANSACTION_ENTRIES,
        new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk size must be at least 1")
        self.upload = upload
        self.chunk_size = chunk_size
        self.mode: TransactionMode = mode
        self.keep_ids = keep_ids
        self.base_url = base_url
        self.max_transaction_entries = max_transaction_entries
        self._new_uuid = new_uuid
        self.summary = ForeignSummary(outcomes_skipped=upload.outcomes_skipped)
        self._chunks: list[list[int]] = []
        self._targets: list[dict[str, int]] = []  # per item: reference -> item it points at
        self._parts: list[tuple[TransactionInput, list[list[int]]]] = []
        self._address: dict[int, str] = {}  # item -> where it is on the server (Type/id)
        self._current: list[int] | None = None
        self.total = 0
        self.sent = 0
        self.step = -1
        self._checked = False
        self.idempotent = True

    # -- checking ----------------------------------------------------------------------------------

    def path_of(self, item: UploadItem) -> UploadPath:
        if item.own:
            return "conditional"
        if self.keep_ids:
            return "update-by-id"
        return "create-if-none-exist" if item.if_none_exist else "create"

    def check(self) -> None:
        """Check everything and decide the order, before the first write.

        Raises:
            UploadInputError: every problem (resources, transaction Bundles, sizes), all at once.
        """
        problems: list[str] = []
        items = self.upload.items
        self.summary = ForeignSummary(outcomes_skipped=self.upload.outcomes_skipped)
        self._targets, self._parts = [], []  # a second check starts afresh
        index = _Index(items, problems)
        edges: dict[int, list[int]] = {}
        for position, item in enumerate(items):
            path = self.path_of(item)
            if path == "conditional":
                request = entry_request(item.resource, self.mode)
                if isinstance(request, str):
                    problems.append(f"{item.where}{request}")
            elif path == "update-by-id":
                rid = item.resource.get("id")
                if not isinstance(rid, str) or not _ID.fullmatch(rid):
                    problems.append(
                        f"{item.where} ({item.resource_type}): no valid id to keep (--keep-ids)"
                    )
            targets: dict[str, int] = {}
            for _, reference in references(item.resource):
                found = index.resolve(reference)
                if isinstance(found, int):
                    if found != position:
                        targets[reference] = found
                elif found == "outside":
                    self.summary.references_outside += 1
                elif found == "conditional":
                    self.summary.references_conditional += 1
            self._targets.append(targets)
            edges[position] = sorted(set(targets.values()))
        groups = dependency_order(len(items), edges)
        for group in groups:
            if len(group) > self.max_transaction_entries:
                problems.append(
                    f"{len(group)} resources refer to each other in a cycle (from "
                    f"{items[group[0]].where}): more than {self.max_transaction_entries} for one "
                    "transaction"
                )
        self._chunks = pack(groups, self.chunk_size)
        self.total = len(items)
        for transaction in self._ordered_transactions():
            refused = transaction_problems(transaction.bundle, transaction.where)
            problems.extend(refused)
            if refused:
                continue
            parts = split_transaction(transaction.bundle, self.chunk_size)
            for part in parts:
                if len(part) > self.max_transaction_entries:
                    problems.append(
                        f"{transaction.where}: {len(part)} entries tied together by references "
                        f"cannot be split, more than {self.max_transaction_entries} for one "
                        "transaction"
                    )
            self._parts.append((transaction, parts))
            self.total += sum(len(part) for part in parts)
        if problems:
            raise UploadInputError(problems)
        self.idempotent = not any(self.path_of(i) == "create" for i in items) and all(
            bundle_is_idempotent(t.bundle) for t, _ in self._parts
        )
        self._checked = True

    def _ordered_transactions(self) -> list[TransactionInput]:
        """The transaction Bundles, each after those whose entries its references need."""
        transactions = self.upload.transactions
        provider: dict[str, int] = {}
        for number, transaction in enumerate(transactions):
            for entry in transaction.bundle.get("entry") or []:
                if not isinstance(entry, dict):
                    continue
                request = _request_of(entry)
                rt = _entry_type(entry)
                resource = entry.get("resource")
                keys = []
                if isinstance(request.get("ifNoneExist"), str):
                    keys.append(f"{rt}?{request['ifNoneExist']}")
                if isinstance(request.get("url"), str) and "?" in request["url"]:
                    keys.append(request["url"])
                if isinstance(resource, dict) and isinstance(resource.get("id"), str):
                    keys.append(f"{rt}/{resource['id']}")
                for key in keys:
                    provider.setdefault(key, number)
        edges: dict[int, set[int]] = {}
        for number, transaction in enumerate(transactions):
            for entry in transaction.bundle.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                for _, reference in references(resource) if isinstance(resource, dict) else ():
                    other = provider.get(reference)
                    if other is not None and other != number:
                        edges.setdefault(number, set()).add(other)
        order = dependency_order(len(transactions), edges)
        return [transactions[n] for group in order for n in group]

    # -- sending -----------------------------------------------------------------------------------

    def steps(self) -> Iterator[Step]:
        """The Bundles, one at a time; the next one is built after ``done`` was called for this one."""
        if not self._checked:
            raise RuntimeError("check() first")
        for number, chunk in enumerate(self._chunks):
            self.step += 1
            self._current = chunk
            yield Step(self._bundle_of(chunk), f"resources, transaction {number + 1}", len(chunk))
        self._current = None
        for transaction, parts in self._parts:
            for part_number, part in enumerate(parts):
                self.step += 1
                entries = transaction.bundle.get("entry") or []
                bundle: JSON = {"resourceType": "Bundle", "type": "transaction"}
                bundle["entry"] = [entries[i] for i in part]
                self.summary.paths["as-is"] += len(part)
                label = transaction.where + (f", part {part_number + 1}" if len(parts) > 1 else "")
                if len(part) > self.chunk_size:
                    self.summary.sent_whole.append(f"{label}: {len(part)} entries")
                yield Step(bundle, label, len(part))

    def _bundle_of(self, chunk: list[int]) -> JSON:
        items = self.upload.items
        urls: dict[int, str] = {}
        for position in chunk:
            item = items[position]
            path = self.path_of(item)
            if path.startswith("create"):
                urls[position] = f"urn:uuid:{self._new_uuid()}"
            elif path == "update-by-id":
                urls[position] = full_url(item.resource, self.base_url)
        own_urls = {p: full_url(items[p].resource, self.base_url) for p in chunk if p not in urls}
        entries: list[JSON] = []
        for position in chunk:
            item = items[position]
            path = self.path_of(item)
            targets = self._targets[position]

            def replace(reference: str, targets: dict[str, int] = targets) -> str | None:
                target = targets.get(reference)
                if target is None:
                    return None
                if target in self._address:
                    return self._address[target]
                if target in urls:
                    if self.path_of(items[target]) == "update-by-id":
                        return f"{items[target].resource_type}/{items[target].resource['id']}"
                    return urls[target]
                own = items[target]
                rid = own.resource.get("id")
                return f"{own.resource_type}/{rid}" if isinstance(rid, str) else own_urls[target]

            resource, rewritten = _rewritten(item.resource, replace)
            self.summary.references_rewritten += rewritten
            self.summary.paths[path] += 1
            if path == "conditional":
                request = entry_request(resource, self.mode)
                assert isinstance(request, dict)  # checked
                entry = {"fullUrl": own_urls[position], "resource": resource, "request": request}
                entries.append(entry)
            elif path.startswith("create"):
                body = {k: v for k, v in resource.items() if k != "id"}
                request = {"method": "POST", "url": item.resource_type}
                if item.if_none_exist:
                    request["ifNoneExist"] = item.if_none_exist
                entries.append({"fullUrl": urls[position], "resource": body, "request": request})
            else:
                request = {"method": "PUT", "url": f"{item.resource_type}/{resource['id']}"}
                entries.append(
                    {"fullUrl": urls[position], "resource": resource, "request": request}
                )
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    def done(self, result: BundleResult) -> list[str]:
        """Count a committed Bundle and learn where the server put its resources; the problems (none
        when all is well) are what the answer fails to say that later Bundles need."""
        self.summary.add(result, offset=self.sent)
        problems: list[str] = []
        if self._current is not None:
            for offset, position in enumerate(self._current):
                location = result.entries[offset].location if offset < len(result.entries) else None
                match = _RELATIVE.search((location or "").split("/_history/", 1)[0])
                if match is not None:
                    self._address[position] = f"{match['type']}/{match['id']}"
                elif self.path_of(self.upload.items[position]).startswith(
                    "create"
                ) and self._needed(position):
                    problems.append(
                        f"entry {offset} ({self.upload.items[position].resource_type}): no location, "
                        "and resources still to send refer to it"
                    )
        self.sent += len(result.entries)
        return problems

    def _needed(self, position: int) -> bool:
        later = {p for chunk in self._chunks[self.step + 1 :] for p in chunk}
        return any(position in self._targets[p].values() for p in later)

    def committed(self, current: str) -> str:
        """What is on the server after a stop in the current step, and whether re-running is safe."""
        done = self.summary.bundles
        of = f" of {self.total}" if self.total else ""
        if done == 0:
            before = "nothing was committed before it"
        elif done == 1:
            before = f"transaction 1 ({self.sent}{of} entries) was committed before it"
        else:
            before = f"transactions 1-{done} ({self.sent}{of} entries) were committed before it"
        if not self.idempotent:
            again = (
                "Resources were created with ids the server assigned: re-running the upload would "
                "create them again (remove what was committed, or finish by hand)"
            )
        else:
            again = "Re-running the same upload completes it (every entry is idempotent)"
        return f"{before[0].upper()}{before[1:]}; {current}. {again}."
