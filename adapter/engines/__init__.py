"""Engines that run the pure mappings over parts of a trial: the one split by subject that every
engine shares, and the place of each resource in the local engine's stream.

`split_by_subject(trial, parts)` cuts the subject-level tables (DM, SE and the event domains) into
`parts` sub-trials, each holding whole subjects (every row of a subject in one part), rows kept in
their table order and tagged with their row number in the whole table. The study-level tables (TS,
TA) and the resources made from the whole trial (the project CodeSystem, the ResearchStudies, which
carry every table's layout) stay with the caller.

`part_resources(part)` runs the mapping families over one part and gives each resource its `Place`:
(stream section, row number in the whole table, sub-position). Sorting the resources of all parts by
place gives exactly the order of `mappings.trial.trial_to_fhir` over the whole trial (every family
makes its resources per subject, in table-row order; docs/mapping.md, References), which is what lets
an engine write the same bytes as the local one. `ordered_parts` does that merge in one process (the
check the tests make); `adapter.engines.spark` does it on Spark.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from mappings import biopsy, clinical, medication, observation, subject
from mappings.identity import resource_id, row_system
from mappings.primitives import JSON
from mappings.sdtm import DOMAINS, Table, Trial
from mappings.trial import EVENT_FAMILIES

__all__ = [
    "SECTIONS",
    "Place",
    "SubjectPart",
    "ordered_parts",
    "part_resources",
    "part_starts",
    "parts_in_table_order",
    "split_by_subject",
    "study_resources",
    "subject_key",
]

Place = tuple[int, int, int]
"""(stream section, row number of the source row in its whole table, sub-position)."""

SECTIONS: Final[tuple[tuple[str, str], ...]] = (
    ("Patient", "DM"),
    ("ResearchSubject", "DM"),
    ("Condition", "DM"),
    ("EX", "EX"),
    ("CM", "CM"),
    ("VS", "VS"),
    ("QS", "QS"),
    ("RS", "RS"),
    ("LB", "LB"),
    ("AE", "AE"),
    ("MH", "MH"),
    ("PR", "PR"),  # each Procedure, then (sub-position 1) the Specimen it makes first
    ("MI specimen", "MI"),  # Specimens only MI names, at the first MI row naming them
    ("MI", "MI"),
    ("MI report", "MI"),  # DiagnosticReports, at the first MI row of their specimen
)
"""The sections of the local stream after the CodeSystem and ResearchStudies, in order, each with the
table whose rows number it (a section's index is the first member of a `Place`)."""

_SECTION: Final = {name: index for index, (name, _) in enumerate(SECTIONS)}
_ROW_DOMAIN: Final = {
    row_system(d): d
    for d in (
        *medication.DOMAINS_MAPPED,
        *observation.DOMAINS_MAPPED,
        *clinical.DOMAINS_MAPPED,
        *biopsy.DOMAINS_MAPPED,
    )
}


@dataclass
class SubjectPart:
    """Whole subjects of a trial: their rows of each subject-level table (in table order) and each
    row's 0-based number in the whole table."""

    trial: Trial = field(default_factory=dict)
    rows: dict[str, list[int]] = field(default_factory=dict)


def split_by_subject(trial: Trial, parts: int) -> list[SubjectPart]:
    """`trial`'s subject-level tables cut into at most `parts` parts of whole subjects.

    Subjects are taken in the order they first appear (DM first, then the other tables in trial
    order) and dealt out in contiguous runs of about equal size; every part has every subject-level
    table of the trial (with its columns), possibly without rows. Empty parts are dropped."""
    if parts < 1:
        raise ValueError("parts must be at least 1")
    tables = [t for t in trial.values() if DOMAINS.get(t.domain, t.spec).subject_level]
    subjects: dict[str, None] = {}
    for table in sorted(tables, key=lambda t: t.domain != "DM"):
        for row in table.rows:
            subjects.setdefault(row.get("USUBJID", ""), None)
    count = len(subjects)
    if count == 0:
        return []
    parts = min(parts, count)
    part_of = {usubjid: i * parts // count for i, usubjid in enumerate(subjects)}
    result = [SubjectPart() for _ in range(parts)]
    for table in tables:
        pieces: list[list[dict[str, str]]] = [[] for _ in range(parts)]
        numbers: list[list[int]] = [[] for _ in range(parts)]
        for number, row in enumerate(table.rows):
            index = part_of[row.get("USUBJID", "")]
            pieces[index].append(row)
            numbers[index].append(number)
        for part, piece, numbered in zip(result, pieces, numbers, strict=True):
            part.trial[table.domain] = Table(table.domain, list(table.columns), piece)
            part.rows[table.domain] = numbered
    return result


def part_starts(subjects: int, parts: int) -> list[int]:
    """Where each part of `split_by_subject(trial, parts)` begins, as the 0-based position of its
    first subject among the trial's `subjects` (in the order `split_by_subject` takes them), with
    `subjects` last: part k holds the subjects from `starts[k]` up to `starts[k + 1]`. The same rule
    (subject i goes to part `i * parts // subjects`), for an engine that cuts the files themselves
    (`adapter.engines.workers`)."""
    parts = min(parts, subjects)
    return [-(-k * subjects // parts) for k in range(parts)] + [subjects]


def subject_key(resource: JSON) -> str:
    """The subject a resource belongs to, for a split of FHIR resources by subject: a Patient's id,
    the Patient id its `subject` or `individual` points to (the whole reference when it is not
    `Patient/...`), "" for a study-level resource (CodeSystem, ResearchStudy) or any other."""
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id", ""))
    for name in ("subject", "individual"):
        link = resource.get(name)
        if isinstance(link, dict) and isinstance(link.get("reference"), str):
            reference: str = link["reference"]
            return reference.rpartition("/")[2] if reference.startswith("Patient/") else reference
    return ""


def study_resources(trial: Trial) -> Iterator[JSON]:
    """The resources made from the whole trial, first in the stream: the project CodeSystem and the
    ResearchStudies (they carry every table's layout and TS/TA)."""
    from mappings import study

    yield study.codesystem()
    yield from study.to_fhir(trial)


def _specimen_places(part: SubjectPart) -> tuple[dict[str, Place], dict[str, Place]]:
    """Specimen id -> its place, DiagnosticReport id -> its place, for the biopsy rows of `part`."""
    specimens: dict[str, Place] = {}
    reports: dict[str, Place] = {}
    pr = part.trial.get("PR")
    if pr is not None:
        for row, number in zip(pr.rows, part.rows["PR"], strict=True):
            refid = row.get("PRREFID", "")
            if refid:
                key = (row.get("STUDYID", ""), row.get("USUBJID", ""), refid)
                specimens.setdefault(resource_id("Specimen", *key), (_SECTION["PR"], number, 1))
    mi = part.trial.get("MI")
    if mi is not None:
        for row, number in zip(mi.rows, part.rows["MI"], strict=True):
            refid = row.get("MIREFID", "")
            if refid:
                key = (row.get("STUDYID", ""), row.get("USUBJID", ""), refid)
                place = (_SECTION["MI specimen"], number, 0)
                specimens.setdefault(resource_id("Specimen", *key), place)
                reports.setdefault(
                    resource_id("DiagnosticReport", *key), (_SECTION["MI report"], number, 0)
                )
    return specimens, reports


def part_resources(part: SubjectPart) -> Iterator[tuple[Place, JSON]]:
    """Every resource the mapping families make from `part`, with its place in the whole trial's
    stream (in the order the families make them).

    Raises:
        RuntimeError: a resource has no place (a mapping family changed what it makes; a bug).
    """
    dm_rows = part.rows.get("DM", [])
    made = {"Patient": 0, "ResearchSubject": 0, "Condition": 0}
    for resource in subject.to_fhir(part.trial):
        kind = resource["resourceType"]
        index = made[kind]
        made[kind] = index + 1
        yield (_SECTION[kind], dm_rows[index], 0), resource
    specimens, reports = _specimen_places(part)
    seen: dict[str, int] = {}
    for family, _ in EVENT_FAMILIES:  # the local stream's order of the families
        for resource in family(part.trial):
            identifier: Any = resource.get("identifier") or ({},)
            if type(identifier) is not dict:  # a list, except AdverseEvent's one Identifier
                identifier = identifier[0]
            domain = _ROW_DOMAIN.get(identifier.get("system", ""))
            if domain is not None:
                index = seen.get(domain, 0)
                seen[domain] = index + 1
                section = _SECTION[domain]
                yield (section, part.rows[domain][index], 0), resource
                continue
            kind = resource["resourceType"]
            found = (specimens if kind == "Specimen" else reports).get(resource.get("id", ""))
            if kind not in ("Specimen", "DiagnosticReport") or found is None:
                raise RuntimeError(
                    f"a {kind} made from a part of the trial has no place in the stream"
                )
            yield found, resource


def ordered_parts(trial: Trial, parts: Iterable[SubjectPart]) -> Iterator[JSON]:
    """The whole trial's stream rebuilt from its parts in one process: the study resources, then
    the parts' resources merged by place (equal to `trial_to_fhir(trial)`)."""
    yield from study_resources(trial)
    streams = [sorted(part_resources(p), key=lambda item: item[0]) for p in parts]
    for _, resource in heapq.merge(*streams, key=lambda item: item[0]):
        yield resource


def parts_in_table_order(parts: Iterable[SubjectPart]) -> bool:
    """Whether `parts` (from `split_by_subject`) hold each table's rows as consecutive runs, part
    after part: true when every table keeps each subject's rows together in the order DM lists the
    subjects (the SDTM sort order). Then each part's share of every section of the stream follows the
    previous part's, and the parts' outputs concatenated in order are the whole stream's."""
    last: dict[str, int] = {}
    for part in parts:
        for domain, numbers in part.rows.items():
            if not numbers:
                continue
            if numbers[0] <= last.get(domain, -1):
                return False
            last[domain] = numbers[-1]
    return True
