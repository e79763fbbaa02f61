"""The whole trial both ways: every mapping family run over the tables, and every resource sent back to
the family that made it.

`trial_to_fhir` streams resources in an order where every reference points backwards: the project
CodeSystem, ResearchStudies, Patients, ResearchSubjects, Conditions, then the event families
(medication, observation with LB, clinical: AE and MH, biopsy). `TrialAssembler` takes resources one at a time in any order, hands
each to its family's reader (dispatch on resourceType and identifier system, learnt once per pair) and
rebuilds the tables: columns as the study's `sdtm-table` layout says (else the domain's required
variables, the known optional ones present, then extras in first-seen order), rows in the domain's sort
order (--SEQ compared as a number), TS and TA in the order written.

What the assembler refuses (`ResourceRefused`, naming the element; the caller adds file and line): an
element whose shape R4 does not allow (`mappings.shapes`: the top level of every resource is checked,
deeper elements when a reader fails on them), a string where a number belongs, a second resource with
the same type and id but different content, and (when asked) a control character or the year 0000 in a
string. A second resource with the same type and id and the same content (`meta` aside) is read once
and counted in `duplicates`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from operator import itemgetter
from typing import ClassVar, Final, Protocol

import orjson

from mappings import biopsy, clinical, medication, observation, study, subject
from mappings.errors import ExitCode, TrialfhirError
from mappings.primitives import JSON, ElementMissing
from mappings.sdtm import DOMAINS, DomainSpec, Table, Trial
from mappings.shapes import TOP_LEVEL, shape_problem, string_problem, top_level_problem

__all__ = ["FamilyReader", "ResourceRefused", "TrialAssembler", "fhir_to_trial", "trial_to_fhir"]


class ResourceRefused(TrialfhirError, ValueError):
    """A resource the trial cannot be rebuilt from: `element` (a path such as
    `Observation.valueQuantity.value`) and `reason`. Values are never repeated (patient data)."""

    code: ClassVar[str] = "resource_refused"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    def __init__(self, element: str, reason: str) -> None:
        self.element = element
        self.reason = reason
        super().__init__(f"{element}: {reason}")


_READER_FAILURES: Final = (LookupError, TypeError, AttributeError, ValueError, ArithmeticError)
"""What a family reader raises on an element of the wrong shape (a dict indexed like a list, `.get`
on a string, ...): diagnosed with `shape_problem`, re-raised as a bug when no element explains it."""


def _content_digest(resource: JSON) -> int:
    """A hash of everything in `resource` but `meta` (a server's version and timestamps), as JSON in
    the resource's own key order (a copy written by the same writer has the same order; sorting the
    keys would double the cost).

    Raises:
        ResourceRefused: a string holds a lone surrogate (not a Unicode character: it cannot be written
            as UTF-8, so it would crash whoever writes the cell); found free, as orjson refuses it."""
    if "meta" in resource:
        resource = {k: v for k, v in resource.items() if k != "meta"}
    try:
        return hash(orjson.dumps(resource, default=str))
    except orjson.JSONEncodeError:
        problem = string_problem(resource)
        if problem is None:
            raise
        raise ResourceRefused(*problem) from None


class FamilyReader(Protocol):
    """What every mapping family offers on the way back."""

    def feed(self, resource: JSON) -> bool: ...

    def rows(self) -> dict[str, list[dict[str, str]]]: ...


ToFhir = Callable[[Trial], Iterator[JSON]]

EVENT_FAMILIES: Final[tuple[tuple[ToFhir, type[FamilyReader]], ...]] = (
    (medication.to_fhir, medication.MedicationReader),
    (observation.to_fhir, observation.ObservationReader),
    (clinical.to_fhir, clinical.ClinicalReader),
    (biopsy.to_fhir, biopsy.BiopsyReader),
)
"""The event families, in output order (biopsy last: its Specimens come before the Observations that
point to them and its DiagnosticReports after)."""


def trial_to_fhir(trial: Trial) -> Iterator[JSON]:
    """Every resource of the trial, streamed, each after everything it refers to."""
    yield study.codesystem()
    yield from study.to_fhir(trial)
    yield from subject.to_fhir(trial)
    for to_fhir, _ in EVENT_FAMILIES:
        yield from to_fhir(trial)


def _number_or_text(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _sort_rows(spec: DomainSpec, rows: list[dict[str, str]]) -> None:
    if not spec.sort_key:
        return
    numeric = [name == spec.seq or name in spec.numeric for name in spec.sort_key]
    if spec.sort_key == ("USUBJID",):
        rows.sort(key=lambda row: row["USUBJID"])
        return
    if len(spec.sort_key) == 2 and spec.sort_key[0] == "USUBJID" and numeric[1]:
        # (USUBJID, --SEQ as a number): each distinct --SEQ text converted once, the keys built and
        # the rows ordered by C-level calls (a stable sort of the row positions: equal keys keep
        # their order, as `rows.sort` would)
        seqs = list(map(itemgetter(spec.sort_key[1]), rows))
        number = {text: _number_or_text(text) for text in set(seqs)}
        usubjids = map(itemgetter("USUBJID"), rows)
        keys = list(zip(usubjids, map(number.__getitem__, seqs), strict=True))
        rows[:] = map(rows.__getitem__, sorted(range(len(rows)), key=keys.__getitem__))
        return

    def key(row: dict[str, str]) -> tuple[object, ...]:
        return tuple(
            _number_or_text(row[name]) if is_number else row[name]
            for name, is_number in zip(spec.sort_key, numeric, strict=True)
        )

    rows.sort(key=key)


def _default_columns(domain: str, rows: list[dict[str, str]]) -> list[str]:
    present = dict.fromkeys(chain.from_iterable(rows))  # every column, in first-seen order
    spec = DOMAINS.get(domain)
    if spec is None:
        return list(present)
    columns = list(spec.required)
    columns.extend(v for v in spec.optional if v in present and v not in spec.required)
    known = set(columns)
    columns.extend(c for c in present if c not in known)
    return columns


def _check_text(domain: str, rows: list[dict[str, str]]) -> None:
    """Every cell must be text. A reader copies some FHIR strings into cells as they are; an object,
    an array or a number in such an element (where R4 has a string) would be written as Python's
    rendering of it. One pass in C over the cells' types; the variable is looked up only when wrong.

    Raises:
        ResourceRefused: naming the domain and the variable (the resource is no longer known here).
    """
    kinds = set(map(type, chain.from_iterable(map(dict.values, rows))))
    if kinds <= {str}:
        return
    for row in rows:
        for variable, cell in row.items():
            if type(cell) is not str:
                raise ResourceRefused(
                    f"{domain}.{variable}",
                    "a FHIR element read into this variable holds an object, an array or a number "
                    "where R4 has a string",
                )


class TrialAssembler:
    """Rebuilds the trial's tables from its resources, fed one at a time in any order.

    A resource no family takes is counted in `unrecognised` (resourceType -> count), never silently
    dropped.
    """

    def __init__(self) -> None:
        self.study = study.StudyReader()
        self.readers: list[FamilyReader] = [self.study, subject.SubjectReader()]
        self.readers.extend(reader() for _, reader in EVENT_FAMILIES)
        self.unrecognised: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        """Resources read again with the same type, id and content (resourceType -> count): taken once."""
        self._route: dict[tuple[object, object], FamilyReader] = {}
        self._digests: dict[str, dict[str, int]] = {}
        """resourceType -> id -> `_content_digest` of the resource read with that id (about 170
        bytes per resource: the id and an int)."""

    def add(
        self, resource: JSON, check_strings: bool = False, written: bytes | None = None
    ) -> bool:
        """Hand `resource` to the family that made it; False (and counted) when no family takes it.
        `check_strings`: also look at every string for a control character (a full walk: the file
        reader asks for it only when the resource's text holds `\\u00`). A date in the year 0000 is
        refused whatever `check_strings` says (the readers' `get_dtc` fails on it). `written`: the
        resource's own compact JSON as orjson writes it, when the caller has it (an NDJSON line
        that round-tripped): the duplicate digest is then taken from it instead of serialising the
        resource again.

        Raises:
            ResourceRefused: a wrongly shaped element, a string where a number belongs, another
                resource with this type and id but different content, (with `check_strings`) a
                control character or the year 0000.
        """
        kind = resource.get("resourceType")
        if type(kind) is not str:
            raise ResourceRefused("resourceType", "missing or not a string: not a FHIR resource")
        kinds = TOP_LEVEL.get(kind)
        if kinds is not None:  # `top_level_problem`, inlined: the type of every value as expected?
            types = tuple(map(type, resource.values()))
            if tuple(map(kinds.get, resource, types)) != types:
                problem = top_level_problem(resource)
                if problem is not None:
                    raise ResourceRefused(*problem)
        if check_strings:
            problem = string_problem(resource)
            if problem is not None:
                raise ResourceRefused(*problem)
        rid = resource.get("id")
        if type(rid) is not str:
            _content_digest(resource)  # only for its check of the strings (no id, no duplicates)
        else:
            digests = self._digests.get(kind)
            if digests is None:
                digests = self._digests[kind] = {}
            if written is not None and "meta" not in resource:
                digest = hash(written)  # == _content_digest(resource): the same bytes
            else:
                digest = _content_digest(resource)
            earlier = digests.get(rid)
            if earlier is None:
                digests[rid] = digest
            elif earlier == digest:  # the same content again: taken once, counted
                self.duplicates[kind] += 1
                return True
            else:
                reason = "an earlier resource has the same type and id but different content"
                raise ResourceRefused(f"{kind}.id", reason)
        try:
            identifiers = resource.get("identifier")
            if not identifiers:
                route: tuple[object, object] = (kind, resource.get("url"))
            elif type(identifiers) is list and type(identifiers[0]) is dict:
                route = (kind, identifiers[0].get("system"))
            elif type(identifiers) is dict:  # one identifier object (R4's 0..1: AdverseEvent)
                route = (kind, identifiers.get("system"))
            else:
                route = (kind, None)
            reader = self._route.get(route)
            if reader is not None and reader.feed(resource):
                return True
            return self._add_new_route(resource, route, reader)
        except _READER_FAILURES as exc:
            found = shape_problem(resource) or string_problem(resource)
            if found is None and isinstance(exc, ElementMissing):
                reason = "missing: the adapter's profile needs it here"
                raise ResourceRefused(f"{kind}.{exc.element}", reason) from exc
            if found is None:
                if isinstance(exc, ValueError) and str(exc).startswith("identifier value has"):
                    element = f"{resource.get('resourceType')}.identifier"
                    raise ResourceRefused(element, str(exc)) from exc
                raise
            raise ResourceRefused(*found) from exc

    def _add_new_route(
        self, resource: JSON, route: tuple[object, object], tried: FamilyReader | None
    ) -> bool:
        for candidate in self.readers:
            if candidate is not tried and candidate.feed(resource):
                self._route[route] = candidate
                return True
        self.unrecognised[str(resource.get("resourceType"))] += 1
        return False

    def tables(self) -> Trial:
        """The trial's tables: every domain a study layout names (zero rows included) or a family
        gave rows for.

        Raises:
            ResourceRefused: a cell is not text (see `_check_text`)."""
        rows: dict[str, list[dict[str, str]]] = {}
        for reader in self.readers:
            for domain, found in reader.rows().items():
                if domain in rows:
                    rows[domain].extend(found)
                else:
                    rows[domain] = list(found)
        trial: Trial = {}
        domains = list(self.study.columns)
        domains.extend(d for d in DOMAINS if d in rows and d not in self.study.columns)
        domains.extend(d for d in rows if d not in domains)
        for domain in domains:
            found = rows.get(domain, [])
            columns = self.study.columns.get(domain)
            if columns is None:
                columns = _default_columns(domain, found)
            else:
                columns = list(columns)
                known = set(columns)
                for row in found:
                    if not known.issuperset(row):
                        extra = [c for c in row if c not in known]
                        columns.extend(extra)
                        known.update(extra)
            width = len(columns)
            for row in found:  # fill the cells a row lacks in place (no copy of every row)
                if len(row) != width:
                    for column in columns:
                        row.setdefault(column, "")
            table_rows = found
            _check_text(domain, table_rows)
            spec = DOMAINS.get(domain)
            if spec is not None:
                _sort_rows(spec, table_rows)
            trial[domain] = Table(domain, columns, table_rows)
        return trial


def fhir_to_trial(resources: Iterable[JSON]) -> Trial:
    """The trial's tables rebuilt from its resources (any order)."""
    assembler = TrialAssembler()
    add = assembler.add
    for resource in resources:
        add(resource)
    return assembler.tables()
