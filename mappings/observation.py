"""VS, QS, RS <-> Observation, and the row machinery the event families (medication, observation, biopsy)
share: ids, identifiers, subject and study links, EPOCH/VISIT, the `sdtm-variable` carrier, and reading a
row back from a resource.

Placement of the cells (every one comes back exactly as written; docs/mapping.md has the full table):
- STUDYID, USUBJID, --SEQ, DOMAIN: `identifier` (system `.../sid/sdtm/<domain>`, value STUDYID/USUBJID/SEQ);
  `subject` -> the Patient, `workflow-researchStudy` -> the ResearchStudy; EPOCH -> `epoch`,
  VISITNUM/VISIT -> `visit`.
- --TESTCD: `code.coding` (project CodeSystem; VS WEIGHT also LOINC 29463-7), --TEST: `code.text`.
- --DTC: `effectiveDateTime` (a time rides in `sdtm-dtc`, see primitives.set_dtc).
- VS: VSSTRESN/VSSTRESU -> `valueQuantity` (UCUM code where the unit is a known UCUM unit), VSLOC ->
  `bodySite.text`. QS: QSSTRESN -> `valueQuantity` in UCUM `{score}`. RS: RSORRES -> `valueCodeableConcept`
  (project coding when it is a known response, `text` as written).
- Every other cell (VSORRES, VSORRESU, QSORRES, QSCAT, RSSTRESC, sponsor columns, ...) -> `sdtm-variable`,
  in file column order. A number whose Decimal does not write back as written (`1e3`) keeps its FHIR value
  and also rides in `sdtm-variable`, which wins on the way back.

Emitted resources may share immutable sub-structures (codings, `code`, `subject`, the study link, EPOCH and
VISIT extensions): treat them as read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from operator import itemgetter
from typing import Any, Final
from urllib.parse import unquote

from mappings.identity import (
    ROW_SYSTEM_PREFIX,
    key_value,
    name_uuids,
    patient_id,
    row_system,
    study_id,
)
from mappings.primitives import (
    JSON,
    array,
    decimal_text,
    get_dtc,
    obj,
    set_dtc,
    text,
    url,
    variable_extension,
)
from mappings.sdtm import DOMAINS, Table, Trial
from mappings.terminology import (
    BODY_WEIGHT_LOINC,
    EXT_DATA_ABSENT_REASON,
    EXT_EPOCH,
    EXT_RESEARCH_STUDY,
    EXT_SDTM_VARIABLE,
    EXT_VISIT,
    LOINC,
    OBSERVATION_CATEGORY,
    PROJECT_CODESYSTEM,
    UCUM,
    project_coding,
)

__all__ = [
    "DOMAINS_MAPPED",
    "RS_ANSWERS",
    "UCUM_CODES",
    "ObservationReader",
    "RowContext",
    "codeable",
    "data_absent",
    "decimal_cell",
    "is_code",
    "quantity",
    "read_code",
    "read_head",
    "row_domain",
    "set_date",
    "split_key",
    "study_link",
    "to_fhir",
]

DOMAINS_MAPPED: Final = ("VS", "QS", "RS", "LB")

UCUM_CODES: Final[dict[str, str]] = {
    # mass, length, area and their inverses as SDTM writes them -> UCUM (case-sensitive)
    "kg": "kg",
    "g": "g",
    "mg": "mg",
    "ug": "ug",
    "LB": "[lb_av]",
    "lb": "[lb_av]",
    "m": "m",
    "cm": "cm",
    "mm": "mm",
    "um": "um",
    "IN": "[in_i]",
    "in": "[in_i]",
    "mm2": "mm2",
    "um2": "um2",
    "/mm2": "/mm2",
    "g/kg": "g/kg",
    "mg/kg": "mg/kg",
    "mL": "mL",
    "L": "L",
    "%": "%",
    "C": "Cel",
    "mmHg": "mm[Hg]",
    "beats/min": "/min",
    "BEATS/MIN": "/min",
    "breaths/min": "/min",
    "kg/m2": "kg/m2",
    "{score}": "{score}",
}
"""SDTM unit (as written) -> UCUM code. A unit not listed is kept as `Quantity.unit` only (no system and
no code: nothing is guessed)."""

RS_ANSWERS: Final = frozenset({"MAJOR IMPROVEMENT", "MILD IMPROVEMENT", "NO CHANGE", "WORSENING"})
"""RSORRES values that are concepts of the project CodeSystem (matched exactly as written)."""

SCORE_UNIT: Final = "{score}"


def _category(code: str, display: str) -> list[JSON]:
    """An Observation `category` list (shared by every resource of its kind: read-only)."""
    return [{"coding": [{"system": OBSERVATION_CATEGORY, "code": code, "display": display}]}]


_VITAL_SIGNS: Final = _category("vital-signs", "Vital Signs")
_SURVEY: Final = _category("survey", "Survey")
_EXAM: Final = _category("exam", "Exam")
_LABORATORY: Final = _category("laboratory", "Laboratory")
_LOINC_WEIGHT: Final = {
    "system": LOINC,
    "code": BODY_WEIGHT_LOINC[0],
    "display": BODY_WEIGHT_LOINC[1],
}

_HEAD: Final = frozenset({"STUDYID", "DOMAIN", "USUBJID", "EPOCH", "VISITNUM", "VISIT"})
"""Cells every row-level resource holds the same way (plus the domain's --SEQ)."""


# --- cells -----------------------------------------------------------------------------------------


def decimal_cell(text: str) -> tuple[Decimal | None, bool]:
    """A numeric cell as (FHIR decimal or None when it is none, whether that decimal writes back as `text`)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None, False
    if not value.is_finite():
        return None, False
    return value, str(value) == text


def is_code(text: str) -> bool:
    """Whether `text` is a valid FHIR `code` (no leading, trailing or repeated whitespace)."""
    return bool(text) and " ".join(text.split()) == text


def data_absent() -> JSON:
    """An element whose value is missing where FHIR requires one (a fresh dict every time)."""
    return {"extension": [{"url": EXT_DATA_ABSENT_REASON, "valueCode": "unknown"}]}


def codeable(codings: list[JSON], text: str) -> JSON:
    """A CodeableConcept: `codings` plus `text` as written; data-absent when both are empty."""
    concept: JSON = {}
    if codings:
        concept["coding"] = codings
    if text:
        concept["text"] = text
    return concept if concept else data_absent()


def quantity(value: Decimal, unit: str) -> JSON:
    """A Quantity of `value` in `unit` (as written), with UCUM system and code when the unit is known."""
    q: JSON = {"value": value}
    if unit:
        q["unit"] = unit
        ucum = UCUM_CODES.get(unit)
        if ucum is not None:
            q["system"] = UCUM
            q["code"] = ucum
    return q


_DATES_WITH_TIME: dict[str, JSON] = {}
"""SDTM date/time with a time -> its FHIR form {key: date part, "_key": primitive}, per key. Shared
read-only primitives; cleared when it grows past `_DATES_CACHE_SIZE`."""
_DATES_CACHE_SIZE: Final = 200_000


def set_date(target: JSON, key: str, text: str) -> None:
    """`set_dtc` with fast paths: a value without a time passes as written; a value with a time is
    converted once per distinct text and key."""
    if len(text) <= 10:
        if text:
            target[key] = text
        return
    cache_key = key + "|" + text
    found = _DATES_WITH_TIME.get(cache_key)
    if found is None:
        found = {}
        set_dtc(found, key, text)
        if len(_DATES_WITH_TIME) >= _DATES_CACHE_SIZE:
            _DATES_WITH_TIME.clear()
        _DATES_WITH_TIME[cache_key] = found
    target.update(found)


# --- the way out: per-domain row context -------------------------------------------------------------


@lru_cache(maxsize=1 << 16)
def _subject(studyid: str, usubjid: str) -> tuple[str, JSON]:
    """(key_value(STUDYID, USUBJID) + "/", the Patient reference), shared read-only."""
    return key_value(studyid, usubjid) + "/", {
        "reference": f"Patient/{patient_id(studyid, usubjid)}"
    }


@lru_cache(maxsize=1 << 10)
def study_link(studyid: str) -> JSON:
    """The `workflow-researchStudy` extension pointing to the study's ResearchStudy (shared, read-only)."""
    return {
        "url": EXT_RESEARCH_STUDY,
        "valueReference": {"reference": f"ResearchStudy/{study_id(studyid)}"},
    }


class RowContext:
    """Everything the resources made from one table's rows share, computed once per subject or value:
    ids, identifiers, the subject reference, the study link, EPOCH/VISIT extensions, coded `code`s."""

    def __init__(self, table: Table, resource_type: str, native: Iterable[str] = ()) -> None:
        spec = DOMAINS[table.domain]
        self.domain = spec.code
        self.seq = spec.seq or ""
        self.system = row_system(spec.code)
        self.resource_type = resource_type
        self._type_key = key_value(resource_type) + "/"
        self._domain_key = key_value(self.domain) + "/"
        placed = _HEAD | {self.seq} | frozenset(native)
        self.carried: tuple[str, ...] = tuple(c for c in table.columns if c not in placed)
        """Columns that always ride in `sdtm-variable` (file order)."""
        self._carried_caches: tuple[tuple[str, dict[str, JSON]], ...] = tuple(
            (name, {}) for name in self.carried
        )
        self._key_cells = itemgetter("STUDYID", "USUBJID", self.seq, "DOMAIN")
        self._width = len(table.columns)
        self._known = placed | frozenset(table.columns)
        """A row with a cell outside these (not in the table's columns) still has it carried."""
        self.has_epoch = "EPOCH" in table.columns
        self.has_visit = "VISITNUM" in table.columns or "VISIT" in table.columns
        self._subjects: dict[tuple[str, str], tuple[Callable[[str], str], str, JSON, JSON]] = {}
        self._epochs: dict[str, JSON] = {}
        self._visits: dict[tuple[str, str], tuple[JSON | None, JSON | None]] = {}
        self._codes: dict[tuple[str, str, tuple[object, ...]], tuple[JSON, bool]] = {}
        self._testcd = f"{self.domain}TESTCD"
        self._test = f"{self.domain}TEST"
        self._dtc = f"{self.domain}DTC"

    def subject(self, studyid: str, usubjid: str) -> tuple[Callable[[str], str], str, JSON, JSON]:
        """(--SEQ key part -> resource id, identifier value prefix, subject reference, study link) of
        one subject."""
        key = (studyid, usubjid)
        found = self._subjects.get(key)
        if found is None:
            subject_key, reference = _subject(studyid, usubjid)
            found = (
                # key_value joins its parts with "/": key_value(Type, STUDYID, USUBJID, DOMAIN) + "/"
                name_uuids(self._type_key + subject_key + self._domain_key),
                subject_key,
                reference,
                study_link(studyid),
            )
            self._subjects[key] = found
        return found

    def head(self, row: dict[str, str]) -> tuple[str, list[JSON], JSON, list[JSON]]:
        """(id, identifier list, subject reference, extension list) of the resource made from `row`.
        The extension list holds the study link, EPOCH, VISIT and the always-carried cells; callers
        append further `sdtm-variable`s to it."""
        get = row.get
        try:
            studyid, usubjid, seq, domain = self._key_cells(row)
        except KeyError:
            studyid, usubjid = get("STUDYID", ""), get("USUBJID", "")
            seq, domain = get(self.seq, ""), get("DOMAIN", "")
        found = self._subjects.get((studyid, usubjid))
        if found is None:
            found = self.subject(studyid, usubjid)
        row_id, value_prefix, subject, study = found
        part = seq if seq.isascii() and seq.isdigit() else key_value(seq)
        extensions = [study]
        if domain and domain != self.domain:
            extensions.append(variable_extension("DOMAIN", domain))
        if self.has_epoch:
            epoch = get("EPOCH", "")
            if epoch:
                ext = self._epochs.get(epoch)
                if ext is None:
                    ext = self._epochs[epoch] = {"url": EXT_EPOCH, "valueString": epoch}
                extensions.append(ext)
        if self.has_visit:
            visitnum = get("VISITNUM", "")
            visit = get("VISIT", "")
            if visitnum or visit:
                key = (visitnum, visit)
                pair = self._visits.get(key)
                if pair is None:
                    pair = self._visits[key] = _visit_extension(visitnum, visit)
                if pair[0] is not None:
                    extensions.append(pair[0])
                if pair[1] is not None:
                    extensions.append(pair[1])
        for name, cache in self._carried_caches:
            value = get(name)
            if value:
                ext = cache.get(value)
                if ext is None:
                    ext = cache[value] = variable_extension(name, value)
                extensions.append(ext)
        if len(row) > self._width:
            extensions.extend(
                variable_extension(name, value)
                for name, value in row.items()
                if value and name not in self._known
            )
        identifier = [{"system": self.system, "value": value_prefix + part}]
        return row_id(part), identifier, subject, extensions

    def code(
        self,
        testcd_name: str,
        testcd: str,
        test: str,
        extensions: list[JSON],
        public: tuple[JSON, ...] = (),
    ) -> JSON:
        """`code` from --TESTCD (project coding, after the `public` codings) and --TEST (text); a
        --TESTCD that is not a valid FHIR code rides in `sdtm-variable` instead."""
        key = (testcd, test, tuple([c.get("code") for c in public]) if public else ())
        found = self._codes.get(key)
        if found is None:
            valid = is_code(testcd)
            codings = [*public, project_coding(testcd)] if valid else list(public)
            found = self._codes[key] = (codeable(codings, test), bool(testcd) and not valid)
        if found[1]:
            extensions.append(variable_extension(testcd_name, testcd))
        return found[0]

    def observation(
        self, row: dict[str, str], category: list[JSON], public: tuple[JSON, ...] = ()
    ) -> tuple[JSON, list[JSON]]:
        """The Observation made from `row` as far as every test domain shares it (VS, QS, RS, MI): id,
        identifier, the extension list of `head`, status final, `category`, `code` from --TESTCD and
        --TEST (after the `public` codings), subject, effectiveDateTime from --DTC. Returns it with its
        extension list, which callers append to."""
        get = row.get
        rid, identifier, subject, extensions = self.head(row)
        testcd_name = self._testcd
        observation: JSON = {
            "resourceType": "Observation",
            "id": rid,
            "extension": extensions,
            "identifier": identifier,
            "status": "final",
            "category": category,
            "code": self.code(
                testcd_name, get(testcd_name, ""), get(self._test, ""), extensions, public
            ),
            "subject": subject,
        }
        set_date(observation, "effectiveDateTime", get(self._dtc, ""))
        return observation, extensions


def _visit_extension(visitnum: str, visit: str) -> tuple[JSON | None, JSON | None]:
    """(the `visit` extension, an `sdtm-variable` for a VISITNUM that does not write back as written)."""
    parts: list[JSON] = []
    carried = None
    if visitnum:
        value, exact = decimal_cell(visitnum)
        if value is not None:
            parts.append({"url": "visitnum", "valueDecimal": value})
        if not exact:
            carried = variable_extension("VISITNUM", visitnum)
    if visit:
        parts.append({"url": "visit", "valueString": visit})
    return ({"url": EXT_VISIT, "extension": parts} if parts else None), carried


# --- the way back: reading a row head ------------------------------------------------------------------


_SEQ_NAMES: Final = {code: spec.seq or code + "SEQ" for code, spec in DOMAINS.items()}


def split_key(value: str, parts: int) -> list[str]:
    """The key parts of an identifier value made by `key_value` (raises ValueError on a foreign shape)."""
    keys = value.split("/")
    if len(keys) != parts:
        raise ValueError(f"identifier value has {len(keys)} parts, expected {parts}")
    if "%" in value:
        keys = [unquote(k) for k in keys]
    return keys


def row_domain(resource: JSON) -> tuple[str, str] | None:
    """(domain, identifier value) of a row-level resource, from its first `.../sid/sdtm/` identifier.

    Raises:
        TypeError: that identifier's value is not a non-empty string."""
    for identifier in resource.get("identifier", ()):
        system = identifier.get("system")
        if isinstance(system, str) and system.startswith(ROW_SYSTEM_PREFIX):
            return system[len(ROW_SYSTEM_PREFIX) :].upper(), text(identifier, "value")
    return None


def row_key(resource: JSON, systems: dict[str, str]) -> tuple[str, str] | None:
    """(domain, identifier value) of a row-level resource of one of the domains in `systems`
    (identifier system -> domain): the first identifier looked up directly, the common case; else any
    row identifier it carries. None when the resource is not such a row.

    Raises:
        TypeError: that identifier's value is not a non-empty string."""
    identifiers = resource.get("identifier")
    if not identifiers:
        return None
    first = identifiers[0]
    domain = systems.get(first.get("system"))
    if domain is not None:
        value = first.get("value")  # `text(first, "value")`, its common case inlined (hot path)
        if type(value) is not str or not value or "\x00" in value:
            value = text(first, "value")
        return domain, value
    found = row_domain(resource)
    if found is None or found[0] not in systems.values():
        return None
    return found


def read_head(resource: JSON, domain: str, value: str) -> tuple[dict[str, str], dict[str, str]]:
    """The head cells of the row behind `resource` (STUDYID, DOMAIN, USUBJID, --SEQ, EPOCH, VISITNUM,
    VISIT) and the cells it carries in `sdtm-variable` (to apply last: they win).

    Raises:
        TypeError: an extension or a part of one whose shape R4 does not allow (a null `url`, a
            number where a string belongs, ...): the trial assembler names it."""
    keys = value.split("/")  # `split_key(value, 3)`, its common case inlined (hot path)
    if len(keys) != 3 or "%" in value:
        keys = split_key(value, 3)
    studyid, usubjid, seq = keys
    row = {"STUDYID": studyid, "DOMAIN": domain, "USUBJID": usubjid, _SEQ_NAMES[domain]: seq}
    if not (studyid and usubjid and seq):  # required cells; an empty one comes back absent
        row = {k: v for k, v in row.items() if v}
    carried: dict[str, str] = {}
    extensions = resource.get("extension")
    if type(extensions) is not list or not extensions:
        extensions = array(resource, "extension")
    for ext in extensions:
        ext_url = ext.get("url") if type(ext) is dict else None  # `url(ext)`, inlined (hot loop)
        if type(ext_url) is not str or not ext_url:
            raise TypeError("extension: not an object with a url")
        if ext_url == EXT_SDTM_VARIABLE:
            parts = ext.get("extension")
            if type(parts) is list and len(parts) == 2:  # as written: checked in one expression
                name_part, value_part = parts
                if type(name_part) is dict and type(value_part) is dict:
                    name = name_part.get("valueString")
                    cell = value_part.get("valueString")
                    if (
                        type(name) is str
                        and type(cell) is str
                        and name
                        and cell
                        and name_part.get("url") == "name"
                        and value_part.get("url") == "value"
                        and "\x00" not in name
                        and "\x00" not in cell
                    ):
                        carried[name] = cell
                        continue
            name = cell = ""
            for part in array(ext, "extension"):
                part_url = url(part)
                if part_url == "name":
                    name = text(part, "valueString")
                elif part_url == "value":
                    cell = text(part, "valueString")
            if name and cell:
                carried[name] = cell
        elif ext_url == EXT_EPOCH:
            epoch = ext.get("valueString")  # `text(ext, "valueString")`, inlined
            if type(epoch) is not str or not epoch or "\x00" in epoch:
                epoch = text(ext, "valueString")
            row["EPOCH"] = epoch
        elif ext_url == EXT_VISIT:
            for part in array(ext, "extension"):
                part_url = url(part)
                if part_url == "visitnum" and "valueDecimal" in part:
                    row["VISITNUM"] = decimal_text(part["valueDecimal"])
                elif part_url == "visit":
                    row["VISIT"] = text(part, "valueString")
    return row, carried


def read_code(concept: Any, row: dict[str, str], testcd_name: str, test_name: str) -> None:
    """--TESTCD from the project coding of `concept` and --TEST from its text.

    Raises:
        TypeError: a coding, its system or code, or the text, not of the shape R4 allows."""
    if concept is None:
        return
    codings = concept.get("coding")  # `array`, `text`: their common cases inlined (hot path)
    if type(codings) is not list or not codings:
        codings = array(concept, "coding")
    for coding in codings:
        if type(coding) is not dict or not coding:
            raise TypeError("coding: not an object with content")
        system = coding.get("system")
        if type(system) is not str or not system or "\x00" in system:
            system = text(coding, "system")
        if system == PROJECT_CODESYSTEM:
            code = text(coding, "code")
            if code:
                row[testcd_name] = code
            break
    name = concept.get("text")
    if type(name) is not str or not name or "\x00" in name:
        name = text(concept, "text")
    if name:
        row[test_name] = name


def read_text(resource: JSON, key: str) -> str:
    """The `text` of the CodeableConcept at `resource[key]` ("" when either is absent).

    Raises:
        TypeError: either one not of the shape R4 allows."""
    concept = resource.get(key)  # `obj`, `text`: their common cases inlined (hot path)
    if type(concept) is dict and concept:
        name = concept.get("text")
        if type(name) is str and name and "\x00" not in name:
            return name
        return text(concept, "text")
    concept = obj(resource, key)
    return "" if concept is None else text(concept, "text")


# --- VS, QS, RS -> Observation --------------------------------------------------------------------------

_VS_NATIVE: Final = ("VSTESTCD", "VSTEST", "VSSTRESN", "VSSTRESU", "VSDTC", "VSLOC")
_QS_NATIVE: Final = ("QSTESTCD", "QSTEST", "QSSTRESN", "QSDTC")
_RS_NATIVE: Final = ("RSTESTCD", "RSTEST", "RSORRES", "RSDTC")
_LB_NATIVE: Final = (
    "LBTESTCD", "LBTEST", "LBLOINC", "LBSTRESN", "LBSTRESU", "LBSTRESC", "LBDTC", "LBORNRLO",
    "LBORNRHI", "LBNRIND", "LBSPEC", "LBMETHOD",
)  # fmt: skip

INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
LB_INTERPRETATIONS: Final[dict[str, tuple[str, str]]] = {
    "NORMAL": ("N", "Normal"),
    "HIGH": ("H", "High"),
    "LOW": ("L", "Low"),
    "ABNORMAL": ("A", "Abnormal"),
}
"""LBNRIND (as written) -> its v3 ObservationInterpretation code; other values are text only."""


def to_fhir(trial: Trial) -> Iterator[JSON]:
    """Every Observation made from the VS, QS, RS and LB tables of `trial` (absent tables skipped)."""
    if "VS" in trial:
        yield from _vital_signs(trial["VS"])
    if "QS" in trial:
        yield from _scores(trial["QS"])
    if "RS" in trial:
        yield from _responses(trial["RS"])
    if "LB" in trial:
        yield from _laboratory(trial["LB"])


def _vital_signs(table: Table) -> Iterator[JSON]:
    context = RowContext(table, "Observation", _VS_NATIVE)
    weight = (_LOINC_WEIGHT,)
    for row in table.rows:
        get = row.get
        public = weight if get("VSTESTCD", "") == "WEIGHT" else ()
        observation, extensions = context.observation(row, _VITAL_SIGNS, public)
        number = get("VSSTRESN", "")
        unit = get("VSSTRESU", "")
        value, exact = decimal_cell(number) if number else (None, True)
        if value is not None:
            observation["valueQuantity"] = quantity(value, unit)
        elif unit:
            extensions.append(variable_extension("VSSTRESU", unit))
        if not exact:
            extensions.append(variable_extension("VSSTRESN", number))
        location = get("VSLOC", "")
        if location:
            observation["bodySite"] = {"text": location}
        yield observation


_SCORES_KEPT: Final = 1 << 16
"""How many distinct QSSTRESN texts `_scores` keeps the valueQuantity of (cleared when full)."""


def _score(number: str) -> tuple[JSON | None, bool]:
    """(the valueQuantity of a QSSTRESN cell or None, whether it writes back as written)."""
    value, exact = decimal_cell(number)
    if value is None:
        return None, exact
    return {"value": value, "unit": SCORE_UNIT, "system": UCUM, "code": SCORE_UNIT}, exact


def _scores(table: Table) -> Iterator[JSON]:
    context = RowContext(table, "Observation", _QS_NATIVE)
    scores: dict[str, tuple[JSON | None, bool]] = {}  # per distinct QSSTRESN: shared, read-only
    for row in table.rows:
        get = row.get
        observation, extensions = context.observation(row, _SURVEY)
        number = get("QSSTRESN", "")
        if number:
            found = scores.get(number)
            if found is None:
                if len(scores) >= _SCORES_KEPT:
                    scores.clear()
                found = scores[number] = _score(number)
            if found[0] is not None:
                observation["valueQuantity"] = found[0]
            if not found[1]:
                extensions.append(variable_extension("QSSTRESN", number))
        yield observation


def _responses(table: Table) -> Iterator[JSON]:
    context = RowContext(table, "Observation", _RS_NATIVE)
    answers: dict[str, JSON] = {}
    for row in table.rows:
        get = row.get
        observation, _ = context.observation(row, _EXAM)
        result = get("RSORRES", "")
        if result:
            answer = answers.get(result)
            if answer is None:
                codings = [project_coding(result)] if result in RS_ANSWERS else []
                answer = answers[result] = codeable(codings, result)
            observation["valueCodeableConcept"] = answer
        yield observation


def _reference_limit(text: str, unit: str, name: str, extensions: list[JSON]) -> JSON | None:
    """A reference range limit (in the original unit) as a Quantity when the cell is a number written
    exactly; anything else (`<5`, `1e3`) rides in `sdtm-variable` instead."""
    if not text:
        return None
    value, exact = decimal_cell(text)
    if value is None or not exact:
        extensions.append(variable_extension(name, text))
        return None
    return quantity(value, unit)


def _laboratory(table: Table) -> Iterator[JSON]:
    context = RowContext(table, "Observation", _LB_NATIVE)
    loinc_codings: dict[str, tuple[JSON, ...]] = {}
    interpretations: dict[str, list[JSON]] = {}
    for row in table.rows:
        get = row.get
        loinc = get("LBLOINC", "")
        public: tuple[JSON, ...] = ()
        if loinc:
            found = loinc_codings.get(loinc)
            if found is None:
                found = loinc_codings[loinc] = (
                    ({"system": LOINC, "code": loinc},) if is_code(loinc) else ()
                )
            public = found
        observation, extensions = context.observation(row, _LABORATORY, public)
        if loinc and not public:
            extensions.append(variable_extension("LBLOINC", loinc))
        number = get("LBSTRESN", "")
        unit = get("LBSTRESU", "")
        character = get("LBSTRESC", "")
        value, exact = decimal_cell(number) if number else (None, True)
        if value is not None:
            observation["valueQuantity"] = quantity(value, unit)
        elif unit:
            extensions.append(variable_extension("LBSTRESU", unit))
        if not exact:
            extensions.append(variable_extension("LBSTRESN", number))
        if character:
            if number:  # beside a result in numbers (or a cell that is none): carried
                extensions.append(variable_extension("LBSTRESC", character))
            else:
                observation["valueString"] = character
        original_unit = get("LBORRESU", "")
        low = _reference_limit(get("LBORNRLO", ""), original_unit, "LBORNRLO", extensions)
        high = _reference_limit(get("LBORNRHI", ""), original_unit, "LBORNRHI", extensions)
        if low is not None or high is not None:
            limits: JSON = {}
            if low is not None:
                limits["low"] = low
            if high is not None:
                limits["high"] = high
            observation["referenceRange"] = [limits]
        indicator = get("LBNRIND", "")
        if indicator:
            concept = interpretations.get(indicator)
            if concept is None:
                code = LB_INTERPRETATIONS.get(indicator)
                codings = (
                    [{"system": INTERPRETATION, "code": code[0], "display": code[1]}]
                    if code
                    else []
                )
                concept = interpretations[indicator] = [codeable(codings, indicator)]
            observation["interpretation"] = concept
        specimen = get("LBSPEC", "")
        if specimen:
            observation["specimen"] = {"display": specimen}
        method = get("LBMETHOD", "")
        if method:
            observation["method"] = {"text": method}
        yield observation


def _read_laboratory(resource: JSON, row: dict[str, str]) -> None:
    concept = resource.get("code")
    read_code(concept, row, "LBTESTCD", "LBTEST")
    if isinstance(concept, dict):
        for coding in concept.get("coding", ()):
            if coding.get("system") == LOINC and "code" in coding:
                row["LBLOINC"] = str(coding["code"])
                break
    dtc = get_dtc(resource, "effectiveDateTime")
    if dtc:
        row["LBDTC"] = dtc
    q = resource.get("valueQuantity")
    if q:
        if "value" in q:
            row["LBSTRESN"] = decimal_text(q["value"])
        if q.get("unit"):
            row["LBSTRESU"] = str(q["unit"])
    text = resource.get("valueString")
    if text:
        row["LBSTRESC"] = str(text)
    ranges = resource.get("referenceRange")
    if ranges:
        limits = ranges[0]
        for name, key in (("LBORNRLO", "low"), ("LBORNRHI", "high")):
            limit = limits.get(key)
            if limit and "value" in limit:
                row[name] = decimal_text(limit["value"])
    interpretation = resource.get("interpretation")
    if interpretation and interpretation[0].get("text"):
        row["LBNRIND"] = str(interpretation[0]["text"])
    specimen = resource.get("specimen")
    if specimen and specimen.get("display"):
        row["LBSPEC"] = str(specimen["display"])
    method = resource.get("method")
    if method and method.get("text"):
        row["LBMETHOD"] = str(method["text"])


# --- Observation -> VS, QS, RS, LB ---------------------------------------------------------------------------

_SYSTEMS: Final = {row_system(d): d for d in DOMAINS_MAPPED}


class ObservationReader:
    """Takes the Observations made from VS, QS, RS and LB rows and gives the rows back."""

    def __init__(self) -> None:
        self._rows: dict[str, list[dict[str, str]]] = {d: [] for d in DOMAINS_MAPPED}

    def feed(self, resource: JSON) -> bool:
        """Take `resource` when it is an Observation of VS, QS, RS or LB (True), else leave it (False)."""
        if resource.get("resourceType") != "Observation":
            return False
        found = row_key(resource, _SYSTEMS)
        if found is None:
            return False
        domain, value = found
        row, carried = read_head(resource, domain, value)
        if domain == "QS":
            read_code(obj(resource, "code"), row, "QSTESTCD", "QSTEST")
            dtc = get_dtc(resource, "effectiveDateTime")
            if dtc:
                row["QSDTC"] = dtc
            q = obj(resource, "valueQuantity")
            if q is not None and "value" in q:
                row["QSSTRESN"] = decimal_text(q["value"])
        elif domain == "VS":
            read_code(obj(resource, "code"), row, "VSTESTCD", "VSTEST")
            dtc = get_dtc(resource, "effectiveDateTime")
            if dtc:
                row["VSDTC"] = dtc
            q = obj(resource, "valueQuantity")
            if q is not None:
                if "value" in q:
                    row["VSSTRESN"] = decimal_text(q["value"])
                unit = text(q, "unit")
                if unit:
                    row["VSSTRESU"] = unit
            site = read_text(resource, "bodySite")
            if site:
                row["VSLOC"] = site
        elif domain == "LB":
            _read_laboratory(resource, row)
        else:
            read_code(obj(resource, "code"), row, "RSTESTCD", "RSTEST")
            dtc = get_dtc(resource, "effectiveDateTime")
            if dtc:
                row["RSDTC"] = dtc
            answer = read_text(resource, "valueCodeableConcept")
            if answer:
                row["RSORRES"] = answer
        if carried:
            row.update(carried)
        self._rows[domain].append(row)
        return True

    def rows(self) -> dict[str, list[dict[str, str]]]:
        """Domain -> the rows read so far (only domains with rows; unsorted)."""
        return {d: rows for d, rows in self._rows.items() if rows}
