"""FHIR R4 written by others -> SDTM tables (DM, VS, LB, CM, AE, MH, PR), after the HL7/CDISC FHIR to
CDISC Joint Mapping IG, with no profile assumed.

Pure and deterministic: `map_foreign(resources, options)` takes parsed resources (plain JSON dicts, in
any order) and gives the tables and a `MappingReport`. Every cell is text as written; every row names its
source resource in the `--SRCID` column (`Type/id`). Rules and deviations: docs/foreign-fhir.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Final, NamedTuple

import orjson

from mappings.foreign import codes
from mappings.foreign._fhir import (
    coding_codes,
    codings,
    concept_text,
    dtc,
    first_coding,
    loinc_code,
    period_start_end,
    quantity_text,
    reference_keys,
    structural_problem,
)
from mappings.foreign.report import MappingReport

JSON = dict[str, Any]

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "DM": (
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "SUBJID",
        "RFSTDTC",
        "RFENDTC",
        "SITEID",
        "BRTHDTC",
        "AGE",
        "AGEU",
        "SEX",
        "RACE",
        "ETHNIC",
        "ARMCD",
        "ARM",
        "ACTARMCD",
        "ACTARM",
        "COUNTRY",
        "DTHDTC",
        "DTHFL",
        "DMSRCID",
    ),
    "VS": (
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "VSSEQ",
        "VSTESTCD",
        "VSTEST",
        "VSLOINC",
        "VSORRES",
        "VSORRESU",
        "VSSTRESC",
        "VSSTRESN",
        "VSSTRESU",
        "VSLOC",
        "VSDTC",
        "VSSRCID",
    ),
    "LB": (
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "LBSEQ",
        "LBTESTCD",
        "LBTEST",
        "LBCAT",
        "LBLOINC",
        "LBORRES",
        "LBORRESU",
        "LBORNRLO",
        "LBORNRHI",
        "LBSTRESC",
        "LBSTRESN",
        "LBSTRESU",
        "LBNRIND",
        "LBSPEC",
        "LBMETHOD",
        "LBDTC",
        "LBSRCID",
    ),
    "CM": (
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "CMSEQ",
        "CMTRT",
        "CMDECOD",
        "CMCODE",
        "CMCODSYS",
        "CMINDC",
        "CMDOSE",
        "CMDOSTXT",
        "CMDOSU",
        "CMDOSFRQ",
        "CMROUTE",
        "CMSTDTC",
        "CMENDTC",
        "CMSRCID",
    ),
    "AE": (
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "AESEQ",
        "AESPID",
        "AETERM",
        "AEDECOD",
        "AECODE",
        "AECODSYS",
        "AECAT",
        "AESER",
        "AESEV",
        "AEREL",
        "AEOUT",
        "AESDTH",
        "AESTDTC",
        "AEENDTC",
        "AESRCID",
    ),
    "MH": (
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "MHSEQ",
        "MHTERM",
        "MHDECOD",
        "MHCODE",
        "MHCODSYS",
        "MHCAT",
        "MHDTC",
        "MHSTDTC",
        "MHENDTC",
        "MHSRCID",
    ),
    "PR": (
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "PRSEQ",
        "PRTRT",
        "PRDECOD",
        "PRCODE",
        "PRCODSYS",
        "PRCAT",
        "PRLOC",
        "PRSTDTC",
        "PRENDTC",
        "PRREFID",
        "EPOCH",
        "PRSRCID",
    ),
    "EX": (
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "EXSEQ",
        "EXTRT",
        "EXCODE",
        "EXCODSYS",
        "EXDOSE",
        "EXDOSU",
        "EXDOSFRM",
        "EXROUTE",
        "EXSTDTC",
        "EXENDTC",
        "EPOCH",
        "EXSRCID",
    ),
}
"""Every domain's columns in order: every variable the trial-export contract requires (SITEID, ARMCD,
ACTARMCD, EXDOSFRM, EPOCH, PRREFID stay empty: clinical systems do not say them), so the tables read
back as trial tables. `--SRCID` (source resource `Type/id`), `--CODE` and `--CODSYS` (the
coding behind --DECOD) are this adapter's extra columns; the rest are SDTM variables."""

DOMAINS: Final = tuple(COLUMNS)

_SORT_KEY: Final = {
    "VS": "VSTESTCD",
    "LB": "LBTESTCD",
    "CM": "CMTRT",
    "AE": "AETERM",
    "MH": "MHTERM",
    "PR": "PRTRT",
    "EX": "EXTRT",
}
_DATE_KEY: Final = {
    "VS": "VSDTC",
    "LB": "LBDTC",
    "CM": "CMSTDTC",
    "AE": "AESTDTC",
    "MH": "MHSTDTC",
    "PR": "PRSTDTC",
    "EX": "EXSTDTC",
}

NO_DOMAIN: Final = "no SDTM domain"
ENTERED_IN_ERROR: Final = "status entered-in-error"


class ForeignResource(NamedTuple):
    """A resource with where it was read (`file, line 3`, a Bundle entry) and its Bundle fullUrl."""

    resource: JSON
    where: str = ""
    full_url: str = ""


@dataclass(frozen=True)
class ForeignOptions:
    """`study`: the STUDYID when the input has no ResearchSubject (every Patient is then a subject).
    `subjid`: which Patient identifier becomes SUBJID: `identifier` (the first identifier with a system
    and a value, else the resource id), `id` (the resource id), or `system:<uri>` (the identifier of
    that system, else the resource id). `study_drugs`: medication codes (any coding's code) or texts
    (exactly as written) of the study drug: a MedicationAdministration of one of them goes to EX, every
    other medication to CM. `trial_subjects`: subjects known from elsewhere (the adapter's own
    resources in a mixed input), reference key (`Patient/<id>`, `identifier|<system>|<value>`) ->
    (STUDYID, USUBJID): an event whose `subject` is one of them maps under that subject (no DM row:
    the subject's DM row comes from its own resources), and Patients of the input that no
    ResearchSubject points at are then not subjects."""

    study: str | None = None
    subjid: str = "identifier"
    study_drugs: tuple[str, ...] = ()
    trial_subjects: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.subjid not in ("identifier", "id") and not self.subjid.startswith("system:"):
            raise ValueError(
                f"subjid must be 'identifier', 'id' or 'system:<uri>', not {self.subjid!r}"
            )


@dataclass
class Table:
    """One SDTM domain: its columns and its rows (every cell text)."""

    domain: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)


@dataclass
class ForeignMapping:
    tables: dict[str, Table]
    report: MappingReport


@dataclass(slots=True)
class _Subject:
    studyid: str
    usubjid: str
    patient: str  # Patient/id (the source)


@dataclass(slots=True)
class _Item:
    resource: JSON
    rtype: str
    source: str  # Type/id, else the fullUrl
    where: str


def bundle_entries(resource: JSON, where: str = "") -> Iterator[ForeignResource]:
    """The resources of a Bundle (any type; nested Bundles flattened), with `where` = `entry N`."""
    entries = resource.get("entry")
    if not isinstance(entries, list):
        return
    for index, entry in enumerate(entries):
        place = f"{where}, entry {index}" if where else f"entry {index}"
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        inner = entry["resource"]
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else ""
        if inner.get("resourceType") == "Bundle":
            yield ForeignResource(inner, place, str(full_url))
            yield from bundle_entries(inner, place)
        else:
            yield ForeignResource(inner, place, str(full_url))


def _canonical(resource: JSON) -> bytes:
    return orjson.dumps(resource, default=str, option=orjson.OPT_SORT_KEYS)


class _Mapper:
    def __init__(self, options: ForeignOptions) -> None:
        self.options = options
        self.report = MappingReport()
        self.index: dict[str, _Item] = {}
        self.resolved: dict[tuple[str, str | None], _Item | None] = {}  # see `resolve`
        self.items: list[_Item] = []
        self.rows: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.subject_of: dict[str, _Subject] = {}  # Patient source -> subject
        self.used_context: set[str] = set()
        self.ae_conditions: dict[str, str] = {}  # Condition source -> the AdverseEvent naming it

    # --- reading ---------------------------------------------------------------------------------

    def take(self, given: Iterable[JSON | ForeignResource]) -> None:
        first: dict[str, ForeignResource] = {}  # source -> the entry read (most are read once)
        again: dict[str, list[ForeignResource]] = {}  # source -> every entry, when read again
        for item in given:
            entry = item if isinstance(item, ForeignResource) else ForeignResource(item)
            self._take_one(entry, first, again)
        for source in sorted(first):
            entries = again.get(source)
            if entries is None:
                once = first[source]
                self._index(once, str(once.resource["resourceType"]), source)
                continue
            # the same resource read more than once: keep one whatever the input order
            versions = sorted(
                ((_canonical(e.resource), e.where, e) for e in entries), key=lambda v: v[:2]
            )
            kept = versions[-1][2]
            rtype = str(kept.resource["resourceType"])
            for _, _, duplicate in versions[:-1]:
                self.report.skipped(
                    rtype,
                    "duplicate: the same resource was read more than once",
                    source,
                    duplicate.where,
                )
            self._index(kept, rtype, source)

    def _take_one(
        self,
        entry: ForeignResource,
        first: dict[str, ForeignResource],
        again: dict[str, list[ForeignResource]],
    ) -> None:
        resource = entry.resource
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        name = rtype if isinstance(rtype, str) and rtype else "(no resourceType)"
        self.report.read(name)
        if not isinstance(resource, dict):
            self.report.skipped(name, "not valid R4: not a JSON object", "", entry.where)
            return
        rid = resource.get("id")
        source = f"{name}/{rid}" if isinstance(rid, str) and rid else entry.full_url
        problem = structural_problem(resource)
        if problem is not None:
            self.report.skipped(name, f"not valid R4: {problem}", source or "(no id)", entry.where)
            return
        if name == "Bundle":
            self.report.skipped(
                name, "a Bundle: its entries are read one by one", source or "(no id)", entry.where
            )
            if not entry.where:  # given whole (not already flattened by the reader)
                for inner in bundle_entries(resource):
                    self._take_one(inner, first, again)
            return
        if not source:
            self.report.skipped(
                name, "no id and no fullUrl: the source cannot be named", "(no id)", entry.where
            )
            return
        if source in first:
            again.setdefault(source, [first[source]]).append(entry)
        else:
            first[source] = entry

    def _index(self, entry: ForeignResource, rtype: str, source: str) -> None:
        resource = entry.resource
        keys = [source]
        if entry.full_url and entry.full_url != source:
            keys.append(entry.full_url)
        if rtype == "Patient":
            for identifier in resource.get("identifier", ()):
                keys.append(
                    f"identifier|{identifier.get('system', '')}|{identifier.get('value', '')}"
                )
        item = _Item(resource, rtype, source, entry.where)
        self.items.append(item)
        for key in keys:  # the index holds them; the item does not need its own list
            self.index.setdefault(key, item)

    def resolve(self, reference: Any, rtype: str | None = None) -> _Item | None:
        """The indexed resource `reference` names (of `rtype` when given), or None. A reference that
        is only a `reference` string is looked up once per text and type (the index is complete
        once `take` has run; Synthea names each Patient and Encounter thousands of times)."""
        if type(reference) is dict and len(reference) == 1:
            literal = reference.get("reference")
            if type(literal) is str:
                key = (literal, rtype)
                if key in self.resolved:
                    return self.resolved[key]
                found = self.resolved[key] = self._resolve(reference, rtype)
                return found
        return self._resolve(reference, rtype)

    def _resolve(self, reference: Any, rtype: str | None) -> _Item | None:
        for key in reference_keys(reference):
            found = self.index.get(key)
            if found is not None and (rtype is None or found.rtype == rtype):
                return found
        return None

    # --- subjects --------------------------------------------------------------------------------

    def subjid(self, patient: JSON) -> str:
        choice = self.options.subjid
        identifiers = [i for i in patient.get("identifier", ()) if i.get("value")]
        if choice == "identifier":
            for identifier in identifiers:
                if identifier.get("system"):
                    return str(identifier["value"])
        elif choice.startswith("system:"):
            system = choice.removeprefix("system:")
            for identifier in identifiers:
                if identifier.get("system") == system:
                    return str(identifier["value"])
        return str(patient.get("id", ""))

    def build_subjects(self) -> None:
        patients = [i for i in self.items if i.rtype == "Patient"]
        research = [i for i in self.items if i.rtype == "ResearchSubject"]
        taken: set[tuple[str, str]] = set()
        rs_rows: dict[str, JSON] = {}
        if research:
            for item in research:
                rs = item.resource
                patient = self.resolve(rs.get("individual"), "Patient")
                if patient is None:
                    self.report.skipped(
                        "ResearchSubject",
                        "individual: Patient not in the input",
                        item.source,
                        item.where,
                    )
                    continue
                study = self.resolve(rs.get("study"), "ResearchStudy")
                studyid = ""
                if study is not None:
                    ids = [i for i in study.resource.get("identifier", ()) if i.get("value")]
                    studyid = str(ids[0]["value"]) if ids else ""
                studyid = (
                    studyid
                    or self.options.study
                    or (str(study.resource.get("id", "")) if study else "")
                )
                if not studyid:
                    self.report.skipped(
                        "ResearchSubject",
                        "no STUDYID: ResearchStudy not in the input and no study given",
                        item.source,
                        item.where,
                    )
                    continue
                ids = [i for i in rs.get("identifier", ()) if i.get("value")]
                usubjid = (
                    str(ids[0]["value"]) if ids else f"{studyid}-{self.subjid(patient.resource)}"
                )
                if patient.source in self.subject_of or (studyid, usubjid) in taken:
                    self.report.skipped(
                        "ResearchSubject",
                        "the Patient or USUBJID is already a subject",
                        item.source,
                        item.where,
                    )
                    continue
                taken.add((studyid, usubjid))
                self.subject_of[patient.source] = _Subject(studyid, usubjid, patient.source)
                rs_rows[patient.source] = rs
                self.report.mapped("ResearchSubject", "DM", 0)
                if study is not None:
                    self.used_context.add(study.source)
        for item in patients:
            subject = self.subject_of.get(item.source)
            if subject is None and (research or self.options.trial_subjects):
                self.report.skipped(
                    "Patient",
                    "not a study subject: no ResearchSubject points at it",
                    item.source,
                    item.where,
                )
                continue
            if subject is None:
                if not self.options.study:
                    self.report.skipped(
                        "Patient",
                        "no STUDYID: no ResearchSubject in the input and no study given",
                        item.source,
                        item.where,
                    )
                    continue
                usubjid = f"{self.options.study}-{self.subjid(item.resource)}"
                if (self.options.study, usubjid) in taken:
                    self.report.skipped(
                        "Patient",
                        "USUBJID already taken by another Patient (see the SUBJID option)",
                        item.source,
                        item.where,
                    )
                    continue
                taken.add((self.options.study, usubjid))
                subject = self.subject_of[item.source] = _Subject(
                    self.options.study, usubjid, item.source
                )
            self.rows["DM"].append(self.dm_row(item, subject, rs_rows.get(item.source)))
            self.report.mapped("Patient", "DM", 1)
        self.report.subjects = len(self.rows["DM"])
        self.report.study = ", ".join(sorted({s.studyid for s in self.subject_of.values()})) or (
            self.options.study or ""
        )

    def dm_row(self, item: _Item, subject: _Subject, rs: JSON | None) -> dict[str, str]:
        patient = item.resource
        row = {"STUDYID": subject.studyid, "DOMAIN": "DM", "USUBJID": subject.usubjid}
        row["SUBJID"] = self.subjid(patient)
        if rs is not None:
            row["RFSTDTC"], row["RFENDTC"] = period_start_end(rs.get("period"))
            row["ARM"] = str(rs.get("assignedArm", ""))
            row["ACTARM"] = str(rs.get("actualArm", ""))
        row["BRTHDTC"] = dtc(patient.get("birthDate"))
        gender = patient.get("gender")
        row["SEX"] = codes.SEX.get(gender, "") if isinstance(gender, str) else ""
        if isinstance(gender, str) and gender not in codes.SEX:
            self.report.note(
                "Patient", "gender not an R4 code: SEX left empty", item.source, item.where
            )
        row["RACE"] = self.omb(item, codes.US_CORE_RACE, codes.RACE, "race")
        row["ETHNIC"] = self.omb(item, codes.US_CORE_ETHNICITY, codes.ETHNIC, "ethnicity")
        addresses = [a for a in patient.get("address", ()) if isinstance(a.get("country"), str)]
        if addresses:
            country = addresses[0]["country"]
            row["COUNTRY"] = codes.COUNTRY.get(country, country if len(country) == 3 else "")
            if not row["COUNTRY"]:
                self.report.note(
                    "Patient",
                    "address.country not ISO 3166: COUNTRY left empty",
                    item.source,
                    item.where,
                )
        if isinstance(patient.get("deceasedDateTime"), str):
            row["DTHDTC"] = dtc(patient["deceasedDateTime"])
            row["DTHFL"] = "Y"
        elif patient.get("deceasedBoolean") is True:
            row["DTHFL"] = "Y"
        age = _age(row["BRTHDTC"], row.get("RFSTDTC", ""))
        if age is not None:
            row["AGE"], row["AGEU"] = str(age), "YEARS"
        row["DMSRCID"] = item.source
        return row

    def omb(self, item: _Item, url: str, table: dict[str, str], what: str) -> str:
        found: list[str] = []
        for extension in item.resource.get("extension", ()):
            if extension.get("url") != url:
                continue
            parts = extension.get("extension")
            for part in parts if isinstance(parts, list) else ():
                coding = part.get("valueCoding") if isinstance(part, dict) else None
                if isinstance(coding, dict) and part.get("url") == "ombCategory":
                    code = coding.get("code")
                    if code in table:
                        found.append(table[str(code)])
                    else:
                        self.report.note(
                            "Patient",
                            f"{what} code not in the table: left empty",
                            item.source,
                            item.where,
                        )
        unique = sorted(set(found))
        if len(unique) > 1:
            return "MULTIPLE" if what == "race" else ""
        return unique[0] if unique else ""

    # --- events ----------------------------------------------------------------------------------

    def map_events(self) -> None:
        mappers: dict[str, Callable[[_Item], tuple[str, list[dict[str, str]]] | str]] = {
            "Observation": self.observation,
            "MedicationStatement": self.medication,
            "MedicationRequest": self.medication,
            "MedicationAdministration": self.medication,
            "AdverseEvent": self.adverse_event,
            "Condition": self.condition,
            "Procedure": self.procedure,
        }
        for item in self.items:  # Conditions an AdverseEvent names as its resultingCondition
            if item.rtype == "AdverseEvent":
                for reference in item.resource.get("resultingCondition", ()):
                    found = self.resolve(reference, "Condition")
                    if found is not None:
                        self.ae_conditions.setdefault(found.source, item.source)
        for item in self.items:
            mapper = mappers.get(item.rtype)
            if mapper is None:
                continue
            if item.rtype == "Condition" and item.source in self.ae_conditions:
                self.report.mapped("Condition", "AE", 0)  # read by its AdverseEvent's row
                continue
            if item.resource.get("status") == "entered-in-error":
                self.report.skipped(item.rtype, ENTERED_IN_ERROR, item.source, item.where)
                continue
            outcome = mapper(item)
            if isinstance(outcome, str):
                self.report.skipped(item.rtype, outcome, item.source, item.where)
                continue
            domain, rows = outcome
            subject = self.subject_for(item)
            if isinstance(subject, str):
                self.report.skipped(item.rtype, subject, item.source, item.where)
                continue
            srcid, studyid, usubjid = _SRCID[domain], subject.studyid, subject.usubjid
            for row in rows:
                row["STUDYID"], row["DOMAIN"], row["USUBJID"] = studyid, domain, usubjid
                row[srcid] = item.source
            self.rows[domain] += rows
            self.report.mapped(item.rtype, domain, len(rows))
            if item.rtype == "Observation":
                self.report.coverage.setdefault(domain, [0, 0])[1] += 1

    def subject_for(self, item: _Item) -> _Subject | str:
        reference = item.resource.get("subject")
        if reference is None:
            return "no subject"
        patient = self.resolve(reference, "Patient")
        if patient is None:
            for key in reference_keys(reference):
                known = self.options.trial_subjects.get(key)
                if known is not None:
                    return _Subject(known[0], known[1], key)
            return "subject not in the input"
        subject = self.subject_of.get(patient.source)
        return subject if subject is not None else "subject is not a study subject"

    def observation(self, item: _Item) -> tuple[str, list[dict[str, str]]] | str:
        obs = item.resource
        vital = laboratory = False  # a category coding's code (the codings are checked objects)
        for concept in obs.get("category", ()):
            for coding in codings(concept):
                code = coding.get("code")
                if code == "vital-signs":
                    vital = True
                elif code == "laboratory":
                    laboratory = True
        loinc = loinc_code(obs.get("code"))
        if vital:
            domain = "VS"
        elif laboratory:
            domain = "LB"
        elif loinc in codes.VS_LOINC or loinc in codes.VS_PANELS:
            domain = "VS"
        elif loinc in codes.LB_LOINC:
            domain = "LB"
        else:
            return f"{NO_DOMAIN} (Observation category not vital-signs or laboratory, code not in the tables)"
        # the holders of a value: the Observation itself, then its components (each tested once)
        with_value: list[JSON] = [obs] if _has_value(obs) else []
        with_value += [c for c in obs.get("component", ()) if isinstance(c, dict) and _has_value(c)]
        if with_value:
            self.report.coverage.setdefault(domain, [0, 0])[0] += 1
        if obs.get("status") == "cancelled":
            return "status cancelled (not done)"
        if not with_value:
            return "no value" + (" (dataAbsentReason)" if "dataAbsentReason" in obs else "")
        when = (
            dtc(obs.get("effectiveDateTime") or obs.get("effectiveInstant"))
            or period_start_end(obs.get("effectivePeriod"))[0]
        )
        rows = []
        dtc_name = _TEST_NAMES[domain][8]
        for holder in with_value:
            row = self.test_row(item, domain, holder)
            if isinstance(row, str):
                self.report.note(item.rtype, row, item.source, item.where)
                continue
            row[dtc_name] = when
            rows.append(row)
        if not rows:
            return "no value with a LOINC code or a mappable value type"
        return domain, rows

    def test_row(self, item: _Item, domain: str, holder: JSON) -> dict[str, str] | str:
        obs = item.resource
        concept = holder.get("code")
        loinc = loinc_code(concept)
        table = codes.VS_LOINC if domain == "VS" else codes.LB_LOINC
        test = table.get(loinc)
        if test is None:
            if not loinc:
                return f"a test without a LOINC code is not mapped to {domain}"
            self.report.note(
                item.rtype,
                f"LOINC not in the {domain} table: --TESTCD by the fallback rule",
                item.source,
                item.where,
            )
            test = codes.TestCode(codes.fallback_testcd(loinc), concept_text(concept), "", "")
        value = _value(holder)
        if value is None:
            return "value[x] type not mapped (Range, Ratio, SampledData, Period)"
        orres, orresu, ucum = value
        names = _TEST_NAMES[domain]
        row = {names[0]: test.testcd, names[1]: test.test, names[2]: loinc}
        row[names[3]], row[names[4]] = orres, orresu
        numeric = "valueQuantity" in holder and codes.is_number(orres)
        stresc = stresn = stresu = ""
        if domain == "VS":
            units = codes.VS_UNITS.get(test.testcd)
            conversion = units.get(ucum or orresu) if units is not None else None
            if numeric and units is None:
                stresn, stresc, stresu = (
                    orres,
                    orres,
                    orresu,
                )  # a test outside the table: as written
            elif numeric and conversion is not None:
                stresn = codes.convert(orres, conversion)
                stresc, stresu = stresn, conversion.unit
            elif numeric:
                self.report.note(
                    item.rtype,
                    "unit not convertible to the VS standard unit: --STRESN left empty",
                    item.source,
                    item.where,
                )
                stresc = orres
            else:
                stresc = orres
            row["VSLOC"] = concept_text(obs.get("bodySite"))
        else:
            conversion = codes.LB_UNITS.get(ucum or orresu)
            if numeric and conversion is not None:
                stresn = codes.convert(orres, conversion)
                stresc, stresu = stresn, conversion.unit
            elif numeric:
                stresn, stresc, stresu = orres, orres, orresu
            else:
                stresc = orres
            row["LBCAT"] = test.category
            ranges = [r for r in obs.get("referenceRange", ()) if isinstance(r, dict)]
            if ranges:
                row["LBORNRLO"] = quantity_text(ranges[0].get("low"))[0]
                row["LBORNRHI"] = quantity_text(ranges[0].get("high"))[0]
            for concept_i in obs.get("interpretation", ()):
                for code in sorted(coding_codes(concept_i)):
                    if code in codes.NRIND:
                        row["LBNRIND"] = codes.NRIND[code]
                        break
            specimen = self.resolve(obs.get("specimen"), "Specimen")
            if specimen is not None:
                self.used_context.add(specimen.source)
                row["LBSPEC"] = concept_text(specimen.resource.get("type"))
            else:
                row["LBSPEC"] = test.specimen
            row["LBMETHOD"] = concept_text(obs.get("method"))
        row[names[5]], row[names[6]], row[names[7]] = stresc, stresn, stresu
        return row

    def medication(self, item: _Item) -> tuple[str, list[dict[str, str]]] | str:
        res, rtype = item.resource, item.rtype
        status = res.get("status")
        if rtype == "MedicationStatement" and status == "not-taken":
            return "status not-taken"
        if rtype == "MedicationAdministration" and status == "not-done":
            return "status not-done"
        if rtype == "MedicationRequest" and res.get("doNotPerform") is True:
            return "doNotPerform"
        concept = res.get("medicationCodeableConcept")
        if concept is None and "medicationReference" in res:
            concept = self.medication_code(item, res["medicationReference"])
        name = concept_text(concept)
        if not name:
            return "no medication code or text"
        coding = first_coding(concept, codes.MEDICATION_SYSTEMS) or {}
        row = {
            "CMTRT": name,
            "CMDECOD": str(coding.get("display") or ""),
            "CMCODE": str(coding.get("code") or ""),
        }
        row["CMCODSYS"] = str(coding.get("system") or "")
        reasons = res.get("reasonCode", ())
        row["CMINDC"] = concept_text(reasons[0]) if reasons else ""
        if rtype == "MedicationAdministration":
            dosage = _obj(res.get("dosage"))
            dose = dosage.get("dose")
        else:
            dosages = res.get(
                "dosage" if rtype == "MedicationStatement" else "dosageInstruction", ()
            )
            dosage = _obj(dosages[0]) if dosages else {}
            rates = dosage.get("doseAndRate")
            dose = (
                rates[0].get("doseQuantity")
                if isinstance(rates, list) and rates and isinstance(rates[0], dict)
                else None
            )
        row["CMDOSE"], row["CMDOSU"], _ = quantity_text(dose)
        row["CMDOSTXT"] = str(dosage.get("text") or "")
        row["CMROUTE"] = concept_text(dosage.get("route"))
        row["CMDOSFRQ"] = _frequency(dosage.get("timing"))
        if rtype == "MedicationRequest":
            repeat = _obj(_obj(dosage.get("timing")).get("repeat"))
            start, end = period_start_end(repeat.get("boundsPeriod"))
            row["CMSTDTC"], row["CMENDTC"] = (start or dtc(res.get("authoredOn"))), end
        elif "effectiveDateTime" in res:
            row["CMSTDTC"] = dtc(res["effectiveDateTime"])
        else:
            row["CMSTDTC"], row["CMENDTC"] = period_start_end(res.get("effectivePeriod"))
        if rtype == "MedicationAdministration" and self.is_study_drug(concept):
            return "EX", [_exposure(row)]
        return "CM", [row]

    def is_study_drug(self, concept: Any) -> bool:
        drugs = self.options.study_drugs
        return bool(drugs) and (
            concept_text(concept) in drugs or bool(coding_codes(concept) & set(drugs))
        )

    def medication_code(self, item: _Item, reference: Any) -> Any:
        literal = reference.get("reference") if isinstance(reference, dict) else None
        if isinstance(literal, str) and literal.startswith("#"):
            for contained in item.resource.get("contained", ()):
                if isinstance(contained, dict) and contained.get("id") == literal[1:]:
                    return contained.get("code")
            return None
        found = self.resolve(reference, "Medication")
        if found is None:
            display = reference.get("display") if isinstance(reference, dict) else None
            return {"text": display} if isinstance(display, str) else None
        self.used_context.add(found.source)
        return found.resource.get("code")

    def adverse_event(self, item: _Item) -> tuple[str, list[dict[str, str]]] | str:
        ae = item.resource
        if ae.get("actuality") == "potential":
            return "actuality potential (a risk, not an event)"
        event = ae.get("event")
        if not concept_text(event):  # the IG's AETERM: the resultingCondition's code
            for reference in ae.get("resultingCondition", ()):
                found = self.resolve(reference, "Condition")
                if found is not None and concept_text(found.resource.get("code")):
                    event = found.resource.get("code")
                    break
        term = concept_text(event)
        if not term:
            return "no event term"
        coding = first_coding(event, codes.CONDITION_SYSTEMS) or {}
        identifier = _obj(ae.get("identifier"))
        row = {"AESPID": str(identifier.get("value") or ""), "AETERM": term}
        row["AEDECOD"], row["AECODE"] = (
            str(coding.get("display") or ""),
            str(coding.get("code") or ""),
        )
        row["AECODSYS"] = str(coding.get("system") or "")
        categories = ae.get("category", ())
        row["AECAT"] = concept_text(categories[0]) if categories else ""
        row["AESER"] = _lookup(ae.get("seriousness"), codes.AESER)
        row["AESEV"] = _lookup(ae.get("severity"), codes.AESEV)
        row["AEOUT"] = _lookup(ae.get("outcome"), codes.AEOUT)
        row["AESDTH"] = "Y" if row["AEOUT"] == "FATAL" else ""
        for suspect in ae.get("suspectEntity", ()):
            for causality in (
                suspect.get("causality", ()) if isinstance(suspect.get("causality"), list) else ()
            ):
                if isinstance(causality, dict) and not row.get("AEREL"):
                    row["AEREL"] = concept_text(causality.get("assessment"))
        row["AESTDTC"] = dtc(ae.get("date"))
        return "AE", [row]

    def condition(self, item: _Item) -> tuple[str, list[dict[str, str]]] | str:
        cond = item.resource
        verification = coding_codes(cond.get("verificationStatus"))
        if "entered-in-error" in verification:
            return ENTERED_IN_ERROR
        if "refuted" in verification:
            return "verificationStatus refuted"
        term = concept_text(cond.get("code"))
        if not term:
            return "no condition code or text"
        coding = first_coding(cond.get("code"), codes.CONDITION_SYSTEMS) or {}
        if _is_adverse_event(cond):
            return "AE", [_condition_ae(cond, term, coding)]
        row = {
            "MHTERM": term,
            "MHDECOD": str(coding.get("display") or ""),
            "MHCODE": str(coding.get("code") or ""),
        }
        row["MHCODSYS"] = str(coding.get("system") or "")
        categories = [c for c in cond.get("category", ()) if codings(c) or c.get("text")]
        row["MHCAT"] = (
            str((first_coding(categories[0]) or {}).get("code") or concept_text(categories[0]))
            if categories
            else ""
        )
        row["MHDTC"] = dtc(cond.get("recordedDate"))
        row["MHSTDTC"] = (
            dtc(cond.get("onsetDateTime")) or period_start_end(cond.get("onsetPeriod"))[0]
        )
        row["MHENDTC"] = (
            dtc(cond.get("abatementDateTime")) or period_start_end(cond.get("abatementPeriod"))[1]
        )
        return "MH", [row]

    def procedure(self, item: _Item) -> tuple[str, list[dict[str, str]]] | str:
        proc = item.resource
        if proc.get("status") == "not-done":
            return "status not-done"
        term = concept_text(proc.get("code"))
        if not term:
            return "no procedure code or text"
        coding = first_coding(proc.get("code"), codes.CONDITION_SYSTEMS) or {}
        row = {
            "PRTRT": term,
            "PRDECOD": str(coding.get("display") or ""),
            "PRCODE": str(coding.get("code") or ""),
        }
        row["PRCODSYS"] = str(coding.get("system") or "")
        row["PRCAT"] = concept_text(proc.get("category"))
        sites = proc.get("bodySite", ())
        row["PRLOC"] = concept_text(sites[0]) if sites else ""
        if "performedDateTime" in proc:
            row["PRSTDTC"] = dtc(proc["performedDateTime"])
        else:
            row["PRSTDTC"], row["PRENDTC"] = period_start_end(proc.get("performedPeriod"))
        return "PR", [row]

    # --- the rest --------------------------------------------------------------------------------

    def account_others(self) -> None:
        handled = {
            "Patient",
            "ResearchSubject",
            "Observation",
            "MedicationStatement",
            "MedicationRequest",
            "MedicationAdministration",
            "AdverseEvent",
            "Condition",
            "Procedure",
        }
        for item in self.items:
            if item.rtype in handled:
                continue
            if item.source in self.used_context:
                domain = {"ResearchStudy": "DM", "Medication": "CM", "Specimen": "LB"}.get(
                    item.rtype, ""
                )
                self.report.mapped(item.rtype, domain, 0)
            else:
                self.report.skipped(item.rtype, NO_DOMAIN, item.source, item.where)

    def tables(self) -> dict[str, Table]:
        out: dict[str, Table] = {}
        for domain in DOMAINS:
            rows = self.rows.get(domain, [])
            if domain == "DM":
                rows.sort(key=lambda r: (r["STUDYID"], r["USUBJID"]))
            else:
                groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
                for row in rows:
                    groups[(row["STUDYID"], row["USUBJID"])].append(row)
                rows = []
                date_key, sort_key, src = _DATE_KEY[domain], _SORT_KEY[domain], f"{domain}SRCID"
                seq_name = f"{domain}SEQ"
                for key in sorted(groups):
                    group = _sorted_rows(groups[key], date_key, sort_key, src)
                    for seq, row in enumerate(group, start=1):
                        row[seq_name] = str(seq)
                    rows += group
            columns = COLUMNS[domain]
            blanks = [""] * len(columns)
            out[domain] = Table(
                domain, columns, [tuple(map(row.get, columns, blanks)) for row in rows]
            )
            if rows:
                self.report.rows[domain] = len(rows)
        return out


def _is_adverse_event(condition: JSON) -> bool:
    """A Condition recorded as an adverse event: a `category` coding's code or the category's text is
    in `codes.CONDITION_AE_CATEGORIES` (case-insensitive)."""
    for category in condition.get("category", ()):
        words = {code.lower() for code in coding_codes(category)}
        text = category.get("text")
        if isinstance(text, str):
            words.add(text.lower())
        if words & codes.CONDITION_AE_CATEGORIES:
            return True
    return False


def _condition_ae(condition: JSON, term: str, coding: JSON) -> dict[str, str]:
    """The AE row of a Condition recorded as an adverse event: AETERM / AEDECOD from `code`, AESTDTC
    from onset, AEENDTC from abatement (which R4 AdverseEvent lacks), AESEV from `severity`, AEOUT from
    `clinicalStatus`, AESPID from the first identifier, AECAT left empty (the category said AE)."""
    identifiers = [i for i in condition.get("identifier", ()) if i.get("value")]
    row = {"AESPID": str(identifiers[0]["value"]) if identifiers else "", "AETERM": term}
    row["AEDECOD"], row["AECODE"] = str(coding.get("display") or ""), str(coding.get("code") or "")
    row["AECODSYS"] = str(coding.get("system") or "")
    row["AESEV"] = _lookup(condition.get("severity"), codes.CONDITION_SEVERITY)
    row["AEOUT"] = _lookup(condition.get("clinicalStatus"), codes.CONDITION_AEOUT)
    row["AESTDTC"] = (
        dtc(condition.get("onsetDateTime")) or period_start_end(condition.get("onsetPeriod"))[0]
    )
    row["AEENDTC"] = (
        dtc(condition.get("abatementDateTime"))
        or period_start_end(condition.get("abatementPeriod"))[1]
    )
    return row


def _exposure(cm: dict[str, str]) -> dict[str, str]:
    """The EX row of a study-drug administration (made from its CM row: the same elements)."""
    names = {"CMTRT": "EXTRT", "CMCODE": "EXCODE", "CMCODSYS": "EXCODSYS", "CMDOSE": "EXDOSE"}
    names |= {"CMDOSU": "EXDOSU", "CMROUTE": "EXROUTE", "CMSTDTC": "EXSTDTC", "CMENDTC": "EXENDTC"}
    return {ex: cm.get(name, "") for name, ex in names.items()}


def _obj(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


_TEST_NAMES: Final = {
    domain: tuple(
        domain + name
        for name in (
            "TESTCD",
            "TEST",
            "LOINC",
            "ORRES",
            "ORRESU",
            "STRESC",
            "STRESN",
            "STRESU",
            "DTC",
        )
    )
    for domain in ("VS", "LB")
}
"""A test row's variable names per domain, built once (not per row)."""

_SRCID: Final = {domain: f"{domain}SRCID" for domain in DOMAINS}


def _row_text(row: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(row.items()))


def _sorted_rows(
    rows: list[dict[str, str]], date_key: str, sort_key: str, src: str
) -> list[dict[str, str]]:
    """`rows` sorted by (date, sort key, source, the whole row's text): the row's text, costly, is
    built only for the rows whose first three keys tie (a stable sort of a tie run by it gives the
    same order as the four-part key)."""
    keyed = sorted(
        ((r.get(date_key, ""), r.get(sort_key, ""), r[src]), i, r) for i, r in enumerate(rows)
    )
    out: list[dict[str, str]] = []
    start = 0
    while start < len(keyed):
        end = start + 1
        while end < len(keyed) and keyed[end][0] == keyed[start][0]:
            end += 1
        if end - start == 1:
            out.append(keyed[start][2])
        else:
            out += sorted((r for _, _, r in keyed[start:end]), key=_row_text)
        start = end
    return out


def _has_value(holder: JSON) -> bool:
    return any(map(str.startswith, holder, repeat("value")))  # keys of JSON: str; C-level loop


def _value(holder: JSON) -> tuple[str, str, str] | None:
    """(--ORRES, --ORRESU, UCUM code) as written, or None for a value type not mapped."""
    if "valueQuantity" in holder:
        found = quantity_text(holder["valueQuantity"])
        return found if found[0] else None
    if "valueCodeableConcept" in holder:
        text = concept_text(holder["valueCodeableConcept"])
        return (text, "", "") if text else None
    for key in ("valueString", "valueDateTime", "valueTime"):
        if isinstance(holder.get(key), str):
            return holder[key], "", ""
    if isinstance(holder.get("valueBoolean"), bool):
        return ("true" if holder["valueBoolean"] else "false"), "", ""
    if isinstance(holder.get("valueInteger"), int):
        return str(holder["valueInteger"]), "", ""
    return None


def _lookup(concept: Any, table: dict[str, str]) -> str:
    for code in sorted(coding_codes(concept)):
        found = table.get(code.lower().replace("-", "").replace(" ", "")) or table.get(code.lower())
        if found:
            return found
    return ""


def _frequency(timing: Any) -> str:
    if not isinstance(timing, dict):
        return ""
    if isinstance(timing.get("code"), dict):
        return concept_text(timing["code"])
    repeat = timing.get("repeat")
    if not isinstance(repeat, dict):
        return ""
    key = (
        str(repeat.get("frequency", "")),
        str(repeat.get("period", "")),
        str(repeat.get("periodUnit", "")),
    )
    return codes.FREQUENCY.get(key, "")


def _age(birth: str, reference: str) -> int | None:
    if len(birth) < 10 or len(reference) < 10:
        return None
    b, r = birth[:10], reference[:10]
    try:
        years = int(r[:4]) - int(b[:4]) - (1 if r[5:10] < b[5:10] else 0)
    except ValueError:
        return None
    return years if years >= 0 else None


def map_foreign(
    resources: Iterable[JSON | ForeignResource], options: ForeignOptions | None = None
) -> ForeignMapping:
    """Map FHIR R4 resources written by others to SDTM tables; every resource is accounted for in the
    report (mapped + skipped = read per resource type). The result does not depend on input order."""
    mapper = _Mapper(options or ForeignOptions())
    mapper.take(resources)
    mapper.items.sort(key=lambda item: item.source)
    mapper.build_subjects()
    mapper.map_events()
    mapper.account_others()
    mapper.items, mapper.index, mapper.resolved = [], {}, {}  # the rows are built: let them go
    tables = mapper.tables()
    return ForeignMapping(tables, mapper.report)
