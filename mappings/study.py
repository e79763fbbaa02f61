"""TS (trial summary) and TA (trial arms) <-> one FHIR R4 ResearchStudy per STUDYID, and the project CodeSystem.

The ResearchStudy also carries the layout of every table of the export (`sdtm-table`: the domain and its
column names in file order), so the trial comes back with its columns exactly as written.

Placement of the cells (every one comes back exactly as written):
- TS: one `trial-summary` extension per row, in row order; TSSEQ, TSPARMCD, TSPARM and TSVAL as named
  sub-extensions (valueString), every other cell as a nested `sdtm-variable`. TITLE also fills `title`.
- TA: arms in first-seen ARMCD order, `arm.name` = ARM, `arm.type` experimental or placebo-comparator (the arm
  starts on placebo: ARMCD begins with PBO/PLACEBO or ARM begins with "placebo"), ARMCD in `arm-code`. One
  `arm-element` extension per TA row on its arm: `row` (the row's 1-based position in TA as written, so
  interleaved arms come back in written order), ARMCD, ARM, TAETORD, ETCD, ELEMENT, EPOCH (valueString) and
  every other cell as a nested `sdtm-variable`.
STUDYID is the study's identifier; DOMAIN is implied (carried only when a cell says something else).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import methodcaller
from typing import Any, Final

from mappings.identity import SID_STUDY, study_id
from mappings.primitives import JSON, ElementMissing, array, text, url
from mappings.sdtm import Table, Trial
from mappings.terminology import (
    ARM_TYPE,
    DERMATOMYOSITIS_ICD10CM,
    DERMATOMYOSITIS_SNOMED,
    EXT_ARM_CODE,
    EXT_ARM_ELEMENT,
    EXT_SDTM_TABLE,
    EXT_SDTM_VARIABLE,
    EXT_TRIAL_SUMMARY,
    ICD10CM,
    PROJECT_CODESYSTEM,
    PROJECT_CODESYSTEM_ID,
    PROJECT_CONCEPTS,
    SNOMED,
    STUDY_PURPOSE,
)

__all__ = [
    "CODESYSTEM_VERSION",
    "DERMATOMYOSITIS",
    "CellLayout",
    "StudyReader",
    "codesystem",
    "read_cells",
    "read_variable",
    "research_study",
    "study_ids",
    "to_fhir",
]

CODESYSTEM_VERSION: Final = "0.1.0"
"""Version of the project CodeSystem resource; raise it whenever PROJECT_CONCEPTS changes."""

DERMATOMYOSITIS: Final[JSON] = {
    "coding": [
        {"system": SNOMED, "code": DERMATOMYOSITIS_SNOMED[0], "display": DERMATOMYOSITIS_SNOMED[1]},
        {
            "system": ICD10CM,
            "code": DERMATOMYOSITIS_ICD10CM[0],
            "display": DERMATOMYOSITIS_ICD10CM[1],
        },
    ],
    "text": "Dermatomyositis",
}
"""The condition studied (a property of this study, not read from TS INDIC, which is kept as written)."""

_TREATMENT_PURPOSE: Final[JSON] = {
    "coding": [{"system": STUDY_PURPOSE, "code": "treatment", "display": "Treatment"}]
}
_EXPERIMENTAL: Final[JSON] = {
    "coding": [{"system": ARM_TYPE, "code": "experimental", "display": "Experimental"}]
}
_PLACEBO_COMPARATOR: Final[JSON] = {
    "coding": [{"system": ARM_TYPE, "code": "placebo-comparator", "display": "Placebo Comparator"}]
}

CODE_RE: Final = re.compile(r"[^\s]+(\s[^\s]+)*")
"""FHIR's `code` grammar: a cell that does not match rides as a string instead."""

TS_NAMED: Final = frozenset({"TSSEQ", "TSPARMCD", "TSPARM", "TSVAL"})
TA_NAMED: Final = frozenset({"ARMCD", "ARM", "TAETORD", "ETCD", "ELEMENT", "EPOCH"})
_ROW: Final = "row"


# --- cells of a row as sub-extensions (shared with the subject mapping) --------------------------

ROW_KEYS: Final = frozenset({"STUDYID", "USUBJID"})


class CellLayout:
    """How the cells of one table's rows ride in a complex extension (worked out once per table):
    every non-empty cell in column order, the `named` variables as `{"url": NAME, "valueString": cell}`
    and every other one as a nested `sdtm-variable`. The `skip` variables (STUDYID and USUBJID, carried
    by the resource) and a DOMAIN cell equal to `domain` are left out."""

    def __init__(
        self,
        columns: Iterable[str],
        named: frozenset[str],
        domain: str,
        skip: frozenset[str] = ROW_KEYS,
    ) -> None:
        self.domain = domain
        self.plan = [(name, name in named) for name in columns if name not in skip]

    def extension(self, url: str, row: Mapping[str, str], head: list[JSON] | None = None) -> JSON:
        """The extension `url` holding the cells of `row`; `head` = parts to put first."""
        parts: list[JSON] = [] if head is None else head
        append = parts.append
        for name, is_named in self.plan:
            value = row.get(name)
            if not value:
                continue
            if is_named:
                append({"url": name, "valueString": value})
            elif name != "DOMAIN" or value != self.domain:
                append(
                    {
                        "url": EXT_SDTM_VARIABLE,
                        "extension": [
                            {"url": "name", "valueString": name},
                            {"url": "value", "valueString": value},
                        ],
                    }
                )
        if not parts:  # a row with no cell of its own still needs a part (FHIR has no empty lists)
            append(
                {
                    "url": EXT_SDTM_VARIABLE,
                    "extension": [
                        {"url": "name", "valueString": "DOMAIN"},
                        {"url": "value", "valueString": self.domain},
                    ],
                }
            )
        return {"url": url, "extension": parts}


def read_cells(extension: JSON, row: dict[str, str]) -> dict[str, str]:
    """Put the cells held by a `CellLayout.extension` into `row` (valueString parts and nested
    `sdtm-variable`s; other typed parts such as `row` or `period` are for the caller)."""
    for part in array(extension, "extension"):
        part_url = url(part)
        if "valueString" in part:
            row[part_url] = text(part, "valueString")
        elif part_url == EXT_SDTM_VARIABLE:
            read_variable(part, row)
    return row


def read_variable(extension: JSON, row: dict[str, str]) -> None:
    """Put the cell one `sdtm-variable` extension holds into `row`."""
    name = value = ""
    for sub in array(extension, "extension"):
        sub_url = url(sub)
        if sub_url == "name":
            name = text(sub, "valueString")
        elif sub_url == "value":
            value = text(sub, "valueString")
    if name and value:
        row[name] = value


# --- SDTM -> FHIR --------------------------------------------------------------------------------


_STUDYID_OF: Final = methodcaller("get", "STUDYID", "")


def study_ids(trial: Trial) -> list[str]:
    """Every STUDYID the trial's tables name, TS and TA first, then the other tables, first seen first."""
    order = ["TS", "TA", *(d for d in trial if d not in ("TS", "TA"))]
    seen: dict[str, None] = {}
    for domain in order:
        table = trial.get(domain)
        if table is None:
            continue
        for studyid in dict.fromkeys(map(_STUDYID_OF, table.rows)):
            if studyid and studyid not in seen:
                seen[studyid] = None
    return list(seen)


def _columns_of(rows: Sequence[Mapping[str, str]], columns: Iterable[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _table_layout(table: Table) -> JSON:
    parts: list[JSON] = [{"url": "domain", "valueCode": table.domain}]
    parts.extend({"url": "column", "valueString": column} for column in table.columns)
    return {"url": EXT_SDTM_TABLE, "extension": parts}


def _is_placebo_arm(armcd: str, arm: str) -> bool:
    return armcd.upper().startswith(("PBO", "PLACEBO")) or arm.casefold().startswith("placebo")


def _arms(ta_rows: Sequence[Mapping[str, str]], columns: Iterable[str] | None = None) -> list[JSON]:
    arms: dict[str, JSON] = {}
    layout = CellLayout(_columns_of(ta_rows, columns), TA_NAMED, "TA")
    for position, row in enumerate(ta_rows, start=1):
        armcd = row.get("ARMCD", "")
        arm = arms.get(armcd)
        if arm is None:
            name = row.get("ARM", "") or armcd or f"Arm {len(arms) + 1}"
            arm = {
                "extension": [],
                "name": name,
                "type": _PLACEBO_COMPARATOR if _is_placebo_arm(armcd, name) else _EXPERIMENTAL,
            }
            if CODE_RE.fullmatch(armcd):
                arm["extension"].append({"url": EXT_ARM_CODE, "valueCode": armcd})
            arms[armcd] = arm
        arm["extension"].append(
            layout.extension(EXT_ARM_ELEMENT, row, [{"url": _ROW, "valuePositiveInt": position}])
        )
    return list(arms.values())


def research_study(
    studyid: str,
    ts_rows: Sequence[Mapping[str, str]] = (),
    ta_rows: Sequence[Mapping[str, str]] = (),
    layouts: Iterable[JSON] = (),
    ts_columns: Iterable[str] | None = None,
    ta_columns: Iterable[str] | None = None,
) -> JSON:
    """The ResearchStudy of `studyid` from its TS and TA rows (in written order), the tables' columns
    (else the rows' keys) and the table layouts (`sdtm-table` extensions)."""
    summary = CellLayout(_columns_of(ts_rows, ts_columns), TS_NAMED, "TS")
    extension = [summary.extension(EXT_TRIAL_SUMMARY, row) for row in ts_rows]
    title = next(
        (
            row.get("TSVAL", "")
            for row in ts_rows
            if row.get("TSPARMCD") == "TITLE" and row.get("TSVAL")
        ),
        "",
    )
    extension.extend(layouts)
    study: JSON = {"resourceType": "ResearchStudy", "id": study_id(studyid)}
    if extension:
        study["extension"] = extension
    study["identifier"] = [{"system": SID_STUDY, "value": studyid}]
    if title:
        study["title"] = title
    study["status"] = "completed"
    study["primaryPurposeType"] = _TREATMENT_PURPOSE
    study["condition"] = [DERMATOMYOSITIS]
    arms = _arms(ta_rows, ta_columns)
    if arms:
        study["arm"] = arms
    return study


def to_fhir(trial: Trial) -> Iterator[JSON]:
    """One ResearchStudy per STUDYID named anywhere in the trial (TS and TA optional)."""
    layouts = [_table_layout(table) for table in trial.values()]
    ts = trial.get("TS")
    ta = trial.get("TA")
    for studyid in study_ids(trial):
        ts_rows = [r for r in ts.rows if r.get("STUDYID") == studyid] if ts else []
        ta_rows = [r for r in ta.rows if r.get("STUDYID") == studyid] if ta else []
        yield research_study(
            studyid,
            ts_rows,
            ta_rows,
            layouts,
            ts.columns if ts else None,
            ta.columns if ta else None,
        )


def codesystem() -> JSON:
    """The project CodeSystem: every concept the trial uses that has no public code."""
    return {
        "resourceType": "CodeSystem",
        "id": PROJECT_CODESYSTEM_ID,
        "url": PROJECT_CODESYSTEM,
        "version": CODESYSTEM_VERSION,
        "name": "TrialFHIRConcepts",
        "title": "trialfhir: clinical-trial concepts without a public code",
        "status": "active",
        "experimental": False,
        "description": (
            "Scores, responses and biopsy findings of the trial (and their controlled answers) for which "
            "no public terminology has a code."
        ),
        "caseSensitive": True,
        "content": "complete",
        "count": len(PROJECT_CONCEPTS),
        "concept": [
            {"code": code, "display": display} for code, display in PROJECT_CONCEPTS.items()
        ],
    }


# --- FHIR -> SDTM --------------------------------------------------------------------------------


class StudyReader:
    """Takes ResearchStudy (and the project CodeSystem) and gives back TS and TA rows and the table
    layouts (`columns`: domain -> column names as written; the first study to carry a domain wins)."""

    def __init__(self) -> None:
        self.columns: dict[str, list[str]] = {}
        self._ts: list[dict[str, str]] = []
        self._ta: list[dict[str, str]] = []
        self._seen: set[str] = set()

    def feed(self, resource: JSON) -> bool:
        kind = resource.get("resourceType")
        if kind == "CodeSystem":
            return resource.get("url") == PROJECT_CODESYSTEM
        if kind != "ResearchStudy":
            return False
        studyid = next(
            (
                text(i, "value")
                for i in resource.get("identifier", ())
                if i.get("system") == SID_STUDY
            ),
            None,
        )
        if studyid is None:
            return False
        if studyid in self._seen:  # the same study read twice (e.g. overlapping pages)
            return True
        self._seen.add(studyid)
        for ext in array(resource, "extension"):
            ext_url = url(ext)
            if ext_url == EXT_TRIAL_SUMMARY:
                self._ts.append(read_cells(ext, {"STUDYID": studyid, "DOMAIN": "TS"}))
            elif ext_url == EXT_SDTM_TABLE:
                self._read_layout(ext)
        ta: list[tuple[int, dict[str, str]]] = []
        for arm in array(resource, "arm"):
            if type(arm) is not dict or not arm:
                raise TypeError("arm: not an object with content")
            for ext in array(arm, "extension"):
                if url(ext) == EXT_ARM_ELEMENT:
                    row = read_cells(ext, {"STUDYID": studyid, "DOMAIN": "TA"})
                    ta.append((_position(ext), row))
        ta.sort(key=lambda item: item[0])
        self._ta.extend(row for _, row in ta)
        return True

    def _read_layout(self, ext: JSON) -> None:
        domain: str | None = None
        columns: list[str] = []
        for part in array(ext, "extension"):
            part_url = url(part)
            if part_url == "domain":
                domain = text(part, "valueCode")
                if not domain:
                    raise ElementMissing("extension(sdtm-table).extension(domain).valueCode")
            elif part_url == "column":
                column = text(part, "valueString")
                if not column:
                    raise ElementMissing("extension(sdtm-table).extension(column).valueString")
                columns.append(column)
        if domain is not None and domain not in self.columns:
            self.columns[domain] = columns

    def rows(self) -> dict[str, list[dict[str, str]]]:
        found: dict[str, list[dict[str, str]]] = {}
        if self._ts:
            found["TS"] = self._ts
        if self._ta:
            found["TA"] = self._ta
        return found


def _position(ext: JSON) -> int:
    for part in array(ext, "extension"):
        if url(part) == _ROW:
            value: Any = part.get("valuePositiveInt")
            if type(value) is not int or value < 1:
                raise TypeError("valuePositiveInt: not a positive integer")
            return value
    return 0
