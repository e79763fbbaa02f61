"""Moving a trial to and from a FHIR server: `push` (a trial's resources -> conditional transactions) and
`pull_study` (a study and everything linked to it -> resource dicts or a FHIR folder).

This is where the client meets the mappings: the client knows nothing of trials, the mappings know
nothing of servers.

How a study is pulled (HAPI does not index the `workflow-researchStudy` extension, so the study is
followed through its subjects):
1. the ResearchStudy by its business identifier;
2. its ResearchSubjects (`ResearchSubject?study=...`, with `_include=ResearchSubject:individual` for the
   Patients);
3. for groups of patients, concurrently (bounded): Condition, Specimen, Observation (LB included),
   MedicationAdministration, Procedure, DiagnosticReport and AdverseEvent by `subject`; events are kept
   only when their `workflow-researchStudy` extension points at this study (a patient may be in several
   studies, and have events linked to none), or all of them with `all_events`;
   the Conditions of the study's patients are kept, and their Specimens when a kept event refers to
   them (all of them with `all_events`). `PullResult.left_out` counts what was left out, by reason.

Pulls by patients, by a Group or by searches: `adapter.cohorts`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from adapter.bundles import TransactionMode
from adapter.client import (
    AsyncFhirClient,
    FhirClient,
    FhirError,
    FhirHttpError,
    InvalidResponse,
    TransactionFailed,
    TransactionResponseMismatch,
    token,
)
from adapter.fhir_files import write_ndjson
from adapter.uploads import (
    DEFAULT_CONCURRENCY,
    MAX_TRANSACTION_ENTRIES,
    ForeignPlan,
    ForeignSummary,
    Upload,
    is_own,
    upload_of,
)
from mappings.errors import ExitCode, TrialfhirError
from mappings.identity import SID_STUDY
from mappings.terminology import EXT_RESEARCH_STUDY

__all__ = [
    "DEFAULT_CONCURRENCY",
    "PullResult",
    "StudyNotFound",
    "pull_study",
    "pull_study_async",
    "push",
]

log = logging.getLogger("trialfhir.transfer")

JSON = dict[str, Any]

EVENT_TYPES: Final = (
    "Observation", "MedicationAdministration", "Procedure", "DiagnosticReport", "AdverseEvent",
)  # fmt: skip
PATIENT_TYPES: Final = ("Condition", "Specimen")


NOT_LINKED: Final = "events linked to no study (no workflow-researchStudy extension)"
OTHER_STUDY: Final = "events linked to another study (their workflow-researchStudy names it)"
UNUSED_SPECIMEN: Final = "Specimens no kept event refers to"


class StudyNotFound(TrialfhirError, LookupError):
    """The server has no ResearchStudy with the identifier asked for (or has several)."""

    code: ClassVar[str] = "study_not_found"
    exit_code: ClassVar[ExitCode] = ExitCode.NOT_FOUND


def push(
    client: FhirClient,
    resources: Iterable[JSON] | Upload,
    *,
    chunk_size: int = 50,
    mode: TransactionMode = "conditional-update",
    keep_ids: bool = False,
    max_transaction_entries: int = MAX_TRANSACTION_ENTRIES,
    progress: Callable[[int], None] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> ForeignSummary:
    """Write resources to the server as transactions of `chunk_size` entries. The adapter's own
    resources (a trial's: `adapter.sources`, `detect(path).resources()`) go as conditional entries in
    their order, so pushing the same trial twice creates nothing new. An `Upload` (`adapter.uploads.
    read_upload`: FHIR files, whatever wrote them) or resources of others take the foreign paths
    (`adapter.uploads`, docs/client.md "Foreign uploads"): transaction Bundles as they are, the other
    resources created with ids the server assigns (`keep_ids`: `PUT Type/id` with their own ids,
    which can overwrite what others stored), references rewritten, in dependency order.

    The whole input is read and checked before the first request is sent (every table of an SDTM
    folder, every line of FHIR files, every resource for what its path needs), so bad input uploads
    nothing. A transaction that fails leaves the ones before it committed (each is atomic); the
    error says which were committed, and whether re-running the push completes the job.

    `concurrency`: the adapter's own resources go with up to that many transactions in flight, in
    dependency waves (`AsyncFhirClient.upload`: a chunk is sent once every earlier chunk holding
    what it refers to has committed); 1 sends them one at a time. The foreign paths stay one at a
    time: a created resource's id, assigned by the server, is written into the references of the
    transactions after it.
    """
    if isinstance(resources, Upload):
        upload: Upload | None = resources if resources.foreign else None
        own: Iterable[JSON] = [item.resource for item in resources.items]
    else:
        own = list(resources) if isinstance(resources, Iterator) else resources
        foreign = any(not (isinstance(r, dict) and is_own(r)) for r in own)
        upload = upload_of(own) if foreign else None
    if upload is None:
        done = client.upload(
            own, chunk_size=chunk_size, mode=mode, progress=progress, concurrency=concurrency
        )
        summary = ForeignSummary(counts=done.counts, bundles=done.bundles, failed=done.failed)
        summary.paths["conditional"] = sum(sum(c.values()) for c in done.counts.values())
        return summary
    plan = ForeignPlan(
        upload,
        chunk_size=chunk_size,
        mode=mode,
        keep_ids=keep_ids,
        base_url=client.base_url,
        max_transaction_entries=max_transaction_entries,
    )
    plan.check()
    for step in plan.steps():
        try:
            result = client.transaction(step.bundle)
        except FhirError as exc:
            failure = _interrupted(plan, exc)
            if failure is exc:
                raise
            raise failure from exc
        problems = plan.done(result)
        if problems:
            current = (
                f"transaction {plan.step + 1} was committed, but what comes next cannot be sent"
            )
            raise TransactionResponseMismatch(
                problems, chunk=plan.step, completed=plan.summary, committed=plan.committed(current)
            )
        log.info("push: transaction %d, %d entries, %s", plan.step + 1, step.size, result.counts())
        if progress is not None:
            progress(plan.sent)
    return plan.summary


def _interrupted(plan: ForeignPlan, exc: FhirError) -> Exception:
    """The error to raise when sending the current transaction failed: what was committed before it,
    what became of it, whether re-running is safe (as `client.upload` says it)."""
    number = plan.step + 1
    if isinstance(exc, TransactionFailed):
        return TransactionFailed(
            exc.status,
            outcome=exc.outcome,
            failed_entries=exc.failed_entries,
            chunk=plan.step,
            completed=plan.summary,
            committed=plan.committed(
                f"transaction {number} was rolled back (a transaction is all or nothing)"
            ),
        )
    if isinstance(exc, TransactionResponseMismatch):
        current = f"the server says transaction {number} was committed too, but its answer cannot be trusted"
        return TransactionResponseMismatch(
            exc.problems, chunk=plan.step, completed=plan.summary, committed=plan.committed(current)
        )
    if isinstance(exc, FhirHttpError):
        current = f"transaction {number} was refused"
    else:
        current = f"transaction {number} may or may not have been committed (no answer)"
    exc.add_note(plan.committed(current))
    return exc


@dataclass
class PullResult:
    """What `pull_study` brought back: the resources (study first) and counts per type."""

    study: JSON
    resources: list[JSON] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)
    """What was pulled and left out (reason -> count): `NOT_LINKED`, `OTHER_STUDY`, `UNUSED_SPECIMEN`."""

    def leave_out(self, reason: str) -> None:
        self.left_out[reason] = self.left_out.get(reason, 0) + 1

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for resource in self.resources:
            rt = resource["resourceType"]
            counts[rt] = counts.get(rt, 0) + 1
        return dict(sorted(counts.items()))


def _study_identifier(study: str) -> str:
    """The token search for `study`: `system|value` as given, or a bare STUDYID under the project's
    study identifier system (escaped as FHIR token search wants)."""
    if "|" in study:
        system, value = study.split("|", 1)
        return token(system, value)
    return token(SID_STUDY, study)


def _with_id(resource: JSON) -> JSON:
    """A resource from the server, refused (InvalidResponse) when it has no id: without one it
    cannot be referred to, written to a FHIR folder, or told apart from another."""
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise InvalidResponse(f"the server sent a {resource.get('resourceType')} without an id")
    return resource


def _of_type(resource: JSON, resource_type: str) -> JSON:
    """A match of a search for `resource_type`, refused (InvalidResponse) when it is another type."""
    if resource.get("resourceType") != resource_type:
        raise InvalidResponse(
            f"the server answered a {resource_type} search with a {resource.get('resourceType')}"
        )
    return resource


def _reference(value: Any) -> str | None:
    """The `reference` of a Reference, when it is one."""
    ref = value.get("reference") if isinstance(value, dict) else None
    return ref if isinstance(ref, str) else None


def _links_to(resource: JSON, study_ref: str) -> bool:
    """Whether the event names `study_ref` in its study link. An event whose extensions R4 does not
    allow (not an array, an extension that is not an object with a url, a study link without a
    reference) cannot be placed: it is kept, so that reading it refuses it by element, never dropped
    as another study's."""
    extensions = resource.get("extension")
    if extensions is None:
        return False
    if not isinstance(extensions, list):
        return True
    for ext in extensions:
        if not isinstance(ext, dict) or not isinstance(ext.get("url"), str):
            return True
        if ext["url"] == EXT_RESEARCH_STUDY:
            ref = _reference(ext.get("valueReference"))
            if ref is None or ref == study_ref or ref.endswith("/" + study_ref):
                return True
    return False


def _linked_to_a_study(resource: JSON) -> bool:
    """Whether the event carries a `workflow-researchStudy` extension at all (an event that does not
    is linked to no study; one that does, and that `_links_to` refuses, names another study)."""
    extensions = resource.get("extension")
    return isinstance(extensions, list) and any(
        isinstance(ext, dict) and ext.get("url") == EXT_RESEARCH_STUDY for ext in extensions
    )


def _referenced(resource: JSON, key: str) -> list[str]:
    value = resource.get(key)
    refs = value if isinstance(value, list) else [value]
    return [r["reference"] for r in refs if isinstance(r, dict) and "reference" in r]


async def pull_study_async(
    client: AsyncFhirClient,
    study: str,
    *,
    concurrency: int = 8,
    patients_per_query: int = 20,
    page_size: int = 500,
    progress: Callable[[int], None] | None = None,
    all_events: bool = False,
) -> PullResult:
    """Pull the study `study` (`system|value`, or a STUDYID under the project's system) with at most
    `concurrency` requests in flight. With `all_events`, every event and Specimen of the study's
    patients is kept, not only those linked to the study.

    Raises:
        StudyNotFound: no ResearchStudy (or more than one) carries that identifier.
        FhirError: from the client, for anything the server refuses.
    """
    identifier = _study_identifier(study)
    found = await client.search("ResearchStudy", identifier=identifier).count(2).all()
    if len(found) != 1:
        raise StudyNotFound(
            f"{len(found)} ResearchStudy resources carry the identifier asked for (expected 1)"
        )
    research_study = _with_id(_of_type(found[0], "ResearchStudy"))
    study_ref = f"ResearchStudy/{research_study['id']}"
    result = PullResult(study=research_study, resources=[research_study])

    subjects: list[JSON] = []
    patients: dict[str, JSON] = {}
    search = (
        client.search("ResearchSubject", study=study_ref)
        .include("ResearchSubject:individual")
        .count(page_size)
    )
    async for entry in search.entries():
        resource = _with_id(entry.resource)
        if resource.get("resourceType") == "ResearchSubject" and entry.is_match:
            subjects.append(resource)
        elif resource.get("resourceType") == "Patient":
            patients[f"Patient/{resource['id']}"] = resource
    wanted = {ref for s in subjects if (ref := _reference(s.get("individual"))) is not None}
    result.resources.extend(patients[ref] for ref in sorted(patients) if ref in wanted)
    result.resources.extend(sorted(subjects, key=lambda r: str(r["id"])))
    if progress is not None:
        progress(len(result.resources))

    patient_refs = sorted(wanted)
    groups = [
        patient_refs[i : i + patients_per_query]
        for i in range(0, len(patient_refs), patients_per_query)
    ]
    gate = asyncio.Semaphore(concurrency)
    gathered: dict[str, list[JSON]] = {rt: [] for rt in (*PATIENT_TYPES, *EVENT_TYPES)}

    async def fetch(resource_type: str, group: list[str]) -> None:
        async with gate:
            query = client.search(resource_type, subject=",".join(group)).count(page_size)
            batch = [_with_id(_of_type(r, resource_type)) async for r in query]
        gathered[resource_type].extend(batch)
        if progress is not None:
            progress(len(batch))

    await asyncio.gather(
        *(fetch(rt, group) for group in groups for rt in (*PATIENT_TYPES, *EVENT_TYPES))
    )

    events: list[JSON] = []
    for rt in EVENT_TYPES:
        for resource in gathered[rt]:
            if all_events or _links_to(resource, study_ref):
                events.append(resource)
            else:
                result.leave_out(OTHER_STUDY if _linked_to_a_study(resource) else NOT_LINKED)
    used_specimens = {ref for e in events for ref in _referenced(e, "specimen")}
    for rt in PATIENT_TYPES:
        for resource in sorted(gathered[rt], key=lambda r: str(r["id"])):
            used = all_events or f"Specimen/{resource['id']}" in used_specimens
            if rt == "Specimen" and not used:
                result.leave_out(UNUSED_SPECIMEN)
                continue
            result.resources.append(resource)
    result.resources.extend(sorted(events, key=lambda r: (r["resourceType"], str(r["id"]))))
    log.info(
        "pulled study: %d resources (%d types), %d left out",
        len(result.resources),
        len(result.counts),
        sum(result.left_out.values()),
    )
    return result


def pull_study(
    base_url: str,
    study: str,
    *,
    out: str | Path | None = None,
    concurrency: int = 8,
    client_options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    all_events: bool = False,
) -> PullResult:
    """Synchronous front of `pull_study_async`: opens an `AsyncFhirClient` on `base_url` (with
    `client_options`: auth, timeout, verify, retry, transport), pulls, and writes the resources to the
    FHIR folder `out` when given (one NDJSON file per type)."""

    async def run() -> PullResult:
        async with AsyncFhirClient(base_url, **(client_options or {})) as client:
            return await pull_study_async(
                client, study, concurrency=concurrency, progress=progress, all_events=all_events
            )

    result = asyncio.run(run())
    if out is not None:
        write_ndjson(result.resources, out)
    return result
