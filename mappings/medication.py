"""EX (study drug) and CM (concomitant medication) <-> MedicationAdministration.

Placement of the cells (every one comes back exactly as written; docs/mapping.md has the full table):
- head (STUDYID, USUBJID, --SEQ, EPOCH, VISITNUM/VISIT, the study link): as every event (observation.py).
- --TRT -> `medicationCodeableConcept.text` (IVIG: ATC J06BA02; placebo: NCIt C753; prednisone: RxNorm 8640
  and ATC H02AB07; any other treatment: text only).
- --ROUTE -> `dosage.route.text` (INTRAVENOUS: SNOMED 47625008, ORAL: SNOMED 26643006).
- --DOSFRQ -> `dosage.text` (the dosing instruction as written: QD, ONCE, ...).
- --DOSE/--DOSU -> `dosage.dose` (UCUM where the unit is one). EX in g/kg: the prescription as written in
  the `prescribed-dose` extension on `dosage`, and `dosage.dose` = the administered grams = EXDOSE x the
  subject's body weight (VS WEIGHT in kg, the last on or before EXSTDTC, else the first), computed exactly;
  no weight -> no grams (`dose` is then data-absent, as FHIR needs a dose beside a route).
- Dates. EX: EXENDTC present -> `effectivePeriod` (EXSTDTC..EXENDTC), else `effectiveDateTime` = EXSTDTC.
  CM: CMENDTC = CMSTDTC -> `effectiveDateTime` (one administration); otherwise `effectivePeriod` (CMENDTC
  empty -> a period without an end: dosing not known to have stopped). Both empty -> data-absent period.
- CM only: CMINDC -> `reasonCode.text`, CMCAT -> `category.text`.
- Every other cell (EXDOSFRM, EXLOT, CMDECOD, CMDOSFRM, sponsor columns, ...) -> `sdtm-variable`.
Study drug and background medication are told apart by the identifier system (.../sdtm/ex or /cm) and
the medication code.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from decimal import Decimal
from operator import itemgetter
from typing import Final

from mappings.identity import row_system
from mappings.observation import (
    RowContext,
    codeable,
    data_absent,
    decimal_cell,
    quantity,
    read_head,
    read_text,
    row_key,
    set_date,
)
from mappings.primitives import (
    JSON,
    array,
    decimal_text,
    get_dtc,
    obj,
    text,
    url,
    variable_extension,
)
from mappings.sdtm import Table, Trial
from mappings.terminology import (
    ATC,
    EXT_PRESCRIBED_DOSE,
    IVIG_ATC,
    NCIT,
    PLACEBO_NCIT,
    PREDNISONE_ATC,
    PREDNISONE_RXNORM,
    ROUTE_INTRAVENOUS_SNOMED,
    ROUTE_ORAL_SNOMED,
    RXNORM,
    SNOMED,
)

__all__ = [
    "DOMAINS_MAPPED",
    "MedicationReader",
    "administered_grams",
    "body_weights",
    "dosing_weight",
    "first_day",
    "to_fhir",
]

DOMAINS_MAPPED: Final = ("EX", "CM")

PER_KG: Final = "g/kg"
"""The EXDOSU whose dose is turned into administered grams from the subject's weight."""

_IVIG: Final = ({"system": ATC, "code": IVIG_ATC[0], "display": IVIG_ATC[1]},)
_PLACEBO: Final = ({"system": NCIT, "code": PLACEBO_NCIT[0], "display": PLACEBO_NCIT[1]},)
_PREDNISONE: Final = (
    {"system": RXNORM, "code": PREDNISONE_RXNORM[0], "display": PREDNISONE_RXNORM[1]},
    {"system": ATC, "code": PREDNISONE_ATC[0], "display": PREDNISONE_ATC[1]},
)
MEDICATION_CODES: Final[dict[str, tuple[dict[str, str], ...]]] = {
    "IMMUNE GLOBULIN INTRAVENOUS (HUMAN)": _IVIG,
    "IMMUNE GLOBULIN INTRAVENOUS": _IVIG,
    "IVIG": _IVIG,
    "PLACEBO": _PLACEBO,
    "PREDNISONE": _PREDNISONE,
}
"""--TRT (upper-cased) -> its public codings; any other treatment is kept as text only."""

ROUTE_CODES: Final[dict[str, dict[str, str]]] = {
    "INTRAVENOUS": {
        "system": SNOMED,
        "code": ROUTE_INTRAVENOUS_SNOMED[0],
        "display": ROUTE_INTRAVENOUS_SNOMED[1],
    },
    "ORAL": {"system": SNOMED, "code": ROUTE_ORAL_SNOMED[0], "display": ROUTE_ORAL_SNOMED[1]},
}
"""--ROUTE (upper-cased) -> SNOMED route coding."""

_EXACT: Final = decimal.Context(
    prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[decimal.Inexact]
)
"""Multiplication without rounding (a product never has more digits than this precision)."""

_EX_NATIVE: Final = (
    "EXTRT", "EXDOSE", "EXDOSU", "EXROUTE", "EXSTDTC", "EXENDTC", "EXDOSFRQ",
)  # fmt: skip
_CM_NATIVE: Final = (
    "CMTRT", "CMDOSE", "CMDOSU", "CMDOSFRQ", "CMROUTE", "CMSTDTC", "CMENDTC", "CMINDC", "CMCAT",
)  # fmt: skip


# --- body weight and the g/kg dose ---------------------------------------------------------------------

Weights = dict[tuple[str, str], list[tuple[str, Decimal]]]
"""(STUDYID, USUBJID) -> [(first possible day of VSDTC, or "~" when undated; weight in kg)], in date order."""


def first_day(dtc: str) -> str:
    """The first possible day of an ISO 8601 date/time (`1991-04` -> `1991-04-01`); "" stays ""."""
    day = dtc[:10]
    if len(day) == 4:
        return day + "-01-01"
    if len(day) == 7:
        return day + "-01"
    return day


def body_weights(trial: Trial) -> Weights:
    """Every subject's body weights in kg (VS WEIGHT rows with VSSTRESU kg and a number), in date order
    (then VSSEQ). Computed once per trial."""
    table = trial.get("VS")
    if table is None:
        return {}
    found: dict[tuple[str, str], list[tuple[str, int, Decimal]]] = {}
    for row in table.rows:
        if row.get("VSTESTCD") != "WEIGHT" or row.get("VSSTRESU") != "kg":
            continue
        value, _ = decimal_cell(row.get("VSSTRESN", ""))
        if value is None:
            continue
        seq = row.get("VSSEQ", "")
        order = int(seq) if seq.isascii() and seq.isdigit() else 0
        day = first_day(row.get("VSDTC", "")) or "~"
        key = (row.get("STUDYID", ""), row.get("USUBJID", ""))
        found.setdefault(key, []).append((day, order, value))
    return {
        key: [(day, value) for day, _, value in sorted(rows, key=lambda w: (w[0], w[1]))]
        for key, rows in found.items()
    }


def dosing_weight(weights: list[tuple[str, Decimal]], start: str) -> Decimal | None:
    """The weight a dose given on `start` is computed from: the last one dated on or before that day
    (partial dates compare by their first possible day), else the first one; None without weights."""
    if not weights:
        return None
    if start:
        day = first_day(start)
        chosen = None
        for weight_day, weight in weights:
            if weight_day > day:
                break
            chosen = weight
        if chosen is not None:
            return chosen
    return weights[0][1]


def administered_grams(dose_per_kg: Decimal, weight_kg: Decimal) -> Decimal:
    """dose (g/kg) x weight (kg), exactly: no rounding, the digits the factors imply (2 x 68.3 = 136.6,
    1 x 74.50 = 74.50)."""
    return _EXACT.multiply(dose_per_kg, weight_kg)


# --- EX, CM -> MedicationAdministration ---------------------------------------------------------------------


def to_fhir(trial: Trial) -> Iterator[JSON]:
    """Every MedicationAdministration made from the EX and CM tables of `trial` (absent tables skipped)."""
    if "EX" in trial:
        yield from _exposure(trial["EX"], body_weights(trial))
    if "CM" in trial:
        yield from _concomitant(trial["CM"])


class _Concepts:
    """Medication and route concepts, one per distinct text (shared, read-only)."""

    def __init__(self) -> None:
        self._medications: dict[str, JSON] = {}
        self._routes: dict[str, JSON] = {}

    def medication(self, text: str) -> JSON:
        found = self._medications.get(text)
        if found is None:
            codings = [dict(c) for c in MEDICATION_CODES.get(text.upper(), ())]
            found = self._medications[text] = codeable(codings, text)
        return found

    def route(self, text: str) -> JSON:
        found = self._routes.get(text)
        if found is None:
            coding = ROUTE_CODES.get(text.upper())
            found = self._routes[text] = codeable([dict(coding)] if coding else [], text)
        return found


def _administration(
    context: RowContext, concepts: _Concepts, row: dict[str, str], trt: str
) -> tuple[JSON, list[JSON]]:
    rid, identifier, subject, extensions = context.head(row)
    return {
        "resourceType": "MedicationAdministration",
        "id": rid,
        "extension": extensions,
        "identifier": identifier,
        "status": "completed",
        "medicationCodeableConcept": concepts.medication(row.get(trt, "")),
        "subject": subject,
    }, extensions


def _exposure(table: Table, weights: Weights) -> Iterator[JSON]:
    context = RowContext(table, "MedicationAdministration", _EX_NATIVE)
    concepts = _Concepts()
    for row in table.rows:
        get = row.get
        administration, extensions = _administration(context, concepts, row, "EXTRT")
        start = get("EXSTDTC", "")
        end = get("EXENDTC", "")
        if end:
            period: JSON = {}
            set_date(period, "start", start)
            set_date(period, "end", end)
            administration["effectivePeriod"] = period
        elif start:
            set_date(administration, "effectiveDateTime", start)
        else:
            administration["effectivePeriod"] = data_absent()
        dosage: JSON = {}
        frequency = get("EXDOSFRQ", "")
        if frequency:
            dosage["text"] = frequency
        route = get("EXROUTE", "")
        if route:
            dosage["route"] = concepts.route(route)
        dose_text = get("EXDOSE", "")
        unit = get("EXDOSU", "")
        dose, exact = decimal_cell(dose_text) if dose_text else (None, True)
        if dose is None:
            if unit:
                extensions.append(variable_extension("EXDOSU", unit))
        elif unit == PER_KG:
            dosage["extension"] = [
                {"url": EXT_PRESCRIBED_DOSE, "valueQuantity": quantity(dose, unit)}
            ]
            weight = dosing_weight(weights.get((get("STUDYID", ""), get("USUBJID", "")), []), start)
            if weight is not None:
                dosage["dose"] = quantity(administered_grams(dose, weight), "g")
        else:
            dosage["dose"] = quantity(dose, unit)
        if not exact:
            extensions.append(variable_extension("EXDOSE", dose_text))
        if dosage:
            if "dose" not in dosage:
                dosage["dose"] = data_absent()
            administration["dosage"] = dosage
        yield administration


def _cm_dosage(
    concepts: _Concepts, frequency: str, route: str, dose_text: str, unit: str
) -> tuple[JSON | None, list[JSON]]:
    """(`dosage` or None, `sdtm-variable`s for CMDOSE/CMDOSU cells it cannot hold). CM rows repeat
    the same dosing, so one (read-only) dosage serves them all."""
    dosage: JSON = {}
    carried: list[JSON] = []
    if frequency:
        dosage["text"] = frequency
    if route:
        dosage["route"] = concepts.route(route)
    value, exact = decimal_cell(dose_text) if dose_text else (None, True)
    if value is not None:
        dosage["dose"] = quantity(value, unit)
    elif unit:
        carried.append(variable_extension("CMDOSU", unit))
    if not exact:
        carried.append(variable_extension("CMDOSE", dose_text))
    if dosage and "dose" not in dosage:
        dosage["dose"] = data_absent()
    return (dosage or None), carried


_CM_PROFILE: Final = ("CMTRT", "CMCAT", "CMINDC", "CMDOSFRQ", "CMROUTE", "CMDOSE", "CMDOSU")
"""The CM cells that repeat row after row (a subject's daily doses differ only in dates and CMSEQ)."""

_Profile = tuple[JSON, JSON | None, list[JSON] | None, JSON | None, list[JSON]]
"""(medication, category, reasonCode, dosage, carried cells): shared, read-only."""


def _cm_profile(concepts: _Concepts, names: tuple[str, ...], cells: tuple[str, ...]) -> _Profile:
    get = dict(zip(names, cells, strict=True)).get
    category = get("CMCAT", "")
    reason = get("CMINDC", "")
    dosage, carried = _cm_dosage(
        concepts, get("CMDOSFRQ", ""), get("CMROUTE", ""), get("CMDOSE", ""), get("CMDOSU", "")
    )
    return (
        concepts.medication(get("CMTRT", "")),
        {"text": category} if category else None,
        [{"text": reason}] if reason else None,
        dosage,
        carried,
    )


def _concomitant(table: Table) -> Iterator[JSON]:
    context = RowContext(table, "MedicationAdministration", _CM_NATIVE)
    head = context.head
    concepts = _Concepts()
    profiles: dict[tuple[str, ...], _Profile] = {}
    names = tuple(name for name in _CM_PROFILE if name in table.columns)
    if len(names) < 2:  # itemgetter of one name gives a cell, not a tuple
        names = _CM_PROFILE
    fetch = itemgetter(*names)
    for row in table.rows:
        get = row.get
        try:
            cells = fetch(row)
        except KeyError:  # a row without some of the table's columns
            cells = tuple([get(name, "") for name in names])
        profile = profiles.get(cells)
        if profile is None:
            profile = profiles[cells] = _cm_profile(concepts, names, cells)
        rid, identifier, subject, extensions = head(row)
        administration: JSON = {
            "resourceType": "MedicationAdministration",
            "id": rid,
            "extension": extensions,
            "identifier": identifier,
            "status": "completed",
            "medicationCodeableConcept": profile[0],
            "subject": subject,
        }
        if profile[1] is not None:
            administration["category"] = profile[1]
        start = get("CMSTDTC", "")
        end = get("CMENDTC", "")
        if start and end == start:
            set_date(administration, "effectiveDateTime", start)
        elif start or end:
            period: JSON = {}
            set_date(period, "start", start)
            set_date(period, "end", end)
            administration["effectivePeriod"] = period
        else:
            administration["effectivePeriod"] = data_absent()
        if profile[2] is not None:
            administration["reasonCode"] = profile[2]
        if profile[3] is not None:
            administration["dosage"] = profile[3]
        if profile[4]:
            extensions.extend(profile[4])
        yield administration


# --- MedicationAdministration -> EX, CM ------------------------------------------------------------------

_SYSTEMS: Final = {row_system(d): d for d in DOMAINS_MAPPED}
_NAMES: Final = {
    d: tuple(d + n for n in ("TRT", "STDTC", "ENDTC", "DOSFRQ", "ROUTE", "DOSE", "DOSU"))
    for d in DOMAINS_MAPPED
}
"""Domain -> its --TRT, --STDTC, --ENDTC, --DOSFRQ, --ROUTE, --DOSE, --DOSU variable names."""


class MedicationReader:
    """Takes the MedicationAdministrations made from EX and CM rows and gives the rows back."""

    def __init__(self) -> None:
        self._rows: dict[str, list[dict[str, str]]] = {d: [] for d in DOMAINS_MAPPED}

    def feed(self, resource: JSON) -> bool:
        """Take `resource` when it is a MedicationAdministration of EX or CM (True), else False."""
        if resource.get("resourceType") != "MedicationAdministration":
            return False
        found = row_key(resource, _SYSTEMS)
        if found is None:
            return False
        domain, value = found
        row, carried = read_head(resource, domain, value)
        trt, stdtc, endtc, dosfrq, route_name, dose_name, dosu = _NAMES[domain]
        # `read_text`, `obj`, `text`, `array`, `url`: their common cases inlined (a valid element
        # taken as is), anything else handed to them (the same answer, or the same refusal)
        get = resource.get
        concept = get("medicationCodeableConcept")
        medication = concept.get("text") if type(concept) is dict else None
        if type(medication) is not str or not medication or "\x00" in medication:
            medication = read_text(resource, "medicationCodeableConcept")
        if medication:
            row[trt] = medication
        if "effectiveDateTime" in resource or "_effectiveDateTime" in resource:
            start = get_dtc(resource, "effectiveDateTime")
            if start:
                row[stdtc] = start
                if domain == "CM":
                    row[endtc] = start
        else:
            period = get("effectivePeriod")
            if type(period) is not dict or not period:
                period = obj(resource, "effectivePeriod")
            if period is not None:
                start = get_dtc(period, "start")
                if start:
                    row[stdtc] = start
                end = get_dtc(period, "end")
                if end:
                    row[endtc] = end
        dosage = get("dosage")
        if type(dosage) is not dict or not dosage:
            dosage = obj(resource, "dosage")
        if dosage is not None:
            frequency = dosage.get("text")
            if type(frequency) is not str or not frequency or "\x00" in frequency:
                frequency = text(dosage, "text")
            if frequency:
                row[dosfrq] = frequency
            concept = dosage.get("route")
            route = concept.get("text") if type(concept) is dict else None
            if type(route) is not str or not route or "\x00" in route:
                route = read_text(dosage, "route")
            if route:
                row[route_name] = route
            dose = None
            extensions = dosage.get("extension")
            if type(extensions) is not list or not extensions:
                extensions = array(dosage, "extension")
            for ext in extensions:
                ext_url = ext.get("url") if type(ext) is dict else None
                if type(ext_url) is not str or not ext_url:
                    ext_url = url(ext)
                if ext_url == EXT_PRESCRIBED_DOSE:
                    dose = obj(ext, "valueQuantity")
                    break
            if dose is None:
                dose = dosage.get("dose")
                if type(dose) is not dict or not dose:
                    dose = obj(dosage, "dose")
            if dose is not None and "value" in dose:
                row[dose_name] = decimal_text(dose["value"])
                unit = dose.get("unit")
                if type(unit) is not str or not unit or "\x00" in unit:
                    unit = text(dose, "unit")
                if unit:
                    row[dosu] = unit
        if domain == "CM":
            reasons = get("reasonCode")
            if type(reasons) is not list or not reasons:
                reasons = array(resource, "reasonCode")
            if reasons:
                if type(reasons[0]) is not dict:
                    raise TypeError("reasonCode: not an object")
                indication = text(reasons[0], "text")
                if indication:
                    row["CMINDC"] = indication
            concept = get("category")
            category = concept.get("text") if type(concept) is dict else None
            if type(category) is not str or not category or "\x00" in category:
                category = read_text(resource, "category")
            if category:
                row["CMCAT"] = category
        if carried:
            row.update(carried)
        self._rows[domain].append(row)
        return True

    def rows(self) -> dict[str, list[dict[str, str]]]:
        """Domain -> the rows read so far (only domains with rows; unsorted)."""
        return {d: rows for d, rows in self._rows.items() if rows}
