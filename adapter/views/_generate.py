"""Writes the package's SQL-on-FHIR data files (`adapter/views/*.json`, `*.sql`, `domains.json`) from the
table below: `python -m adapter.views._generate`. The files are what ships; this is how they were made
(rerun it after changing a mapping, and the Pathling test checks the result).

Each domain has its ViewDefinitions (one per resource shape it reads), the SQL step a view cannot express
(the split of the identifier key into STUDYID/USUBJID/--SEQ, the joins on the subject or the study, the
"carried text wins" choice, the SDTM column order and row order) and, per output column, its exactness
on an engine such as Pathling: `exact` (the same text), `number` (the same number: an engine may print
`62.00` as `62`), `date` (the FHIR date: a --DTC with a time carries its exact text in a primitive
extension, which Pathling does not encode) or `code` (derived through a join, see docs/views.md).
"""

# ruff: noqa: RUF005
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mappings.terminology import CANONICAL_BASE, LOINC

SD = f"{CANONICAL_BASE}/StructureDefinition/"
SID = f"{CANONICAL_BASE}/sid/"
PROJECT_CS = f"{CANONICAL_BASE}/CodeSystem/trialfhir"
VAR = SD + "sdtm-variable"


def carried(name: str) -> str:
    return (
        f"extension('{VAR}').where(extension('name').value.ofType(string) = '{name}')"
        ".extension('value').value.ofType(string).first()"
    )


def key(domain: str) -> tuple[str, str]:
    return ("KEY", f"identifier.where(system = '{SID}sdtm/{domain.lower()}').value.first()")


def event_head(domain: str, visit: bool = True) -> list[tuple[str, str]]:
    head = [key(domain), ("EPOCH", f"extension('{SD}epoch').value.ofType(string).first()")]
    if visit:
        head += [
            (
                "VISITNUM",
                f"extension('{SD}visit').extension('visitnum').value.ofType(decimal).first()",
            ),
            ("VISIT", f"extension('{SD}visit').extension('visit').value.ofType(string).first()"),
        ]
    return head


def carried_columns(*names: str) -> list[tuple[str, str]]:
    return [(n, carried(n)) for n in names]


def view(
    name: str, resource: str, columns: list[tuple[str, str]], where: str | None = None, **extra: Any
) -> dict[str, Any]:
    select: list[dict[str, Any]] = [{"column": [{"name": n, "path": p} for n, p in columns]}]
    if "for_each" in extra:
        path, inner = extra["for_each"]
        select.append({"forEach": path, "column": [{"name": n, "path": p} for n, p in inner]})
    if "for_each_nested" in extra:
        outer, inner_path, inner = extra["for_each_nested"]
        select.append(
            {
                "forEach": outer,
                "select": [
                    {"forEach": inner_path, "column": [{"name": n, "path": p} for n, p in inner]}
                ],
            }
        )
    result: dict[str, Any] = {
        "resourceType": "ViewDefinition",
        "url": f"{CANONICAL_BASE}/ViewDefinition/{name}",
        "name": name,
        "status": "draft",
        "resource": resource,
        "select": select,
    }
    if where:
        result["where"] = [{"path": where}]
    return result


def row_view(
    domain: str, resource: str, columns: list[tuple[str, str]], visit: bool = True
) -> dict[str, Any]:
    where = f"identifier.where(system = '{SID}sdtm/{domain.lower()}').exists()"
    return view(f"sdtm_{domain.lower()}", resource, event_head(domain, visit) + columns, where)


def split(n: int) -> str:
    return f"element_at(split(KEY, '/'), {n})"


def order_sql(seq: str) -> str:
    return f"ORDER BY USUBJID, try_cast({seq} AS DECIMAL(38, 10)), {seq}"


def head_sql(domain: str, seq: str) -> list[str]:
    return [
        f"{split(1)} AS STUDYID",
        f"'{domain}' AS DOMAIN",
        f"{split(2)} AS USUBJID",
        f"{split(3)} AS {seq}",
    ]


def select_sql(view_name: str, columns: list[str], order: str) -> str:
    body = ",\n  ".join(columns)
    return f"SELECT\n  {body}\nFROM {view_name}\n{order}\n"


def number(name: str) -> str:
    """A FHIR decimal carried as written when it would not print so: the carried text wins."""
    return f"coalesce({name}_TEXT, CAST({name} AS STRING)) AS {name}"


OBS = "Observation"
MED = "MedicationAdministration"
QUANTITY_VALUE = "value.ofType(Quantity).value"

DOMAINS: dict[str, dict[str, Any]] = {}

# --- TS, TA: the ResearchStudy ----------------------------------------------------------------------
_TS_CARRIED = ("TSGRPID", "TSVALNF", "TSVALCD", "TSVCDREF", "TSVCDVER")
DOMAINS["TS"] = {
    "views": [
        view(
            "sdtm_ts",
            "ResearchStudy",
            [("STUDYID", f"identifier.where(system = '{SID}studyid').value.first()")],
            for_each=(
                f"extension('{SD}trial-summary')",
                [
                    (n, f"extension('{n}').value.ofType(string).first()")
                    for n in ("TSSEQ", "TSPARMCD", "TSPARM", "TSVAL")
                ]
                + carried_columns(*_TS_CARRIED),
            ),
        )
    ],
    "sql": select_sql(
        "sdtm_ts",
        [
            "STUDYID",
            "'TS' AS DOMAIN",
            "TSSEQ",
            "TSGRPID",
            "TSPARMCD",
            "TSPARM",
            "TSVAL",
            "TSVALNF",
            "TSVALCD",
            "TSVCDREF",
            "TSVCDVER",
        ],
        "ORDER BY STUDYID, TSPARMCD, try_cast(TSSEQ AS INT)",
    ),
    "columns": {
        "STUDYID": "exact",
        "DOMAIN": "exact",
        "TSSEQ": "exact",
        "TSGRPID": "exact",
        "TSPARMCD": "exact",
        "TSPARM": "exact",
        "TSVAL": "exact",
        "TSVALNF": "exact",
        "TSVALCD": "exact",
        "TSVCDREF": "exact",
        "TSVCDVER": "exact",
    },
    "row_order": "unordered",
}
_TA_COLUMNS = ("ARMCD", "ARM", "TAETORD", "ETCD", "ELEMENT", "EPOCH")
DOMAINS["TA"] = {
    "views": [
        view(
            "sdtm_ta",
            "ResearchStudy",
            [("STUDYID", f"identifier.where(system = '{SID}studyid').value.first()")],
            for_each_nested=(
                "arm",
                f"extension('{SD}arm-element')",
                [("TAROW", "extension('row').value.ofType(positiveInt).first()")]
                + [(n, f"extension('{n}').value.ofType(string).first()") for n in _TA_COLUMNS]
                + carried_columns("TABRANCH", "TATRANS"),
            ),
        )
    ],
    "sql": select_sql(
        "sdtm_ta",
        ["STUDYID", "'TA' AS DOMAIN", *_TA_COLUMNS, "TABRANCH", "TATRANS"],
        "ORDER BY STUDYID, TAROW",
    ),
    "columns": {c: "exact" for c in ("STUDYID", "DOMAIN", *_TA_COLUMNS, "TABRANCH", "TATRANS")},
    "row_order": "exact",
}

# --- DM, SE: ResearchSubject + Patient (+ the study's arms for the arm codes) ----------------------
DOMAINS["DM"] = {
    "views": [
        view(
            "sdtm_dm_subject",
            "ResearchSubject",
            [
                ("KEY", f"identifier.where(system = '{SID}research-subject').value.first()"),
                ("PATIENT", "individual.getReferenceKey(Patient)"),
                ("STUDY", "study.getReferenceKey(ResearchStudy)"),
                ("RFSTDTC", "period.start"),
                ("RFENDTC", "period.end"),
                ("ARM", "assignedArm"),
                ("ACTARM", "actualArm"),
            ]
            + carried_columns("SUBJID", "SITEID", "DMDTC", "ARMCD", "ACTARMCD"),
        ),
        view(
            "sdtm_dm_patient",
            "Patient",
            [
                ("PATIENT", "getResourceKey()"),
                ("GENDER", "gender"),
                ("BRTHDTC", "birthDate"),
                ("AGE", f"extension('{SD}age').value.ofType(Quantity).value.first()"),
                ("AGEU", f"extension('{SD}age').value.ofType(Quantity).unit.first()"),
                ("COUNTRY", "address.first().country"),
                ("SEX_TEXT", carried("SEX")),
                ("AGE_TEXT", carried("AGE")),
                ("RACE", carried("RACE")),
                ("ETHNIC", carried("ETHNIC")),
            ],
        ),
        view(
            "sdtm_study_arm",
            "ResearchStudy",
            [("STUDY", "getResourceKey()")],
            for_each=(
                "arm",
                [
                    ("NAME", "name"),
                    ("ARMCD", f"extension('{SD}arm-code').value.ofType(code).first()"),
                ],
            ),
        ),
    ],
    "sql": """SELECT
  element_at(split(s.KEY, '/'), 1) AS STUDYID,
  'DM' AS DOMAIN,
  element_at(split(s.KEY, '/'), 2) AS USUBJID,
  s.SUBJID,
  s.RFSTDTC,
  s.RFENDTC,
  s.SITEID,
  p.BRTHDTC,
  coalesce(p.AGE_TEXT, CAST(p.AGE AS STRING)) AS AGE,
  p.AGEU,
  coalesce(p.SEX_TEXT, CASE p.GENDER WHEN 'male' THEN 'M' WHEN 'female' THEN 'F'
    WHEN 'unknown' THEN 'U' END) AS SEX,
  coalesce(s.ARMCD, assigned.ARMCD) AS ARMCD,
  s.ARM,
  coalesce(s.ACTARMCD, actual.ARMCD) AS ACTARMCD,
  s.ACTARM,
  p.RACE,
  p.ETHNIC,
  p.COUNTRY,
  s.DMDTC
FROM sdtm_dm_subject s
LEFT JOIN sdtm_dm_patient p ON p.PATIENT = s.PATIENT
LEFT JOIN sdtm_study_arm assigned ON assigned.STUDY = s.STUDY AND assigned.NAME = s.ARM
LEFT JOIN sdtm_study_arm actual ON actual.STUDY = s.STUDY AND actual.NAME = s.ACTARM
ORDER BY USUBJID
""",
    "columns": {
        "STUDYID": "exact",
        "DOMAIN": "exact",
        "USUBJID": "exact",
        "SUBJID": "exact",
        "RFSTDTC": "date",
        "RFENDTC": "date",
        "SITEID": "exact",
        "BRTHDTC": "date",
        "AGE": "number",
        "AGEU": "exact",
        "SEX": "exact",
        "ARMCD": "code",
        "ARM": "exact",
        "ACTARMCD": "code",
        "ACTARM": "exact",
        "RACE": "exact",
        "ETHNIC": "exact",
        "COUNTRY": "exact",
        "DMDTC": "exact",
    },
    "row_order": "exact",
}
_SE = ("SESEQ", "ETCD", "ELEMENT", "EPOCH")
DOMAINS["SE"] = {
    "views": [
        view(
            "sdtm_se",
            "ResearchSubject",
            [("KEY", f"identifier.where(system = '{SID}research-subject').value.first()")],
            for_each=(
                f"extension('{SD}subject-element')",
                [(n, f"extension('{n}').value.ofType(string).first()") for n in _SE]
                + [
                    ("SESTDTC", "extension('period').value.ofType(Period).start.first()"),
                    ("SEENDTC", "extension('period').value.ofType(Period).end.first()"),
                ]
                + carried_columns("TAETORD", "SEUPDES"),
            ),
        )
    ],
    "sql": select_sql(
        "sdtm_se",
        [
            f"{split(1)} AS STUDYID",
            "'SE' AS DOMAIN",
            f"{split(2)} AS USUBJID",
            "SESEQ",
            "ETCD",
            "ELEMENT",
            "SESTDTC",
            "SEENDTC",
            "TAETORD",
            "EPOCH",
            "SEUPDES",
        ],
        order_sql("SESEQ"),
    ),
    "columns": {
        "STUDYID": "exact",
        "DOMAIN": "exact",
        "USUBJID": "exact",
        "SESEQ": "exact",
        "ETCD": "exact",
        "ELEMENT": "exact",
        "SESTDTC": "date",
        "SEENDTC": "date",
        "TAETORD": "exact",
        "EPOCH": "exact",
        "SEUPDES": "exact",
    },
    "row_order": "exact",
}


def event_domain(
    domain: str,
    resource: str,
    columns: list[tuple[str, str]],
    sql: list[str],
    kinds: dict[str, str],
    visit: bool = True,
) -> None:
    """One view over `resource` (its rows told apart by the identifier system), the SQL step and
    the columns' exactness; `visit`: the domain has VISITNUM and VISIT (AE and MH have not)."""
    seq = f"{domain}SEQ"
    head = {"STUDYID": "exact", "DOMAIN": "exact", "USUBJID": "exact", seq: "exact"}
    tail = (
        {"VISITNUM": "number", "VISIT": "exact", "EPOCH": "exact"} if visit else {"EPOCH": "exact"}
    )
    tail_sql = ["CAST(VISITNUM AS STRING) AS VISITNUM", "VISIT", "EPOCH"] if visit else ["EPOCH"]
    DOMAINS[domain] = {
        "views": [row_view(domain, resource, columns, visit)],
        "sql": select_sql(
            f"sdtm_{domain.lower()}", head_sql(domain, seq) + sql + tail_sql, order_sql(seq)
        ),
        "columns": {**head, **kinds, **tail},
        "row_order": "exact",
    }


def _code(domain: str) -> tuple[str, str]:
    return (f"{domain}TESTCD", f"code.coding.where(system = '{PROJECT_CS}').code.first()")


event_domain(
    "VS",
    OBS,
    [
        _code("VS"),
        ("VSTEST", "code.text"),
        ("VSSTRESN", f"{QUANTITY_VALUE}"),
        ("VSSTRESU_Q", "value.ofType(Quantity).unit"),
        ("VSDTC", "effective.ofType(dateTime)"),
        ("VSLOC", "bodySite.text"),
        ("VSSTRESN_TEXT", carried("VSSTRESN")),
        ("VSSTRESU_TEXT", carried("VSSTRESU")),
    ]
    + carried_columns("VSORRES", "VSORRESU", "VSSTRESC", "VSSTAT", "VSREASND", "VSPOS", "VSBLFL"),
    [
        "VSTESTCD",
        "VSTEST",
        "VSORRES",
        "VSORRESU",
        "VSSTRESC",
        number("VSSTRESN"),
        "coalesce(VSSTRESU_Q, VSSTRESU_TEXT) AS VSSTRESU",
        "VSSTAT",
        "VSREASND",
        "VSPOS",
        "VSLOC",
        "VSBLFL",
        "VSDTC",
    ],
    {
        "VSTESTCD": "exact",
        "VSTEST": "exact",
        "VSORRES": "exact",
        "VSORRESU": "exact",
        "VSSTRESC": "exact",
        "VSSTRESN": "number",
        "VSSTRESU": "exact",
        "VSSTAT": "exact",
        "VSREASND": "exact",
        "VSPOS": "exact",
        "VSLOC": "exact",
        "VSBLFL": "exact",
        "VSDTC": "date",
    },
)
event_domain(
    "QS",
    OBS,
    [
        _code("QS"),
        ("QSTEST", "code.text"),
        ("QSSTRESN", f"{QUANTITY_VALUE}"),
        ("QSDTC", "effective.ofType(dateTime)"),
        ("QSSTRESN_TEXT", carried("QSSTRESN")),
    ]
    + carried_columns(
        "QSCAT", "QSSCAT", "QSORRES", "QSSTRESC", "QSSTAT", "QSREASND", "QSBLFL", "QSEVAL"
    ),
    [
        "QSTESTCD",
        "QSTEST",
        "QSCAT",
        "QSSCAT",
        "QSORRES",
        "QSSTRESC",
        number("QSSTRESN"),
        "QSSTAT",
        "QSREASND",
        "QSBLFL",
        "QSEVAL",
        "QSDTC",
    ],
    {
        "QSTESTCD": "exact",
        "QSTEST": "exact",
        "QSCAT": "exact",
        "QSSCAT": "exact",
        "QSORRES": "exact",
        "QSSTRESC": "exact",
        "QSSTRESN": "number",
        "QSSTAT": "exact",
        "QSREASND": "exact",
        "QSBLFL": "exact",
        "QSEVAL": "exact",
        "QSDTC": "date",
    },
)
event_domain(
    "RS",
    OBS,
    [
        _code("RS"),
        ("RSTEST", "code.text"),
        ("RSORRES", "value.ofType(CodeableConcept).text"),
        ("RSDTC", "effective.ofType(dateTime)"),
    ]
    + carried_columns("RSCAT", "RSSTRESC", "RSEVAL"),
    ["RSTESTCD", "RSTEST", "RSCAT", "RSORRES", "RSSTRESC", "RSEVAL", "RSDTC"],
    {
        "RSTESTCD": "exact",
        "RSTEST": "exact",
        "RSCAT": "exact",
        "RSORRES": "exact",
        "RSSTRESC": "exact",
        "RSEVAL": "exact",
        "RSDTC": "date",
    },
)
event_domain(
    "EX",
    MED,
    [
        ("EXTRT", "medication.ofType(CodeableConcept).text"),
        (
            "DOSE_PRESCRIBED",
            f"dosage.extension('{SD}prescribed-dose').value.ofType(Quantity).value.first()",
        ),
        (
            "UNIT_PRESCRIBED",
            f"dosage.extension('{SD}prescribed-dose').value.ofType(Quantity).unit.first()",
        ),
        ("DOSE_GIVEN", "dosage.dose.value"),
        ("UNIT_GIVEN", "dosage.dose.unit"),
        ("EXDOSFRQ", "dosage.text"),
        ("EXROUTE", "dosage.route.text"),
        ("START", "effective.ofType(Period).start"),
        ("END", "effective.ofType(Period).end"),
        ("AT", "effective.ofType(dateTime)"),
        ("EXDOSE_TEXT", carried("EXDOSE")),
        ("EXDOSU_TEXT", carried("EXDOSU")),
    ]
    + carried_columns("EXDOSFRM", "EXLOT", "EXADJ"),
    [
        "EXTRT",
        "coalesce(EXDOSE_TEXT, CAST(coalesce(DOSE_PRESCRIBED, DOSE_GIVEN) AS STRING)) AS EXDOSE",
        "coalesce(EXDOSU_TEXT, CASE WHEN DOSE_PRESCRIBED IS NOT NULL THEN UNIT_PRESCRIBED "
        "ELSE UNIT_GIVEN END) AS EXDOSU",
        "EXDOSFRM",
        "EXDOSFRQ",
        "EXROUTE",
        "EXLOT",
        "EXADJ",
        "coalesce(START, AT) AS EXSTDTC",
        "END AS EXENDTC",
    ],
    {
        "EXTRT": "exact",
        "EXDOSE": "number",
        "EXDOSU": "exact",
        "EXDOSFRM": "exact",
        "EXDOSFRQ": "exact",
        "EXROUTE": "exact",
        "EXLOT": "exact",
        "EXADJ": "exact",
        "EXSTDTC": "date",
        "EXENDTC": "date",
    },
)
event_domain(
    "CM",
    MED,
    [
        ("CMTRT", "medication.ofType(CodeableConcept).text"),
        ("CMDOSE_Q", "dosage.dose.value"),
        ("CMDOSU_Q", "dosage.dose.unit"),
        ("CMDOSFRQ", "dosage.text"),
        ("CMROUTE", "dosage.route.text"),
        ("START", "effective.ofType(Period).start"),
        ("END", "effective.ofType(Period).end"),
        ("AT", "effective.ofType(dateTime)"),
        ("CMINDC", "reasonCode.first().text"),
        ("CMCAT", "category.text"),
        ("CMDOSE_TEXT", carried("CMDOSE")),
        ("CMDOSU_TEXT", carried("CMDOSU")),
    ]
    + carried_columns("CMDECOD", "CMDOSFRM"),
    [
        "CMTRT",
        "CMDECOD",
        "CMCAT",
        "CMINDC",
        "coalesce(CMDOSE_TEXT, CAST(CMDOSE_Q AS STRING)) AS CMDOSE",
        "coalesce(CMDOSU_TEXT, CMDOSU_Q) AS CMDOSU",
        "CMDOSFRM",
        "CMDOSFRQ",
        "CMROUTE",
        "coalesce(START, AT) AS CMSTDTC",
        "coalesce(END, AT) AS CMENDTC",
    ],
    {
        "CMTRT": "exact",
        "CMDECOD": "exact",
        "CMCAT": "exact",
        "CMINDC": "exact",
        "CMDOSE": "number",
        "CMDOSU": "exact",
        "CMDOSFRM": "exact",
        "CMDOSFRQ": "exact",
        "CMROUTE": "exact",
        "CMSTDTC": "date",
        "CMENDTC": "date",
    },
)
event_domain(
    "PR",
    "Procedure",
    [
        ("PRTRT", "code.text"),
        ("PRCAT", "category.text"),
        ("PRLOC", "bodySite.first().text"),
        ("START", "performed.ofType(Period).start"),
        ("END", "performed.ofType(Period).end"),
        ("AT", "performed.ofType(dateTime)"),
    ]
    + carried_columns("PRREFID", "PRLAT"),
    [
        "PRREFID",
        "PRTRT",
        "PRCAT",
        "PRLOC",
        "PRLAT",
        "coalesce(START, AT) AS PRSTDTC",
        "END AS PRENDTC",
    ],
    {
        "PRREFID": "exact",
        "PRTRT": "exact",
        "PRCAT": "exact",
        "PRLOC": "exact",
        "PRLAT": "exact",
        "PRSTDTC": "date",
        "PRENDTC": "date",
    },
)
event_domain(
    "MI",
    OBS,
    [
        _code("MI"),
        ("MITEST", "code.text"),
        ("MISTRESN", f"{QUANTITY_VALUE}"),
        ("ANSWER", "value.ofType(CodeableConcept).text"),
        ("FREE_TEXT", "value.ofType(string)"),
        ("SPECIMEN", f"specimen.identifier.where(system = '{SID}specimen').value.first()"),
        ("MILOC", "bodySite.text"),
        ("MIMETHOD", "method.text"),
        ("MIDTC", "effective.ofType(dateTime)"),
        ("MISTRESN_TEXT", carried("MISTRESN")),
        ("MISTRESC_TEXT", carried("MISTRESC")),
    ]
    + carried_columns("MIORRES", "MIORRESU", "MISTRESU", "MISPEC", "MISPCCND", "MILAT"),
    [
        "element_at(split(SPECIMEN, '/'), 3) AS MIREFID",
        "MITESTCD",
        "MITEST",
        "MIORRES",
        "MIORRESU",
        "coalesce(MISTRESC_TEXT, ANSWER, FREE_TEXT) AS MISTRESC",
        number("MISTRESN"),
        "MISTRESU",
        "MISPEC",
        "MISPCCND",
        "MILOC",
        "MILAT",
        "MIMETHOD",
        "MIDTC",
    ],
    {
        "MIREFID": "exact",
        "MITESTCD": "exact",
        "MITEST": "exact",
        "MIORRES": "exact",
        "MIORRESU": "exact",
        "MISTRESC": "exact",
        "MISTRESN": "number",
        "MISTRESU": "exact",
        "MISPEC": "exact",
        "MISPCCND": "exact",
        "MILOC": "exact",
        "MILAT": "exact",
        "MIMETHOD": "exact",
        "MIDTC": "date",
    },
)


event_domain(
    "LB",
    OBS,
    [
        _code("LB"),
        ("LBTEST", "code.text"),
        ("LBLOINC_CODING", f"code.coding.where(system = '{LOINC}').code.first()"),
        ("LBSTRESN", QUANTITY_VALUE),
        ("LBSTRESU_Q", "value.ofType(Quantity).unit"),
        ("LBSTRESC_STRING", "value.ofType(string)"),
        ("LBORNRLO", "referenceRange.first().low.value"),
        ("LBORNRHI", "referenceRange.first().high.value"),
        ("LBNRIND", "interpretation.first().text"),
        ("LBSPEC", "specimen.display"),
        ("LBMETHOD", "method.text"),
        ("LBDTC", "effective.ofType(dateTime)"),
    ]
    + [
        (f"{n}_TEXT", carried(n))
        for n in ("LBLOINC", "LBSTRESN", "LBSTRESU", "LBSTRESC", "LBORNRLO", "LBORNRHI")
    ]
    + carried_columns(
        "LBCAT", "LBSCAT", "LBORRES", "LBORRESU", "LBSTAT", "LBREASND", "LBBLFL", "LBFAST"
    ),
    [
        "LBTESTCD",
        "LBTEST",
        "LBCAT",
        "LBSCAT",
        "coalesce(LBLOINC_TEXT, LBLOINC_CODING) AS LBLOINC",
        "LBORRES",
        "LBORRESU",
        number("LBORNRLO"),
        number("LBORNRHI"),
        "coalesce(LBSTRESC_TEXT, LBSTRESC_STRING) AS LBSTRESC",
        number("LBSTRESN"),
        "coalesce(LBSTRESU_Q, LBSTRESU_TEXT) AS LBSTRESU",
        "LBNRIND",
        "LBSTAT",
        "LBREASND",
        "LBSPEC",
        "LBMETHOD",
        "LBBLFL",
        "LBFAST",
        "LBDTC",
    ],
    {
        "LBTESTCD": "exact",
        "LBTEST": "exact",
        "LBCAT": "exact",
        "LBSCAT": "exact",
        "LBLOINC": "exact",
        "LBORRES": "exact",
        "LBORRESU": "exact",
        "LBORNRLO": "number",
        "LBORNRHI": "number",
        "LBSTRESC": "exact",
        "LBSTRESN": "number",
        "LBSTRESU": "exact",
        "LBNRIND": "exact",
        "LBSTAT": "exact",
        "LBREASND": "exact",
        "LBSPEC": "exact",
        "LBMETHOD": "exact",
        "LBBLFL": "exact",
        "LBFAST": "exact",
        "LBDTC": "date",
    },
)
_AE_CARRIED = (
    "AESPID", "AEDECOD", "AEBODSYS", "AEACN", "AESCONG", "AESDISAB", "AESDTH", "AESHOSP",
    "AESLIFE", "AESMIE", "AEDTC", "AEENDTC",
)  # fmt: skip
event_domain(
    "AE",
    "AdverseEvent",
    [
        ("AETERM", "event.text"),
        ("AECAT", "category.first().text"),
        ("AESER", "seriousness.text"),
        ("AESEV", "severity.text"),
        ("AEREL", "suspectEntity.first().causality.first().assessment.text"),
        ("AEOUT", "outcome.text"),
        ("AESTDTC", "date"),
    ]
    + carried_columns(*_AE_CARRIED),
    [
        "AESPID",
        "AETERM",
        "AEDECOD",
        "AECAT",
        "AEBODSYS",
        "AESER",
        "AESEV",
        "AEREL",
        "AEACN",
        "AEOUT",
        "AESCONG",
        "AESDISAB",
        "AESDTH",
        "AESHOSP",
        "AESLIFE",
        "AESMIE",
        "AEDTC",
        "AESTDTC",
        "AEENDTC",
    ],
    {
        **{c: "exact" for c in ("AETERM", "AECAT", "AESER", "AESEV", "AEREL", "AEOUT")},
        **{c: "exact" for c in _AE_CARRIED},
        "AESTDTC": "date",
    },
    visit=False,
)
_MH_CARRIED = ("MHDECOD", "MHSCAT", "MHBODSYS", "MHPRESP", "MHOCCUR", "MHENRF")
event_domain(
    "MH",
    "Condition",
    [
        ("MHTERM", "code.text"),
        ("MHCAT", "category.first().text"),
        ("MHSTDTC", "onset.ofType(dateTime)"),
        ("MHENDTC", "abatement.ofType(dateTime)"),
        ("MHDTC", "recordedDate"),
    ]
    + carried_columns(*_MH_CARRIED),
    [
        "MHTERM",
        "MHDECOD",
        "MHCAT",
        "MHSCAT",
        "MHBODSYS",
        "MHPRESP",
        "MHOCCUR",
        "MHDTC",
        "MHSTDTC",
        "MHENDTC",
        "MHENRF",
    ],
    {
        "MHTERM": "exact",
        "MHCAT": "exact",
        **{c: "exact" for c in _MH_CARRIED},
        "MHDTC": "date",
        "MHSTDTC": "date",
        "MHENDTC": "date",
    },
    visit=False,
)


def main() -> None:
    folder = Path(__file__).parent
    index: dict[str, Any] = {}
    for domain, spec in DOMAINS.items():
        names = []
        for definition in spec["views"]:
            path = folder / f"{definition['name']}.ViewDefinition.json"
            path.write_text(json.dumps(definition, indent=2) + "\n", encoding="utf-8")
            names.append(definition["name"])
        sql = folder / f"{domain.lower()}.sql"
        sql.write_text(
            f"-- {domain}: the SQL step over the views {', '.join(names)}\n" + spec["sql"]
        )
        index[domain] = {
            "views": names,
            "sql": sql.name,
            "columns": spec["columns"],
            "row_order": spec["row_order"],
        }
    (folder / "domains.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
