"""DM (demographics) and SE (subject elements) <-> Patient, ResearchSubject and the dermatomyositis Condition.

One DM row makes one Patient (who the subject is), one ResearchSubject (the subject's part in the study)
and one Condition (the disease the study enrolled them for). R4 has no element for a subject's path
through the trial's elements (epochs), so each SE row becomes one `subject-element` extension on the
ResearchSubject; the way back rebuilds DM by joining ResearchSubject and Patient, and SE from those
extensions.

Placement of the DM cells:
- Patient: USUBJID -> identifier; SEX -> gender (M/F/U -> male/female/unknown; any other text rides as an
  `sdtm-variable`, with gender `other` for UNDIFFERENTIATED); BRTHDTC -> birthDate (partial stays partial,
  a time rides in `sdtm-dtc`); AGE/AGEU -> `age` valueQuantity (never a birth date); COUNTRY ->
  address.country; RACE, ETHNIC -> `sdtm-variable`.
- ResearchSubject: STUDYID + USUBJID -> identifier; ARM -> assignedArm, ACTARM -> actualArm with ARMCD and
  ACTARMCD in `arm-code` on `_assignedArm` / `_actualArm`; RFSTDTC..RFENDTC -> period; SUBJID, SITEID,
  DMDTC and any extra column -> `sdtm-variable`.
- SE row -> `subject-element`: SESEQ, ETCD, ELEMENT, EPOCH (valueString), `period` (SESTDTC..SEENDTC,
  valuePeriod), every other cell (TAETORD, SEUPDES, extras) as a nested `sdtm-variable`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Final
from urllib.parse import unquote

from mappings.identity import (
    SID_DERIVED,
    SID_RESEARCH_SUBJECT,
    SID_USUBJID,
    key_value,
    name_uuid,
    patient_id,
    study_id,
)
from mappings.primitives import (
    JSON,
    decimal_text,
    dtc_to_fhir,
    get_dtc,
    read_variable_extensions,
    set_dtc,
    variable_extension,
)
from mappings.sdtm import Trial
from mappings.study import CODE_RE, DERMATOMYOSITIS, CellLayout, read_variable
from mappings.terminology import (
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    EXT_AGE,
    EXT_ARM_CODE,
    EXT_SDTM_VARIABLE,
    EXT_SUBJECT_ELEMENT,
    UCUM,
)

__all__ = [
    "SubjectKeys",
    "SubjectReader",
    "condition",
    "patient",
    "research_subject",
    "subject_element",
    "to_fhir",
]

SEX_TO_GENDER: Final = {"M": "male", "F": "female", "U": "unknown"}
GENDER_TO_SEX: Final = {gender: sex for sex, gender in SEX_TO_GENDER.items()}
AGE_UNITS: Final = {"YEARS": "a", "MONTHS": "mo", "WEEKS": "wk", "DAYS": "d", "HOURS": "h"}
"""SDTM AGEU -> UCUM code (the unit text itself is kept exactly as AGEU)."""

PATIENT_NATIVE: Final = frozenset(
    {"STUDYID", "DOMAIN", "USUBJID", "SEX", "BRTHDTC", "AGE", "AGEU", "COUNTRY"}
)
PATIENT_CARRIED: Final = ("RACE", "ETHNIC")
SUBJECT_NATIVE: Final = frozenset({"ARMCD", "ARM", "ACTARMCD", "ACTARM", "RFSTDTC", "RFENDTC"})
SE_NAMED: Final = frozenset({"SESEQ", "ETCD", "ELEMENT", "EPOCH"})
SE_PERIOD: Final = ("SESTDTC", "SEENDTC")
_SE_SKIP: Final = frozenset({"STUDYID", "USUBJID", *SE_PERIOD})

_ACTIVE: Final[JSON] = {
    "coding": [{"system": CONDITION_CLINICAL, "code": "active", "display": "Active"}]
}
_CONFIRMED: Final[JSON] = {
    "coding": [{"system": CONDITION_VERIFICATION, "code": "confirmed", "display": "Confirmed"}]
}
_CONDITION_KEY: Final = "Condition"


# --- SDTM -> FHIR --------------------------------------------------------------------------------


def patient(
    row: Mapping[str, str], carried: Sequence[str] = PATIENT_CARRIED, pid: str | None = None
) -> JSON:
    """The Patient of one DM row; `carried` = the row's columns that ride as `sdtm-variable` here."""
    extension = [variable_extension(n, row[n]) for n in carried if row.get(n, "")]
    resource: JSON = {"resourceType": "Patient"}
    resource["id"] = pid if pid is not None else patient_id(row["STUDYID"], row["USUBJID"])
    age = row.get("AGE", "")
    ageu = row.get("AGEU", "")
    if age or ageu:
        quantity: JSON = {}
        if age:
            try:
                value = Decimal(age)
            except InvalidOperation:
                value = None
            if value is not None and value.is_finite():
                quantity["value"] = value
            if value is None or not value.is_finite() or str(value) != age:
                extension.append(variable_extension("AGE", age))
        if ageu:
            quantity["unit"] = ageu
            code = AGE_UNITS.get(ageu)
            if code is not None:
                quantity["system"] = UCUM
                quantity["code"] = code
        if quantity:
            extension.append({"url": EXT_AGE, "valueQuantity": quantity})
    sex = row.get("SEX", "")
    gender = SEX_TO_GENDER.get(sex)
    if sex and gender is None:
        extension.append(variable_extension("SEX", sex))
        if sex == "UNDIFFERENTIATED":
            gender = "other"
    domain = row.get("DOMAIN", "DM")
    if domain != "DM" and domain:
        extension.append(variable_extension("DOMAIN", domain))
    if extension:
        resource["extension"] = extension
    resource["identifier"] = [{"system": SID_USUBJID, "value": row["USUBJID"]}]
    if gender is not None:
        resource["gender"] = gender
    brthdtc = row.get("BRTHDTC", "")
    if brthdtc:
        set_dtc(resource, "birthDate", brthdtc)
    country = row.get("COUNTRY", "")
    if country:
        resource["address"] = [{"country": country}]
    return resource


def _arm(
    resource: JSON, key: str, arm: str, code: str, extension: list[JSON], code_name: str
) -> None:
    if arm:
        resource[key] = arm
    if code:
        if CODE_RE.fullmatch(code):
            resource["_" + key] = {"extension": [{"url": EXT_ARM_CODE, "valueCode": code}]}
        else:
            extension.append(variable_extension(code_name, code))


def _period(start: str, end: str) -> JSON:
    period: JSON = {}
    if start:
        if len(start) <= 10:  # a date, possibly partial: FHIR as written
            period["start"] = start
        else:
            value, primitive = dtc_to_fhir(start)
            period["start"] = value
            if primitive is not None:
                period["_start"] = primitive
    if end:
        if len(end) <= 10:
            period["end"] = end
        else:
            value, primitive = dtc_to_fhir(end)
            period["end"] = value
            if primitive is not None:
                period["_end"] = primitive
    return period


class SubjectKeys:
    """The ids and references of one subject, worked out once for its three resources."""

    __slots__ = ("condition_id", "key", "patient_id", "research_subject_id", "study_reference")

    def __init__(self, studyid: str, usubjid: str, study_reference: str | None = None) -> None:
        key = key_value(studyid, usubjid)
        self.key = key
        # resource_id(Type, STUDYID, USUBJID) == name_uuid("Type/" + key_value(STUDYID, USUBJID))
        self.patient_id = name_uuid("Patient/" + key)
        self.research_subject_id = name_uuid("ResearchSubject/" + key)
        self.condition_id = name_uuid(_CONDITION_KEY + "/" + key)
        self.study_reference = (
            study_reference if study_reference is not None else "ResearchStudy/" + study_id(studyid)
        )


SE_LAYOUT: Final = CellLayout(
    ("DOMAIN", "SESEQ", "ETCD", "ELEMENT", "EPOCH", "TAETORD", "SEUPDES"), SE_NAMED, "SE", _SE_SKIP
)
"""The SE cells of a table with the conventional columns; `to_fhir` works one out per SE table."""


def subject_element(row: Mapping[str, str], layout: CellLayout = SE_LAYOUT) -> JSON:
    """The `subject-element` extension of one SE row."""
    ext = layout.extension(EXT_SUBJECT_ELEMENT, row)
    start = row.get("SESTDTC", "")
    end = row.get("SEENDTC", "")
    if start or end:
        ext["extension"].append({"url": "period", "valuePeriod": _period(start, end)})
    return ext


def research_subject(
    row: Mapping[str, str],
    carried: Sequence[str],
    elements: Sequence[Mapping[str, str]] = (),
    keys: SubjectKeys | None = None,
    se_layout: CellLayout = SE_LAYOUT,
) -> JSON:
    """The ResearchSubject of one DM row and the subject's SE rows; `carried` = the row's columns that
    ride as `sdtm-variable` here (SUBJID, SITEID, DMDTC, extras)."""
    if keys is None:
        keys = SubjectKeys(row["STUDYID"], row["USUBJID"])
    extension = [variable_extension(n, row[n]) for n in carried if row.get(n)]
    resource: JSON = {
        "resourceType": "ResearchSubject",
        "id": keys.research_subject_id,
        "extension": extension,
        "identifier": [{"system": SID_RESEARCH_SUBJECT, "value": keys.key}],
    }
    rfendtc = row.get("RFENDTC", "")
    resource["status"] = "off-study" if rfendtc else "on-study"
    rfstdtc = row.get("RFSTDTC", "")
    if rfstdtc or rfendtc:
        resource["period"] = _period(rfstdtc, rfendtc)
    resource["study"] = {"reference": keys.study_reference}
    resource["individual"] = {"reference": "Patient/" + keys.patient_id}
    _arm(resource, "assignedArm", row.get("ARM", ""), row.get("ARMCD", ""), extension, "ARMCD")
    _arm(
        resource, "actualArm", row.get("ACTARM", ""), row.get("ACTARMCD", ""), extension, "ACTARMCD"
    )
    for element in elements:
        extension.append(subject_element(element, se_layout))
    if not extension:
        del resource["extension"]
    return resource


def condition(studyid: str, usubjid: str, keys: SubjectKeys | None = None) -> JSON:
    """The subject's dermatomyositis (the condition the study enrolled them for)."""
    if keys is None:
        keys = SubjectKeys(studyid, usubjid)
    return {
        "resourceType": "Condition",
        "id": keys.condition_id,
        "identifier": [{"system": SID_DERIVED, "value": _CONDITION_KEY + "/" + keys.key}],
        "clinicalStatus": _ACTIVE,
        "verificationStatus": _CONFIRMED,
        "code": DERMATOMYOSITIS,
        "subject": {"reference": "Patient/" + keys.patient_id},
    }


def to_fhir(trial: Trial) -> Iterator[JSON]:
    """Patients, then ResearchSubjects, then Conditions, one of each per DM row (SE rides on the
    ResearchSubject). SE rows of a subject without a DM row are an error of the tables (ValueError)."""
    dm = trial.get("DM")
    se = trial.get("SE")
    elements: dict[tuple[str, str], list[dict[str, str]]] = {}
    if se is not None:
        for row in se.rows:
            key = (row["STUDYID"], row["USUBJID"])
            found = elements.get(key)
            if found is None:
                elements[key] = [row]
            else:
                found.append(row)
    if dm is None:
        if elements:
            raise ValueError(f"SE has rows for {len(elements)} subject(s) but there is no DM table")
        return
    pairs = [(row["STUDYID"], row["USUBJID"]) for row in dm.rows]
    orphans = elements.keys() - set(pairs)
    if orphans:
        raise ValueError(f"SE has rows for {len(orphans)} subject(s) without a DM row")
    patient_carried = [c for c in dm.columns if c in PATIENT_CARRIED]
    subject_carried = [
        c
        for c in dm.columns
        if c not in PATIENT_NATIVE and c not in SUBJECT_NATIVE and c not in PATIENT_CARRIED
    ]
    se_layout = SE_LAYOUT if se is None else CellLayout(se.columns, SE_NAMED, "SE", _SE_SKIP)
    study_references = {
        studyid: "ResearchStudy/" + study_id(studyid) for studyid in {p[0] for p in pairs}
    }
    keys = [SubjectKeys(studyid, usubjid, study_references[studyid]) for studyid, usubjid in pairs]
    for row, subject_keys in zip(dm.rows, keys, strict=True):
        yield patient(row, patient_carried, subject_keys.patient_id)
    no_elements: list[dict[str, str]] = []
    for row, pair, subject_keys in zip(dm.rows, pairs, keys, strict=True):
        yield research_subject(
            row, subject_carried, elements.get(pair, no_elements), subject_keys, se_layout
        )
    for (studyid, usubjid), subject_keys in zip(pairs, keys, strict=True):
        yield condition(studyid, usubjid, subject_keys)


# --- FHIR -> SDTM --------------------------------------------------------------------------------


def _split_key(value: str) -> list[str]:
    return [unquote(part) for part in value.split("/")]


def _first_identifier(resource: JSON, system: str) -> str | None:
    for identifier in resource.get("identifier", ()):
        if identifier.get("system") == system:
            value = identifier.get("value")
            return None if value is None else str(value)
    return None


def _arm_code(resource: JSON, key: str) -> str:
    primitive = resource.get("_" + key)
    if isinstance(primitive, dict):
        for ext in primitive.get("extension", ()):
            if ext.get("url") == EXT_ARM_CODE and "valueCode" in ext:
                return str(ext["valueCode"])
    return ""


def _read_period(period: JSON | None, start_name: str, end_name: str, row: dict[str, str]) -> None:
    if not period:
        return
    if "start" in period or "_start" in period:
        row[start_name] = get_dtc(period, "start")
    if "end" in period or "_end" in period:
        row[end_name] = get_dtc(period, "end")


class SubjectReader:
    """Takes Patients, ResearchSubjects and the derived dermatomyositis Conditions; gives back DM rows
    (ResearchSubject joined with its Patient) and SE rows. Resources are read into cells as they are
    fed, so none is kept."""

    def __init__(self) -> None:
        self._patients: dict[str, dict[str, str]] = {}
        """"Patient/<id>" -> the DM cells the Patient holds."""
        self._subjects: dict[tuple[str, str], tuple[str, dict[str, str], list[dict[str, str]]]] = {}
        """(STUDYID, USUBJID) -> (Patient reference, DM cells, SE rows); a subject read twice
        counts once."""

    def feed(self, resource: JSON) -> bool:
        kind = resource.get("resourceType")
        if kind == "Patient":
            if _first_identifier(resource, SID_USUBJID) is None:
                return False
            cells: dict[str, str] = {}
            _read_patient(resource, cells)
            self._patients["Patient/" + str(resource.get("id"))] = cells
            return True
        if kind == "ResearchSubject":
            key = _first_identifier(resource, SID_RESEARCH_SUBJECT)
            if key is None:
                return False
            parts = _split_key(key)
            if len(parts) != 2:
                return False
            studyid, usubjid = parts
            individual = resource.get("individual") or {}
            row, elements = _read_research_subject(resource, studyid, usubjid)
            self._subjects[studyid, usubjid] = (str(individual.get("reference")), row, elements)
            return True
        if kind == "Condition":
            value = _first_identifier(resource, SID_DERIVED)
            return value is not None and value.startswith(_CONDITION_KEY + "/")
        return False

    def rows(self) -> dict[str, list[dict[str, str]]]:
        dm: list[dict[str, str]] = []
        se: list[dict[str, str]] = []
        no_cells: dict[str, str] = {}
        for reference, cells, elements in self._subjects.values():
            dm.append({**self._patients.get(reference, no_cells), **cells})
            se.extend(elements)
        found_rows: dict[str, list[dict[str, str]]] = {}
        if dm:
            found_rows["DM"] = dm
        if se:
            found_rows["SE"] = se
        return found_rows


def _read_research_subject(
    subject: JSON, studyid: str, usubjid: str
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The DM cells a ResearchSubject holds and the SE rows of its `subject-element`s."""
    row: dict[str, str] = {"STUDYID": studyid, "DOMAIN": "DM", "USUBJID": usubjid}
    if "assignedArm" in subject:
        row["ARM"] = str(subject["assignedArm"])
    code = _arm_code(subject, "assignedArm")
    if code:
        row["ARMCD"] = code
    if "actualArm" in subject:
        row["ACTARM"] = str(subject["actualArm"])
    code = _arm_code(subject, "actualArm")
    if code:
        row["ACTARMCD"] = code
    _read_period(subject.get("period"), "RFSTDTC", "RFENDTC", row)
    elements: list[dict[str, str]] = []
    for ext in subject.get("extension", ()):
        url = ext.get("url")
        if url == EXT_SUBJECT_ELEMENT:
            element = {"STUDYID": studyid, "DOMAIN": "SE", "USUBJID": usubjid}
            for part in ext.get("extension", ()):
                value = part.get("valueString")
                if type(value) is not str and "valueString" in part:  # named by the assembler
                    raise TypeError("a valueString is not a string")
                if value is not None:
                    name = part.get("url")
                    if "url" in part and type(name) is not str:  # named by the assembler
                        raise TypeError("an extension's url is not a string")
                    if name is not None:  # a part without a url (invalid R4) names no variable
                        element[name] = str(value)
                elif "valuePeriod" in part:
                    _read_period(part["valuePeriod"], "SESTDTC", "SEENDTC", element)
                elif part.get("url") == EXT_SDTM_VARIABLE:
                    read_variable(part, element)
            elements.append(element)
        elif url == EXT_SDTM_VARIABLE:
            read_variable(ext, row)
    return row, elements


def _read_patient(resource: JSON, row: dict[str, str]) -> None:
    gender = resource.get("gender")
    if gender in GENDER_TO_SEX:
        row["SEX"] = GENDER_TO_SEX[gender]
    birth = get_dtc(resource, "birthDate")
    if birth:
        row["BRTHDTC"] = birth
    for address in resource.get("address", ()):
        if "country" in address:
            row["COUNTRY"] = str(address["country"])
            break
    for ext in resource.get("extension", ()):
        if ext.get("url") == EXT_AGE:
            quantity = ext.get("valueQuantity") or {}
            if "value" in quantity:
                row["AGE"] = decimal_text(quantity["value"])
            if "unit" in quantity:
                row["AGEU"] = str(quantity["unit"])
    row.update(read_variable_extensions(resource))
