"""Pulling a cohort from a FHIR server: by patients, by a Group's members, or by any searches.

    result = pull_cohort(url, patients=["p1", "p2"], out="pulled/")   # Patient/$everything or searches
    result = pull_cohort(url, group="cohort-1")                        # the Group's Patient members
    result = pull_cohort(url, searches=[parse_search("Observation?code=http://loinc.org|29463-7")],
                         include=("Observation:patient",))

How patients are pulled: `Patient/[id]/$everything` when the server's CapabilityStatement offers it
(every page of its searchset); otherwise, or when the operation answers 400, 404, 405 or 501 (the
patients being there), one search per resource type of `PATIENT_SEARCHES` for groups of patients
(`Observation?subject=Patient/a,Patient/b`). The Patients themselves are found first
(`Patient?_id=...`): an id the server does not know is `PatientNotFound` before anything else is asked.

Every search is bounded by the client's page cap, body cap and per-request deadline; at most
`concurrency` requests run at once; the whole pull by `max_duration` (`PullTimedOut`). What is left out
is counted with its reason (`CohortPull.left_out`); how the patients were pulled is said in
`CohortPull.notes`. The study pull (`--study`) stays in `adapter.transfer`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import unquote

from adapter.bundles import Issue, parse_issues
from adapter.client import AsyncFhirClient, AsyncSearch, FhirHttpError, InvalidResponse, SearchEntry
from adapter.fhir_files import write_ndjson
from mappings.errors import ExitCode, TrialfhirError

__all__ = [
    "PATIENT_SEARCHES",
    "CohortPull",
    "InvalidSelection",
    "NothingPulled",
    "PatientNotFound",
    "PullTimedOut",
    "SearchQuery",
    "check_includes",
    "check_patient_ids",
    "check_types",
    "group_members",
    "local_id",
    "parse_search",
    "pull_cohort",
    "pull_group_async",
    "pull_patients_async",
    "pull_searches_async",
    "read_by_ids",
]

log = logging.getLogger("trialfhir.cohorts")

JSON = dict[str, Any]

PATIENT_SEARCHES: Final[dict[str, str]] = {
    "AdverseEvent": "subject",
    "AllergyIntolerance": "patient",
    "CarePlan": "subject",
    "Condition": "subject",
    "DiagnosticReport": "subject",
    "DocumentReference": "subject",
    "Encounter": "subject",
    "Immunization": "patient",
    "MedicationAdministration": "subject",
    "MedicationDispense": "subject",
    "MedicationRequest": "subject",
    "MedicationStatement": "subject",
    "Observation": "subject",
    "Procedure": "subject",
    "ResearchSubject": "individual",
    "ServiceRequest": "subject",
    "Specimen": "subject",
}
"""The resource types a patient pull asks for when the server has no `Patient/$everything` (and what
`--type` may name), with the search parameter that points at the patient."""

EVERYTHING: Final = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
FALLBACK_STATUSES: Final = frozenset({400, 404, 405, 501})
"""Answers to `$everything` (the patient being there) that mean "not offered here": per-type searches."""

DEFAULT_MAX_DURATION: Final = 6 * 3600.0
IDS_PER_QUERY: Final = 50

LEFT_OUT_INACTIVE: Final = "Group members marked inactive"
LEFT_OUT_NOT_PATIENT: Final = (
    "Group members that are not a Patient of this server (another type, another server, "
    "or an identifier without a reference)"
)
LEFT_OUT_OTHER_TYPE: Final = "resources of a type not among --type (the server sent them anyway)"

_TYPE_RE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}")
_ID_RE: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.:]*")
_INCLUDE_RE: Final = re.compile(
    r"\*|[A-Z][A-Za-z]+:[A-Za-z0-9_\-.]+(:[A-Z][A-Za-z]+)?|[A-Z][A-Za-z]+:\*"
)
_NOT_IN_A_PULL: Final = frozenset({"_summary", "_elements", "_contained", "_containedType"})


class InvalidSelection(TrialfhirError, ValueError):
    """What to pull is not valid: a search that is not `Type?query`, an id that is not a FHIR id,
    a type the pull does not know (a usage error: nothing was asked of the server)."""

    code: ClassVar[str] = "invalid_selection"
    exit_code: ClassVar[ExitCode] = ExitCode.USAGE


class PatientNotFound(TrialfhirError, LookupError):
    """Patients asked for (by `--patient` position) are not on the server."""

    code: ClassVar[str] = "patient_not_found"
    exit_code: ClassVar[ExitCode] = ExitCode.NOT_FOUND


class NothingPulled(TrialfhirError):
    """The selection matched nothing (a search without a match, a Group without Patient members):
    nothing is written."""

    code: ClassVar[str] = "nothing_pulled"
    exit_code: ClassVar[ExitCode] = ExitCode.NOTHING_CONVERTED


class PullTimedOut(TrialfhirError, TimeoutError):
    """The whole pull took longer than `max_duration` seconds (each request has its own bounds too)."""

    code: ClassVar[str] = "pull_timed_out"
    exit_code: ClassVar[ExitCode] = ExitCode.UNREACHABLE

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"the server did not give everything within {seconds:g} s (--max-duration); "
            "nothing was written"
        )


# --- what to pull ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchQuery:
    """One search: its resource type and its (name, value) pairs, percent-decoded."""

    resource_type: str
    params: tuple[tuple[str, str], ...] = ()

    def value_of(self, name: str) -> str | None:
        return next((v for n, v in self.params if n == name), None)


def parse_search(text: str, *, position: int = 1) -> SearchQuery:
    """`Type?name=value&...` as it would follow the server's base URL (`Observation?code=
    http://loinc.org|29463-7`; percent-escapes are decoded, `+` stays a plus). `position` names the
    search in messages (its values may be patient data, so they are never echoed).

    Raises:
        InvalidSelection: not a search: a full URL, a read (`Patient/123`), an empty name, or a
            parameter a pull cannot keep whole resources with (`_summary`, `_elements`, `_contained`).
    """
    where = f"search {position}"
    resource_type, _, query = text.strip().partition("?")
    if "://" in resource_type:
        raise InvalidSelection(
            f"{where}: give it relative to the server, e.g. Observation?code=..., not a full URL"
        )
    if not _TYPE_RE.fullmatch(resource_type):
        raise InvalidSelection(
            f"{where}: {'a read or operation' if '/' in resource_type else 'no resource type'} "
            "where a search Type?query was expected (e.g. Observation?code=...)"
        )
    pairs: list[tuple[str, str]] = []
    for part in query.split("&") if query else []:
        if not part:
            continue
        name, _, value = part.partition("=")
        name, value = unquote(name), unquote(value)
        if not _NAME_RE.fullmatch(name):
            raise InvalidSelection(f"{where}: parameter {len(pairs) + 1} has no valid name")
        if name in _NOT_IN_A_PULL:
            raise InvalidSelection(
                f"{where}: {name} gives partial resources; a pull keeps whole ones"
            )
        pairs.append((name, value))
    return SearchQuery(resource_type, tuple(pairs))


def check_includes(values: Iterable[str], option: str) -> tuple[str, ...]:
    """`_include` / `_revinclude` values (`Observation:patient`, `Observation:subject:Patient`, `*`).

    Raises:
        InvalidSelection: a value that is not `Type:parameter[:TargetType]`.
    """
    checked = tuple(values)
    wrong = [i + 1 for i, v in enumerate(checked) if not _INCLUDE_RE.fullmatch(v)]
    if wrong:
        raise InvalidSelection(
            f"{option} {', '.join(map(str, wrong))}: not Type:parameter[:TargetType] "
            "(e.g. Observation:patient)"
        )
    return checked


def check_patient_ids(ids: Iterable[str]) -> tuple[str, ...]:
    """Patient ids, each a FHIR id, without repeats (first kept).

    Raises:
        InvalidSelection: an id that is not a FHIR id (named by position).
    """
    given = [i.strip() for i in ids]
    wrong = [str(n) for n, i in enumerate(given, start=1) if not _ID_RE.fullmatch(i)]
    if wrong:
        raise InvalidSelection(
            f"--patient {', '.join(wrong)}: not a FHIR id (1-64 of A-Z a-z 0-9 - .)"
        )
    return tuple(dict.fromkeys(given))


def check_types(types: Iterable[str] | None) -> tuple[str, ...] | None:
    """The `--type` list: Patient and the types of `PATIENT_SEARCHES`.

    Raises:
        InvalidSelection: a type a patient pull does not know.
    """
    if types is None:
        return None
    chosen = tuple(dict.fromkeys(t.strip() for t in types if t.strip()))
    unknown = [t for t in chosen if t != "Patient" and t not in PATIENT_SEARCHES]
    if unknown or not chosen:
        raise InvalidSelection(
            f"--type {', '.join(unknown) or '(empty)'}: a patient pull knows "
            f"Patient, {', '.join(PATIENT_SEARCHES)}"
        )
    return chosen


# --- what came back ----------------------------------------------------------------------------------


@dataclass
class CohortPull:
    """What a cohort pull brought back: the resources (each `Type/id` once), why anything was left
    out (reason -> count), how it was pulled, and the server's OperationOutcome messages."""

    resources: list[JSON] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    server_messages: list[Issue] = field(default_factory=list)
    versions_replaced: int = 0
    """Resources that came twice in different versions (changed during the pull): the newer kept."""

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for resource in self.resources:
            rt = resource["resourceType"]
            counts[rt] = counts.get(rt, 0) + 1
        return dict(sorted(counts.items()))

    def leave_out(self, reason: str, count: int = 1) -> None:
        if count:
            self.left_out[reason] = self.left_out.get(reason, 0) + count


class _Collected:
    """Resources by `Type/id`: a resource met twice (two patients' `$everything` share a
    Practitioner) is kept once; two different versions keep the newer one."""

    def __init__(self, result: CohortPull) -> None:
        self.result = result
        self.by_key: dict[str, JSON] = {}

    def add(self, resource: JSON) -> None:
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid:
            raise InvalidResponse(f"the server sent a {resource.get('resourceType')} without an id")
        key = f"{resource['resourceType']}/{rid}"
        kept = self.by_key.get(key)
        if kept is None:
            self.by_key[key] = resource
        elif kept != resource:
            self.result.versions_replaced += 1
            if _version(resource) > _version(kept):
                self.by_key[key] = resource

    def take(self, entry: SearchEntry) -> None:
        resource = entry.resource
        if resource.get("resourceType") == "OperationOutcome":
            self.result.server_messages.extend(parse_issues(resource))
            return
        self.add(resource)

    def sorted(self) -> list[JSON]:
        return [self.by_key[k] for k in sorted(self.by_key, key=lambda k: tuple(k.split("/", 1)))]


def _version(resource: JSON) -> tuple[int, str]:
    meta = resource.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    version = meta.get("versionId")
    number = int(version) if isinstance(version, str) and version.isdigit() else -1
    updated = meta.get("lastUpdated")
    return number, updated if isinstance(updated, str) else ""


# --- pulling -------------------------------------------------------------------------------------


def _offers_everything(capabilities: JSON) -> bool:
    """Whether the CapabilityStatement lists `$everything` on Patient (by name or definition)."""
    for rest in capabilities.get("rest") or []:
        if not isinstance(rest, dict):
            continue
        for resource in rest.get("resource") or []:
            if not isinstance(resource, dict) or resource.get("type") != "Patient":
                continue
            for operation in resource.get("operation") or []:
                if isinstance(operation, dict) and (
                    operation.get("name") == "everything"
                    or str(operation.get("definition", "")).endswith("/Patient-everything")
                ):
                    return True
    return False


def _offered_types(capabilities: JSON) -> set[str] | None:
    """The resource types the server lists, or None when it lists none (then every type is tried)."""
    types = {
        str(resource.get("type"))
        for rest in capabilities.get("rest") or []
        if isinstance(rest, dict)
        for resource in rest.get("resource") or []
        if isinstance(resource, dict) and isinstance(resource.get("type"), str)
    }
    return types or None


async def _gathered(tasks: Iterable[Awaitable[object]], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def bounded(task: Awaitable[object]) -> None:
        async with gate:
            await task

    await asyncio.gather(*(bounded(t) for t in tasks))


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


async def read_by_ids(
    client: AsyncFhirClient, resource_type: str, ids: Sequence[str], concurrency: int
) -> dict[str, JSON]:
    """The resources of `ids` the server has, by `Type?_id=a,b,...` (50 ids per search, at most
    `concurrency` at once): id -> resource. Ids it does not have are simply absent.

    Raises:
        InvalidResponse: an answer holding another type, or a resource without an id.
    """
    found: dict[str, JSON] = {}

    async def fetch(group: list[str]) -> None:
        search = client.search(resource_type).where({"_id": ",".join(group)}).count(len(group))
        async for resource in search:
            rid = resource.get("id")
            if resource.get("resourceType") != resource_type or not isinstance(rid, str):
                raise InvalidResponse(
                    f"the server answered a {resource_type} search with a "
                    f"{resource.get('resourceType')}{'' if isinstance(rid, str) else ' without an id'}"
                )
            found[rid] = resource

    await _gathered((fetch(g) for g in _chunks(ids, IDS_PER_QUERY)), concurrency)
    return found


def local_id(reference: Any, base_url: str, resource_type: str) -> str | None:
    """The id of a reference to a `resource_type` of this server: `Type/id` (a `_history` version
    allowed) or that URL under `base_url`; None for anything else (another type or server, a
    contained or `urn:` reference, an identifier alone)."""
    if not isinstance(reference, str):
        return None
    base = base_url.rstrip("/") + "/"
    path = reference[len(base) :] if reference.startswith(base) else reference
    parts = path.split("/")
    if (
        len(parts) in (2, 4)
        and parts[0] == resource_type
        and _ID_RE.fullmatch(parts[1])
        and (len(parts) == 2 or parts[2] == "_history")
    ):
        return parts[1]
    return None


async def _find_patients(
    client: AsyncFhirClient, ids: Sequence[str], collected: _Collected, concurrency: int
) -> None:
    """Every Patient of `ids`; `PatientNotFound` names the positions missing."""
    found = await read_by_ids(client, "Patient", ids, concurrency)
    for pid in ids:
        if pid in found:
            collected.add(found[pid])
    missing = [str(n) for n, pid in enumerate(ids, start=1) if pid not in found]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise PatientNotFound(
            f"{len(missing)} of the {len(ids)} patients asked for are not on the server "
            f"(--patient {', '.join(missing[:10])}{more}, counted from 1 in the order given); "
            "nothing was written"
        )


async def pull_patients_async(
    client: AsyncFhirClient,
    patient_ids: Sequence[str],
    *,
    types: Sequence[str] | None = None,
    concurrency: int = 8,
    patients_per_query: int = 20,
    page_size: int = 500,
    progress: Callable[[int], None] | None = None,
    result: CohortPull | None = None,
) -> CohortPull:
    """Everything of the patients `patient_ids` (FHIR ids): `Patient/$everything` where offered,
    else one search per type of `PATIENT_SEARCHES` (or of `types`) per group of patients.

    Raises:
        InvalidSelection: an id that is not a FHIR id, a type not known.
        PatientNotFound: ids the server does not know (nothing else is asked).
        FhirError: from the client, for anything the server refuses.
    """
    ids = check_patient_ids(patient_ids)
    chosen = check_types(types)
    result = result if result is not None else CohortPull()
    collected = _Collected(result)
    for resource in result.resources:  # a Group pull brings its Group
        collected.add(resource)
    capabilities = await client.capabilities()
    await _find_patients(client, ids, collected, concurrency)
    if progress is not None:
        progress(len(ids))

    use_everything = _offers_everything(capabilities)
    reason = "the server's CapabilityStatement does not offer Patient/$everything"
    if use_everything and ids:
        refused = await _everything(
            client, ids[0], chosen, page_size, collected, result, progress, probe=True
        )
        if refused is None:
            await _gathered(
                (
                    _everything(client, pid, chosen, page_size, collected, result, progress)
                    for pid in ids[1:]
                ),
                concurrency,
            )
            result.notes.append(f"Patient/$everything for each of the {len(ids)} patients")
        else:
            use_everything = False
            reason = f"Patient/$everything answered {refused}"
    if not use_everything:
        await _per_type(
            client, ids, chosen, capabilities, reason, concurrency, patients_per_query,
            page_size, collected, result, progress,
        )  # fmt: skip
    result.resources = collected.sorted()
    log.info("pulled %d patients: %d resources", len(ids), len(result.resources))
    return result


async def _everything(
    client: AsyncFhirClient,
    patient_id: str,
    types: tuple[str, ...] | None,
    page_size: int,
    collected: _Collected,
    result: CohortPull,
    progress: Callable[[int], None] | None,
    *,
    probe: bool = False,
) -> str | None:
    """Every page of `Patient/[id]/$everything` into `collected`; None when done. For the first
    patient (`probe`), an answer that says the operation is not offered here (400, 404, 405, 501:
    the patient is there) is returned as text instead of raised."""
    query = f"_count={page_size}"
    if types is not None:
        query += "&_type=" + ",".join(sorted({"Patient", *types}))
    # The client pages any searchset from the URL of its first page (`resume`): the operation's
    # answer is one, with HAPI's `_getpages` links; page cap, loop and origin checks apply as usual.
    search = client.search("Patient").resume(
        f"Patient/{patient_id}/$everything?{query}", page_number=1
    )
    entries: list[SearchEntry] = []
    try:
        entries = [entry async for entry in search.entries()]
    except FhirHttpError as exc:
        if not probe or exc.status not in FALLBACK_STATUSES:
            raise
        said = f": {exc.diagnostics}" if exc.diagnostics else ""
        return f"HTTP {exc.status}{said[:160]}"
    kept = 0
    for entry in entries:
        rt = entry.resource.get("resourceType")
        if types is not None and rt not in types and rt not in ("Patient", "OperationOutcome"):
            result.leave_out(LEFT_OUT_OTHER_TYPE)
            continue
        collected.take(entry)
        kept += 1
    if progress is not None:
        progress(kept)
    return None


async def _per_type(
    client: AsyncFhirClient,
    ids: Sequence[str],
    types: tuple[str, ...] | None,
    capabilities: JSON,
    reason: str,
    concurrency: int,
    patients_per_query: int,
    page_size: int,
    collected: _Collected,
    result: CohortPull,
    progress: Callable[[int], None] | None,
) -> None:
    wanted = [t for t in (types or tuple(PATIENT_SEARCHES)) if t != "Patient"]
    offered = _offered_types(capabilities)
    not_offered = [t for t in wanted if offered is not None and t not in offered]
    asked = [t for t in wanted if t not in not_offered]
    result.notes.append(
        f"per-type searches ({reason}): {', '.join(asked) or 'none'}, "
        f"{patients_per_query} patients per search"
    )
    if not_offered:
        result.notes.append(
            f"not asked (the server's CapabilityStatement does not list them): {', '.join(not_offered)}"
        )

    async def fetch(resource_type: str, group: list[str]) -> None:
        refs = ",".join(f"Patient/{pid}" for pid in group)
        search: AsyncSearch = (
            client.search(resource_type)
            .where({PATIENT_SEARCHES[resource_type]: refs})
            .count(page_size)
        )
        n = 0
        async for resource in search:
            if resource.get("resourceType") != resource_type:
                raise InvalidResponse(
                    f"the server answered a {resource_type} search with a "
                    f"{resource.get('resourceType')}"
                )
            collected.add(resource)
            n += 1
        if progress is not None:
            progress(n)

    await _gathered(
        (fetch(rt, group) for group in _chunks(ids, patients_per_query) for rt in asked),
        concurrency,
    )


def group_members(group: JSON, base_url: str) -> tuple[list[str], dict[str, int]]:
    """The ids of the Group's active Patient members (in order, once each), and what was left out
    (reason -> count). A member is a Patient of this server when its `entity.reference` is
    `Patient/id` (a `_history` version allowed) or that URL under `base_url`."""
    ids: list[str] = []
    left_out: dict[str, int] = {}
    members = group.get("member")
    for member in members if isinstance(members, list) else []:
        entity = member.get("entity") if isinstance(member, dict) else None
        reference = entity.get("reference") if isinstance(entity, dict) else None
        if isinstance(member, dict) and member.get("inactive") is True:
            left_out[LEFT_OUT_INACTIVE] = left_out.get(LEFT_OUT_INACTIVE, 0) + 1
            continue
        pid = local_id(reference, base_url, "Patient")
        if pid is None:
            left_out[LEFT_OUT_NOT_PATIENT] = left_out.get(LEFT_OUT_NOT_PATIENT, 0) + 1
        elif pid not in ids:
            ids.append(pid)
    return ids, left_out


async def pull_group_async(
    client: AsyncFhirClient,
    group_id: str,
    *,
    types: Sequence[str] | None = None,
    concurrency: int = 8,
    patients_per_query: int = 20,
    page_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> CohortPull:
    """The Group `group_id` and everything of its active Patient members (as `pull_patients_async`).

    Raises:
        InvalidSelection: `group_id` is not a FHIR id.
        ResourceNotFound: no such Group (404).
        NothingPulled: the Group has no active Patient member.
        PatientNotFound: a member the server does not know.
    """
    if not _ID_RE.fullmatch(group_id):
        raise InvalidSelection("--group: not a FHIR id (1-64 of A-Z a-z 0-9 - .)")
    group = await client.read("Group", group_id)
    ids, left_out = group_members(group, client.base_url)
    result = CohortPull(resources=[group])
    for reason, count in left_out.items():
        result.leave_out(reason, count)
    if not ids:
        raise NothingPulled(
            f"the Group has no active Patient member ({sum(left_out.values())} members left out): "
            "nothing to pull; nothing was written"
        )
    result.notes.append(f"the Group's {len(ids)} active Patient members")
    return await pull_patients_async(
        client, ids, types=types, concurrency=concurrency,
        patients_per_query=patients_per_query, page_size=page_size, progress=progress,
        result=result,
    )  # fmt: skip


async def pull_searches_async(
    client: AsyncFhirClient,
    searches: Sequence[SearchQuery],
    *,
    include: Sequence[str] = (),
    revinclude: Sequence[str] = (),
    concurrency: int = 8,
    page_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> CohortPull:
    """Every resource the searches match, and what `include` / `revinclude` (added to each search,
    beside any `_include` written in it) bring with them.

    Raises:
        InvalidSelection: an include that is not `Type:parameter[:TargetType]`.
        NothingPulled: the searches matched nothing.
    """
    includes, revincludes = (
        check_includes(include, "--include"),
        check_includes(revinclude, "--revinclude"),
    )
    result = CohortPull()
    collected = _Collected(result)
    matched = [0] * len(searches)

    async def fetch(index: int, query: SearchQuery) -> None:
        search = client.search(query.resource_type).where(list(query.params))
        for target in includes:
            search = search.include(target)
        for target in revincludes:
            search = search.revinclude(target)
        if query.value_of("_count") is None:
            search = search.count(page_size)
        n = 0
        async for entry in search.entries():
            collected.take(entry)
            if entry.is_match:
                matched[index] += 1
            n += 1
        if progress is not None:
            progress(n)

    await _gathered((fetch(i, q) for i, q in enumerate(searches)), concurrency)
    result.notes.extend(
        f"search {i}: {n} matches ({q.resource_type})"
        for i, (q, n) in enumerate(zip(searches, matched, strict=True), start=1)
    )
    if not collected.by_key:
        raise NothingPulled(
            f"the {len(searches)} search(es) matched nothing on the server; nothing was written"
        )
    result.resources = collected.sorted()
    return result


def pull_cohort(
    base_url: str,
    *,
    patients: Sequence[str] = (),
    group: str | None = None,
    searches: Sequence[SearchQuery] = (),
    include: Sequence[str] = (),
    revinclude: Sequence[str] = (),
    types: Sequence[str] | None = None,
    concurrency: int = 8,
    max_duration: float = DEFAULT_MAX_DURATION,
    client_options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    out: str | Path | None = None,
) -> CohortPull:
    """Synchronous front: opens an `AsyncFhirClient` on `base_url` (with `client_options`), pulls
    exactly one of `patients`, `group` or `searches` within `max_duration` seconds, and writes the
    resources to the FHIR folder `out` when given (one NDJSON file per type).

    Raises:
        InvalidSelection: not exactly one of patients, group, searches; or one of them is wrong.
        PullTimedOut: the pull took longer than `max_duration`.
        and what `pull_patients_async`, `pull_group_async`, `pull_searches_async` raise.
    """
    chosen = [n for n, v in (("patients", patients), ("group", group), ("searches", searches)) if v]
    if len(chosen) != 1:
        raise InvalidSelection(
            f"pull exactly one of patients, group or searches, not {' and '.join(chosen) or 'none'}"
        )
    if not max_duration > 0:
        raise InvalidSelection("max_duration must be a number of seconds above 0")
    if searches:
        check_includes(include, "--include")
        check_includes(revinclude, "--revinclude")
    else:
        check_types(types)

    async def pull(client: AsyncFhirClient) -> CohortPull:
        if patients:
            return await pull_patients_async(
                client, patients, types=types, concurrency=concurrency, progress=progress
            )
        if group is not None:
            return await pull_group_async(
                client, group, types=types, concurrency=concurrency, progress=progress
            )
        await client.capabilities()  # R4 or FhirVersionMismatch, before any search
        return await pull_searches_async(
            client,
            searches,
            include=include,
            revinclude=revinclude,
            concurrency=concurrency,
            progress=progress,
        )

    async def run() -> CohortPull:
        async with AsyncFhirClient(base_url, **(client_options or {})) as client:
            budget = asyncio.timeout(max_duration)
            try:
                async with budget:
                    return await pull(client)
            except TimeoutError as exc:
                if budget.expired():
                    raise PullTimedOut(max_duration) from exc
                raise

    result = asyncio.run(run())
    if out is not None:
        write_ndjson(result.resources, out)
    return result
