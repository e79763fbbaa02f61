"""AE (adverse events) <-> AdverseEvent and MH (medical history) <-> Condition.

Placement of the cells (every one comes back exactly as written; docs/mapping.md has the full table):
- head (STUDYID, USUBJID, --SEQ, EPOCH, VISITNUM/VISIT, the study link): as every event (observation.py),
  except that R4's `AdverseEvent.identifier` is one Identifier, not a list.
- AE: AETERM -> `event.text`; AESTDTC -> `date`; AESER -> `seriousness` (Y serious, N non-serious);
  AESEV -> `severity` (MILD, MODERATE, SEVERE); AEOUT -> `outcome` (the SDTM outcome terms coded in
  adverse-event-outcome); AEREL -> `suspectEntity[0].causality[0].assessment.text` (the suspect is the
  study treatment, named by display); AECAT -> `category[0].text`. Every concept keeps the cell as its
  `text`, which is what comes back.
- MH: MHTERM -> `code.text`; MHSTDTC -> `onsetDateTime`; MHENDTC -> `abatementDateTime` (and then
  `clinicalStatus` resolved, as R4's con-4 asks of an abated condition; derived, not read back);
  MHDTC -> `recordedDate`; MHCAT -> `category[0].text`. The study's own dermatomyositis Condition
  (subject.py) has the `.../sid/derived` identifier; these have `.../sid/sdtm/mh`.
- Every other cell (AEDECOD, AEENDTC, AEACN, MHDECOD, MHENRF, sponsor columns, ...) -> `sdtm-variable`:
  R4 AdverseEvent has no end date, and the tables hold dictionary terms without their codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from mappings.identity import row_system
from mappings.observation import RowContext, codeable, read_head, row_key, set_date
from mappings.primitives import JSON, get_dtc
from mappings.sdtm import Table, Trial
from mappings.terminology import (
    AE_OUTCOME,
    AE_SERIOUSNESS,
    AE_SEVERITY,
    CONDITION_CLINICAL,
)

__all__ = ["AE_OUTCOMES", "DOMAINS_MAPPED", "ClinicalReader", "to_fhir"]

DOMAINS_MAPPED: Final = ("AE", "MH")

AE_SERIOUS: Final[dict[str, tuple[str, str]]] = {
    "Y": ("serious", "Serious"),
    "N": ("non-serious", "Non-serious"),
}
AE_SEVERITIES: Final[dict[str, tuple[str, str]]] = {
    "MILD": ("mild", "Mild"),
    "MODERATE": ("moderate", "Moderate"),
    "SEVERE": ("severe", "Severe"),
}
AE_OUTCOMES: Final[dict[str, tuple[str, str]]] = {
    "RECOVERED/RESOLVED": ("resolved", "Resolved"),
    "RECOVERING/RESOLVING": ("recovering", "Recovering"),
    "NOT RECOVERED/NOT RESOLVED": ("ongoing", "Ongoing"),
    "RECOVERED/RESOLVED WITH SEQUELAE": ("resolvedWithSequelae", "Resolved with Sequelae"),
    "FATAL": ("fatal", "Fatal"),
    "UNKNOWN": ("unknown", "Unknown"),
}
"""SDTM terms (CDISC OUT codelist, matched exactly as written) -> R4 adverse-event-outcome codes."""

SUSPECT_STUDY_TREATMENT: Final = "Study treatment"
"""`suspectEntity.instance` is required in R4: the suspect of AEREL is the study treatment (by display)."""

_AE_NATIVE: Final = ("AETERM", "AESTDTC", "AESER", "AESEV", "AEOUT", "AEREL", "AECAT")
_MH_NATIVE: Final = ("MHTERM", "MHSTDTC", "MHENDTC", "MHDTC", "MHCAT")
_RESOLVED: Final = {
    "coding": [{"system": CONDITION_CLINICAL, "code": "resolved", "display": "Resolved"}]
}


class _Concepts:
    """One CodeableConcept per (element, text), shared read-only: the coding when the text is a known
    term, the text as written always."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], JSON] = {}

    def get(self, system: str, codes: dict[str, tuple[str, str]], text: str) -> JSON:
        key = (system, text)
        found = self._found.get(key)
        if found is None:
            code = codes.get(text)
            codings = [{"system": system, "code": code[0], "display": code[1]}] if code else []
            found = self._found[key] = codeable(codings, text)
        return found


def to_fhir(trial: Trial) -> Iterator[JSON]:
    """Every AdverseEvent made from AE rows, then every Condition made from MH rows (absent tables
    skipped)."""
    if "AE" in trial:
        yield from _adverse_events(trial["AE"])
    if "MH" in trial:
        yield from _history(trial["MH"])


def _adverse_events(table: Table) -> Iterator[JSON]:
    context = RowContext(table, "AdverseEvent", _AE_NATIVE)
    concepts = _Concepts()
    for row in table.rows:
        get = row.get
        rid, identifier, subject, extensions = context.head(row)
        event: JSON = {
            "resourceType": "AdverseEvent",
            "id": rid,
            "extension": extensions,
            "identifier": identifier[0],
            "actuality": "actual",
        }
        category = get("AECAT", "")
        if category:
            event["category"] = [{"text": category}]
        term = get("AETERM", "")
        if term:
            event["event"] = {"text": term}
        event["subject"] = subject
        set_date(event, "date", get("AESTDTC", ""))
        serious = get("AESER", "")
        if serious:
            event["seriousness"] = concepts.get(AE_SERIOUSNESS, AE_SERIOUS, serious)
        severity = get("AESEV", "")
        if severity:
            event["severity"] = concepts.get(AE_SEVERITY, AE_SEVERITIES, severity)
        outcome = get("AEOUT", "")
        if outcome:
            event["outcome"] = concepts.get(AE_OUTCOME, AE_OUTCOMES, outcome)
        related = get("AEREL", "")
        if related:
            event["suspectEntity"] = [
                {
                    "instance": {"display": SUSPECT_STUDY_TREATMENT},
                    "causality": [{"assessment": {"text": related}}],
                }
            ]
        yield event


def _history(table: Table) -> Iterator[JSON]:
    context = RowContext(table, "Condition", _MH_NATIVE)
    for row in table.rows:
        get = row.get
        rid, identifier, subject, extensions = context.head(row)
        condition: JSON = {
            "resourceType": "Condition",
            "id": rid,
            "extension": extensions,
            "identifier": identifier,
        }
        end = get("MHENDTC", "")
        if end:
            condition["clinicalStatus"] = _RESOLVED
        category = get("MHCAT", "")
        if category:
            condition["category"] = [{"text": category}]
        term = get("MHTERM", "")
        if term:
            condition["code"] = {"text": term}
        condition["subject"] = subject
        set_date(condition, "onsetDateTime", get("MHSTDTC", ""))
        set_date(condition, "abatementDateTime", end)
        set_date(condition, "recordedDate", get("MHDTC", ""))
        yield condition


# --- AdverseEvent -> AE, Condition -> MH ------------------------------------------------------------

_AE_SYSTEM: Final = row_system("AE")
_MH_SYSTEMS: Final = {row_system("MH"): "MH"}


def _text(concept: object) -> str:
    if isinstance(concept, dict):
        text = concept.get("text")
        if text:
            return str(text)
    return ""


class ClinicalReader:
    """Takes the AdverseEvents made from AE rows and the Conditions made from MH rows; gives the rows
    back."""

    def __init__(self) -> None:
        self._rows: dict[str, list[dict[str, str]]] = {d: [] for d in DOMAINS_MAPPED}

    def feed(self, resource: JSON) -> bool:
        """Take `resource` when it is an AdverseEvent of AE or a Condition of MH (True), else False."""
        kind = resource.get("resourceType")
        if kind == "AdverseEvent":
            identifier = resource.get("identifier")
            if not isinstance(identifier, dict) or identifier.get("system") != _AE_SYSTEM:
                return False
            self._rows["AE"].append(_read_adverse_event(resource, str(identifier.get("value", ""))))
            return True
        if kind == "Condition":
            found = row_key(resource, _MH_SYSTEMS)
            if found is None:
                return False
            self._rows["MH"].append(_read_history(resource, found[1]))
            return True
        return False

    def rows(self) -> dict[str, list[dict[str, str]]]:
        """Domain -> the rows read so far (only domains with rows; unsorted)."""
        return {d: rows for d, rows in self._rows.items() if rows}


def _read_adverse_event(resource: JSON, value: str) -> dict[str, str]:
    row, carried = read_head(resource, "AE", value)
    cells = (
        ("AETERM", _text(resource.get("event"))),
        ("AESTDTC", get_dtc(resource, "date")),
        ("AESER", _text(resource.get("seriousness"))),
        ("AESEV", _text(resource.get("severity"))),
        ("AEOUT", _text(resource.get("outcome"))),
    )
    row.update((name, cell) for name, cell in cells if cell)
    categories = resource.get("category")
    if categories:
        text = _text(categories[0])
        if text:
            row["AECAT"] = text
    suspects = resource.get("suspectEntity")
    if suspects:
        causality = suspects[0].get("causality")
        if causality:
            text = _text(causality[0].get("assessment"))
            if text:
                row["AEREL"] = text
    if carried:
        row.update(carried)
    return row


def _read_history(resource: JSON, value: str) -> dict[str, str]:
    row, carried = read_head(resource, "MH", value)
    cells = (
        ("MHTERM", _text(resource.get("code"))),
        ("MHSTDTC", get_dtc(resource, "onsetDateTime")),
        ("MHENDTC", get_dtc(resource, "abatementDateTime")),
        ("MHDTC", get_dtc(resource, "recordedDate")),
    )
    row.update((name, cell) for name, cell in cells if cell)
    categories = resource.get("category")
    if categories:
        text = _text(categories[0])
        if text:
            row["MHCAT"] = text
    if carried:
        row.update(carried)
    return row
