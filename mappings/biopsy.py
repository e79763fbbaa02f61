"""PR (biopsies) and MI (microscopic findings) <-> Procedure, Specimen, finding Observations and one
DiagnosticReport per specimen.

Placement of the cells (every one comes back exactly as written; docs/mapping.md has the full table):
- head (STUDYID, USUBJID, --SEQ, EPOCH, VISITNUM/VISIT, the study link): as every event (observation.py).
- PR row -> Procedure: PRTRT -> `code.text` (MUSCLE BIOPSY: SNOMED 178263003), PRLOC -> `bodySite[0].text`
  (QUADRICEPS: SNOMED 21989003), PRSTDTC -> `performedDateTime`, or with PRENDTC `performedPeriod`,
  PRCAT -> `category.text`; PRREFID, PRLAT and the rest -> `sdtm-variable`.
- Derived, one per (subject, PRREFID or MIREFID): Specimen (identifier = the reference id, subject,
  collection date and body site from the PR row, type text = MISPEC).
- MI row -> Observation (category laboratory): MITESTCD/MITEST -> `code`, MIDTC -> `effectiveDateTime`,
  MIREFID -> `specimen` (reference and logical identifier), MILOC -> `bodySite.text`, MIMETHOD ->
  `method.text`; the value: MISTRESN -> `valueQuantity` (unit MISTRESU, else MIORRESU, UCUM where it is
  one: um, /mm2), else MISTRESC -> `valueCodeableConcept` when it is a coded finding (PRESENT, ABSENT,
  NONE, FOCAL, WIDESPREAD; project coding + text as written), else `valueString` (the pathologist's
  conclusion). MIORRES, MIORRESU, MISTRESU, MISPEC, MILAT, MISPCCND, MISTRESC beside a number, and sponsor
  columns -> `sdtm-variable`.
- Derived, one per (subject, MIREFID): DiagnosticReport (status final, category pathology, specimen,
  result = the finding Observations in MISEQ order, conclusion = the MICONCL text, effective = MIDTC).
The way back rebuilds PR rows from the Procedures and MI rows from the finding Observations; Specimens
and DiagnosticReports are derived and taken without producing rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from mappings.identity import SID_DERIVED, SID_SPECIMEN, key_value, resource_id, row_system
from mappings.observation import (
    RowContext,
    codeable,
    decimal_cell,
    quantity,
    read_code,
    read_head,
    read_text,
    row_domain,
    set_date,
    split_key,
)
from mappings.primitives import JSON, array, decimal_text, get_dtc, obj, text, variable_extension
from mappings.sdtm import Table, Trial
from mappings.terminology import (
    DIAGNOSTIC_SERVICE_SECTION,
    MUSCLE_BIOPSY_SNOMED,
    OBSERVATION_CATEGORY,
    QUADRICEPS_SNOMED,
    SNOMED,
    project_coding,
)

__all__ = [
    "DOMAINS_MAPPED",
    "MI_ANSWERS",
    "BiopsyReader",
    "to_fhir",
]

DOMAINS_MAPPED: Final = ("PR", "MI")

MI_ANSWERS: Final = frozenset({"PRESENT", "ABSENT", "NONE", "FOCAL", "WIDESPREAD"})
"""MISTRESC values that are concepts of the project CodeSystem (matched exactly as written)."""

CONCLUSION_TESTCD: Final = "MICONCL"

PROCEDURE_CODES: Final[dict[str, dict[str, str]]] = {
    "MUSCLE BIOPSY": {
        "system": SNOMED,
        "code": MUSCLE_BIOPSY_SNOMED[0],
        "display": MUSCLE_BIOPSY_SNOMED[1],
    },
}
"""PRTRT (upper-cased) -> SNOMED procedure coding."""

BODY_SITE_CODES: Final[dict[str, dict[str, str]]] = {
    "QUADRICEPS": {"system": SNOMED, "code": QUADRICEPS_SNOMED[0], "display": QUADRICEPS_SNOMED[1]},
}
"""PRLOC / MILOC (upper-cased) -> SNOMED body structure coding."""

_LABORATORY: Final = [
    {"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}
]
_PATHOLOGY: Final = [
    {
        "coding": [
            {
                "system": DIAGNOSTIC_SERVICE_SECTION,
                "code": "PAT",
                "display": "Pathology (gross & histopath, not surgical)",
            }
        ]
    }
]

_PR_NATIVE: Final = ("PRTRT", "PRLOC", "PRSTDTC", "PRENDTC", "PRCAT")
_MI_NATIVE: Final = ("MITESTCD", "MITEST", "MISTRESN", "MISTRESC", "MIDTC", "MILOC", "MIREFID", "MIMETHOD")  # fmt: skip

SpecimenKey = tuple[str, str, str]
"""(STUDYID, USUBJID, reference id)."""


def specimen_reference(key: SpecimenKey) -> JSON:
    """A reference to the Specimen of `key`, with its business identifier (so the reference id, e.g.
    MIREFID, reads back without the Specimen)."""
    return {
        "reference": f"Specimen/{resource_id('Specimen', *key)}",
        "identifier": {"system": SID_SPECIMEN, "value": key_value(*key)},
    }


class _Sites:
    """Body-site concepts, one per distinct text (shared, read-only)."""

    def __init__(self) -> None:
        self._found: dict[str, JSON] = {}

    def __call__(self, text: str) -> JSON:
        found = self._found.get(text)
        if found is None:
            coding = BODY_SITE_CODES.get(text.upper())
            found = self._found[text] = codeable([dict(coding)] if coding else [], text)
        return found


# --- PR, MI -> Procedure, Specimen, Observation, DiagnosticReport -------------------------------------------


def to_fhir(trial: Trial) -> Iterator[JSON]:
    """Procedures (with their Specimens), finding Observations and DiagnosticReports made from the PR
    and MI tables of `trial`. A Specimen comes before the Observations that point to it, a report after
    its Observations."""
    procedures = trial.get("PR")
    findings = trial.get("MI")
    sites = _Sites()
    specimen_types: dict[SpecimenKey, str] = {}
    if findings is not None:
        for row in findings.rows:
            refid = row.get("MIREFID", "")
            if refid:
                key = (row.get("STUDYID", ""), row.get("USUBJID", ""), refid)
                if key not in specimen_types or not specimen_types[key]:
                    specimen_types[key] = row.get("MISPEC", "")
    specimens: dict[SpecimenKey, bool] = {}  # the Specimens made so far -> from a muscle biopsy?
    if procedures is not None:
        yield from _procedures(procedures, sites, specimen_types, specimens)
    if findings is not None:
        yield from _findings(findings, sites, specimen_types, specimens)


def _specimen(
    key: SpecimenKey, subject: JSON, specimen_type: str, collection: JSON | None = None
) -> JSON:
    specimen: JSON = {
        "resourceType": "Specimen",
        "id": resource_id("Specimen", *key),
        "identifier": [{"system": SID_SPECIMEN, "value": key_value(*key)}],
    }
    if specimen_type:
        specimen["type"] = {"text": specimen_type}
    specimen["subject"] = subject
    if collection:
        specimen["collection"] = collection
    return specimen


def _procedures(
    table: Table,
    sites: _Sites,
    specimen_types: dict[SpecimenKey, str],
    specimens: dict[SpecimenKey, bool],
) -> Iterator[JSON]:
    context = RowContext(table, "Procedure", _PR_NATIVE)
    for row in table.rows:
        get = row.get
        rid, identifier, subject, extensions = context.head(row)
        procedure: JSON = {
            "resourceType": "Procedure",
            "id": rid,
            "extension": extensions,
            "identifier": identifier,
            "status": "completed",
        }
        category = get("PRCAT", "")
        if category:
            procedure["category"] = {"text": category}
        treatment = get("PRTRT", "")
        if treatment:
            coding = PROCEDURE_CODES.get(treatment.upper())
            procedure["code"] = codeable([dict(coding)] if coding else [], treatment)
        procedure["subject"] = subject
        start = get("PRSTDTC", "")
        end = get("PRENDTC", "")
        if end:
            period: JSON = {}
            set_date(period, "start", start)
            set_date(period, "end", end)
            procedure["performedPeriod"] = period
        else:
            set_date(procedure, "performedDateTime", start)
        location = get("PRLOC", "")
        if location:
            procedure["bodySite"] = [sites(location)]
        yield procedure
        refid = get("PRREFID", "")
        key = (get("STUDYID", ""), get("USUBJID", ""), refid)
        if refid and key not in specimens:
            specimens[key] = "MUSCLE" in treatment.upper()
            collection: JSON = {}
            set_date(collection, "collectedDateTime", start)
            if location:
                collection["bodySite"] = sites(location)
            yield _specimen(key, subject, specimen_types.get(key, ""), collection)


def _findings(
    table: Table,
    sites: _Sites,
    specimen_types: dict[SpecimenKey, str],
    specimens: dict[SpecimenKey, bool],
) -> Iterator[JSON]:
    context = RowContext(table, "Observation", _MI_NATIVE)
    answers: dict[str, JSON] = {}
    methods: dict[str, JSON] = {}
    references: dict[SpecimenKey, JSON] = {}
    reports: dict[SpecimenKey, list[tuple[int, JSON, dict[str, str], JSON]]] = {}
    # Specimens that only MI knows (no PR row) come first: before any Observation points to them.
    for row in table.rows:
        refid = row.get("MIREFID", "")
        key = (row.get("STUDYID", ""), row.get("USUBJID", ""), refid)
        if refid and key not in specimens:
            specimens[key] = "MUSCLE" in specimen_types.get(key, "").upper()
            subject = context.subject(key[0], key[1])[2]
            yield _specimen(key, subject, specimen_types.get(key, ""))
    for row in table.rows:
        get = row.get
        observation, extensions = context.observation(row, _LABORATORY)
        number = get("MISTRESN", "")
        result = get("MISTRESC", "")
        value, exact = decimal_cell(number) if number else (None, True)
        if value is not None:
            unit = get("MISTRESU", "") or get("MIORRESU", "")
            observation["valueQuantity"] = quantity(value, unit)
            if result:
                extensions.append(variable_extension("MISTRESC", result))
        elif result:
            if result in MI_ANSWERS:
                answer = answers.get(result)
                if answer is None:
                    answer = answers[result] = codeable([project_coding(result)], result)
                observation["valueCodeableConcept"] = answer
            else:
                observation["valueString"] = result
        if not exact:
            extensions.append(variable_extension("MISTRESN", number))
        location = get("MILOC", "")
        if location:
            observation["bodySite"] = sites(location)
        method = get("MIMETHOD", "")
        if method:
            found = methods.get(method)
            if found is None:
                found = methods[method] = {"text": method}
            observation["method"] = found
        refid = get("MIREFID", "")
        if refid:
            key = (get("STUDYID", ""), get("USUBJID", ""), refid)
            reference = references.get(key)
            if reference is None:
                reference = references[key] = specimen_reference(key)
            observation["specimen"] = reference
            seq = get("MISEQ", "")
            order = int(seq) if seq.isascii() and seq.isdigit() else 0
            reports.setdefault(key, []).append((order, observation, row, extensions[0]))
        yield observation
    for key, members in reports.items():
        yield _report(key, members, references[key], specimens.get(key, False))


def _report(
    key: SpecimenKey,
    members: list[tuple[int, JSON, dict[str, str], JSON]],
    specimen: JSON,
    muscle: bool,
) -> JSON:
    members.sort(key=lambda m: m[0])
    first = members[0]
    report: JSON = {
        "resourceType": "DiagnosticReport",
        "id": resource_id("DiagnosticReport", *key),
        "extension": [first[3]],
        "identifier": [{"system": SID_DERIVED, "value": key_value("DiagnosticReport", *key)}],
        "status": "final",
        "category": _PATHOLOGY,
        "code": {"text": "Muscle biopsy pathology" if muscle else "Biopsy pathology"},
        "subject": first[1]["subject"],
    }
    set_date(report, "effectiveDateTime", first[2].get("MIDTC", ""))
    report["specimen"] = [specimen]
    report["result"] = [{"reference": f"Observation/{m[1]['id']}"} for m in members]
    conclusions = [
        m[2].get("MISTRESC", "") or m[2].get("MIORRES", "")
        for m in members
        if m[2].get("MITESTCD") == CONCLUSION_TESTCD
    ]
    conclusion = "\n".join(c for c in conclusions if c)
    if conclusion:
        report["conclusion"] = conclusion
    return report


# --- Procedure, Observation -> PR, MI -----------------------------------------------------------------------

_PR_SYSTEM: Final = row_system("PR")
_MI_SYSTEM: Final = row_system("MI")


class BiopsyReader:
    """Takes the Procedures and finding Observations made from PR and MI rows and gives the rows back;
    takes their derived Specimens and DiagnosticReports without producing rows."""

    def __init__(self) -> None:
        self._rows: dict[str, list[dict[str, str]]] = {d: [] for d in DOMAINS_MAPPED}

    def feed(self, resource: JSON) -> bool:
        """Take `resource` when it belongs to the biopsy family (True), else leave it (False)."""
        kind = resource.get("resourceType")
        if kind == "Observation" or kind == "Procedure":
            found = row_domain(resource)
            if found is None:
                return False
            domain, value = found
            if kind == "Observation" and domain == "MI":
                self._rows["MI"].append(_finding_row(resource, value))
                return True
            if kind == "Procedure" and domain == "PR":
                self._rows["PR"].append(_procedure_row(resource, value))
                return True
            return False
        if kind == "Specimen":
            return _has_identifier(resource, SID_SPECIMEN)
        if kind == "DiagnosticReport":
            return _has_identifier(resource, SID_DERIVED)
        return False

    def rows(self) -> dict[str, list[dict[str, str]]]:
        """Domain -> the rows read so far (only domains with rows; unsorted)."""
        return {d: rows for d, rows in self._rows.items() if rows}


def _has_identifier(resource: JSON, system: str) -> bool:
    return any(i.get("system") == system for i in resource.get("identifier", ()))


def _procedure_row(resource: JSON, value: str) -> dict[str, str]:
    row, carried = read_head(resource, "PR", value)
    treatment = read_text(resource, "code")
    if treatment:
        row["PRTRT"] = treatment
    category = read_text(resource, "category")
    if category:
        row["PRCAT"] = category
    sites = array(resource, "bodySite")
    if sites:
        if type(sites[0]) is not dict:
            raise TypeError("bodySite: not an object")
        site = text(sites[0], "text")
        if site:
            row["PRLOC"] = site
    period = obj(resource, "performedPeriod")
    if period is not None:
        start = get_dtc(period, "start")
        end = get_dtc(period, "end")
    else:
        start = get_dtc(resource, "performedDateTime")
        end = ""
    if start:
        row["PRSTDTC"] = start
    if end:
        row["PRENDTC"] = end
    row.update(carried)
    return row


def _finding_row(resource: JSON, value: str) -> dict[str, str]:
    row, carried = read_head(resource, "MI", value)
    read_code(obj(resource, "code"), row, "MITESTCD", "MITEST")
    dtc = get_dtc(resource, "effectiveDateTime")
    if dtc:
        row["MIDTC"] = dtc
    q = obj(resource, "valueQuantity")
    if q is not None:
        if "value" in q:
            row["MISTRESN"] = decimal_text(q["value"])
    elif "valueCodeableConcept" in resource:
        result = read_text(resource, "valueCodeableConcept")
        if result:
            row["MISTRESC"] = result
    else:
        result = text(resource, "valueString")
        if result:
            row["MISTRESC"] = result
    site = read_text(resource, "bodySite")
    if site:
        row["MILOC"] = site
    method = read_text(resource, "method")
    if method:
        row["MIMETHOD"] = method
    specimen = obj(resource, "specimen")
    if specimen is not None:
        logical = obj(specimen, "identifier")
        if logical is not None and text(logical, "system") == SID_SPECIMEN:
            row["MIREFID"] = split_key(text(logical, "value"), 3)[2]
    row.update(carried)
    return row
