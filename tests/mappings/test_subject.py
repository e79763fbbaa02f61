"""DM and SE <-> Patient, ResearchSubject (with its subject elements) and the dermatomyositis Condition."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.fhir_files import dumps, loads
from mappings import subject
from mappings.identity import (
    SID_RESEARCH_SUBJECT,
    SID_USUBJID,
    patient_id,
    research_subject_id,
    resource_id,
    study_id,
)
from mappings.primitives import read_variable_extensions
from mappings.sdtm import Table, Trial
from mappings.terminology import (
    EXT_AGE,
    EXT_ARM_CODE,
    EXT_SDTM_DTC,
    EXT_SUBJECT_ELEMENT,
    ICD10CM,
    SNOMED,
)
from mappings.trial import fhir_to_trial, trial_to_fhir

Validate = Callable[[dict[str, Any]], None]

DM_COLUMNS = [
    "STUDYID", "DOMAIN", "USUBJID", "SUBJID", "RFSTDTC", "RFENDTC", "SITEID", "BRTHDTC", "AGE",
    "AGEU", "SEX", "RACE", "ARMCD", "ARM", "ACTARMCD", "ACTARM", "COUNTRY", "DMDTC", "BMIFLAG",
]  # fmt: skip
SE_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "SESEQ", "ETCD", "ELEMENT", "SESTDTC", "SEENDTC", "EPOCH", "SEUPDES"]  # fmt: skip


def table(domain: str, columns: list[str], rows: list[list[str]]) -> Table:
    return Table(domain, list(columns), [dict(zip(columns, row, strict=True)) for row in rows])


def example_trial() -> Trial:
    dm = table(
        "DM",
        DM_COLUMNS,
        [
            ["S-1", "DM", "S-1/001", "001", "1990-05-12", "1990-08-04T14:30", "01", "1949-04",
             "41.50", "YEARS", "F", "WHITE", "IVIG", "Immune globulin, 2 g/kg", "IVIG-PBO",
             'IVIG, then "placebo"', "USA", "1990-05-01", "Y"],
            ["S-1", "DM", "S-1/002", "002", "1990-06", "", "01", "", "34", "YEARS",
             "UNDIFFERENTIATED", "", "PBO", "Placebo", "A  B", "Plácebo", "", "", ""],
            ["S-1", "DM", "S-1/003", "003", "", "", "02", "1950-01-01T08:00", "", "", "M", "",
             "", "", "", "", "CAN", "", ""],
        ],
    )  # fmt: skip
    se = table(
        "SE",
        SE_COLUMNS,
        [
            ["S-1", "SE", "S-1/001", "1", "SCRN", "Screening", "1990-04-18", "1990-05-12", "SCREENING", ""],
            ["S-1", "SE", "S-1/001", "2", "IVIG", "IVIG", "1990-05-12T09:00", "1990-08", "TREATMENT 1", "no, really"],
            ["S-1", "SE", "S-1/001", "10", "PBO", "Placebo", "1990-08", "", "TREATMENT 2", ""],
            ["S-1", "SE", "S-1/002", "1", "SCRN", "Screening", "", "", "SCREENING", ""],
        ],
    )  # fmt: skip
    return {"DM": dm, "SE": se}


def resources_of(trial: Trial, kind: str) -> list[dict[str, Any]]:
    return [r for r in subject.to_fhir(trial) if r["resourceType"] == kind]


def test_dm_and_se_come_back_as_written() -> None:
    trial = example_trial()
    back = fhir_to_trial(trial_to_fhir(trial))
    for domain in ("DM", "SE"):
        assert back[domain].columns == trial[domain].columns
        assert back[domain].rows == trial[domain].rows


def test_every_resource_validates(validate: Validate) -> None:
    for resource in subject.to_fhir(example_trial()):
        validate(resource)


def test_one_patient_research_subject_and_condition_per_dm_row_in_reference_order() -> None:
    kinds = [r["resourceType"] for r in subject.to_fhir(example_trial())]
    assert kinds == ["Patient"] * 3 + ["ResearchSubject"] * 3 + ["Condition"] * 3


def test_patient_holds_demographics_natively() -> None:
    first, second, third = resources_of(example_trial(), "Patient")
    assert first["id"] == patient_id("S-1", "S-1/001")
    assert first["identifier"] == [{"system": SID_USUBJID, "value": "S-1/001"}]
    assert first["gender"] == "female"
    assert first["birthDate"] == "1949-04"
    assert first["address"] == [{"country": "USA"}]
    age = next(e["valueQuantity"] for e in first["extension"] if e["url"] == EXT_AGE)
    assert age["value"] == Decimal("41.50") and str(age["value"]) == "41.50"
    assert (age["unit"], age["code"]) == ("YEARS", "a")
    assert read_variable_extensions(first) == {"RACE": "WHITE"}
    assert second["gender"] == "other"
    assert read_variable_extensions(second) == {"SEX": "UNDIFFERENTIATED"}
    assert "birthDate" not in second  # AGE alone never invents a birth date
    assert third["birthDate"] == "1950-01-01"
    assert third["_birthDate"]["extension"] == [
        {"url": EXT_SDTM_DTC, "valueString": "1950-01-01T08:00"}
    ]


def test_research_subject_links_study_and_patient_and_holds_the_arms() -> None:
    first, second, third = resources_of(example_trial(), "ResearchSubject")
    assert first["id"] == research_subject_id("S-1", "S-1/001")
    # the identifier value is STUDYID/USUBJID, each part escaped so the key splits back unambiguously
    assert first["identifier"] == [{"system": SID_RESEARCH_SUBJECT, "value": "S-1/S-1%2F001"}]
    assert first["study"] == {"reference": f"ResearchStudy/{study_id('S-1')}"}
    assert first["individual"] == {"reference": f"Patient/{patient_id('S-1', 'S-1/001')}"}
    assert first["assignedArm"] == "Immune globulin, 2 g/kg"
    assert first["_assignedArm"]["extension"] == [{"url": EXT_ARM_CODE, "valueCode": "IVIG"}]
    assert first["actualArm"] == 'IVIG, then "placebo"'
    assert first["_actualArm"]["extension"] == [{"url": EXT_ARM_CODE, "valueCode": "IVIG-PBO"}]
    assert first["period"]["start"] == "1990-05-12"
    assert first["period"]["end"] == "1990-08-04"
    assert first["period"]["_end"]["extension"][0]["valueString"] == "1990-08-04T14:30"
    assert first["status"] == "off-study"
    assert second["status"] == "on-study"
    # "A  B" is not a FHIR code: it rides as an sdtm-variable instead
    assert "_actualArm" not in second
    assert read_variable_extensions(second)["ACTARMCD"] == "A  B"
    assert "assignedArm" not in third and "period" not in third


def test_each_se_row_is_one_subject_element_on_its_research_subject() -> None:
    first, second, third = resources_of(example_trial(), "ResearchSubject")

    def elements(resource: dict[str, Any]) -> list[dict[str, Any]]:
        return [e for e in resource.get("extension", ()) if e["url"] == EXT_SUBJECT_ELEMENT]

    assert [len(elements(r)) for r in (first, second, third)] == [3, 1, 0]
    parts = {p["url"]: p for p in elements(first)[1]["extension"]}
    assert parts["SESEQ"]["valueString"] == "2"
    assert parts["EPOCH"]["valueString"] == "TREATMENT 1"
    assert parts["period"]["valuePeriod"]["start"] == "1990-05-12"
    assert parts["period"]["valuePeriod"]["end"] == "1990-08"
    assert read_variable_extensions(elements(first)[1]) == {"SEUPDES": "no, really"}


def test_condition_is_dermatomyositis_of_the_patient() -> None:
    conditions = resources_of(example_trial(), "Condition")
    assert len({c["id"] for c in conditions}) == 3
    first = conditions[0]
    assert first["subject"] == {"reference": f"Patient/{patient_id('S-1', 'S-1/001')}"}
    codings = {(c["system"], c["code"]) for c in first["code"]["coding"]}
    assert codings == {(SNOMED, "396230008"), (ICD10CM, "M33.12")}
    assert first["clinicalStatus"]["coding"][0]["code"] == "active"
    assert first["verificationStatus"]["coding"][0]["code"] == "confirmed"


def test_dm_without_se_comes_back_without_se() -> None:
    trial = example_trial()
    del trial["SE"]
    back = fhir_to_trial(trial_to_fhir(trial))
    assert "SE" not in back
    assert back["DM"].rows == trial["DM"].rows


def test_se_rows_without_a_dm_row_are_refused() -> None:
    trial = example_trial()
    trial["DM"].rows.pop(0)
    with pytest.raises(ValueError, match="without a DM row"):
        list(subject.to_fhir(trial))


def test_ids_are_deterministic_and_unique() -> None:
    first = [r["id"] for r in trial_to_fhir(example_trial())]
    assert first == [r["id"] for r in trial_to_fhir(example_trial())]
    assert len(set(first)) == len(first)


def test_rows_come_back_in_sort_order_with_seq_as_a_number() -> None:
    trial = example_trial()
    shuffled = example_trial()
    shuffled["DM"].rows.reverse()
    shuffled["SE"].rows.reverse()
    back = fhir_to_trial(trial_to_fhir(shuffled))
    assert [r["SESEQ"] for r in back["SE"].rows] == ["1", "2", "10", "1"]
    assert back["DM"].rows == trial["DM"].rows


# --- properties ------------------------------------------------------------------------------------

TRICKY = st.sampled_from([",", '"', "'", "/", "%", "|", "\n", " ", "é", "ß", "µ", "中", "😀", "\\"])
TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), TRICKY
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() != "")
CELL = st.one_of(st.just(""), TEXT, st.sampled_from([" ", "  ", "\n", "\t "]))
DECIMAL = st.from_regex(r"(0|[1-9][0-9]{0,2})(\.[0-9]{1,3})?", fullmatch=True)


@st.composite
def dtc(draw: st.DrawFn) -> str:
    text = str(draw(st.integers(min_value=1900, max_value=2030)))
    if draw(st.booleans()):
        text += f"-{draw(st.integers(1, 12)):02d}"
        if draw(st.booleans()):
            text += f"-{draw(st.integers(1, 28)):02d}"
            if draw(st.booleans()):
                text += f"T{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
                if draw(st.booleans()):
                    text += f":{draw(st.integers(0, 59)):02d}"
    return text


DATE = st.one_of(st.just(""), dtc())
CODE = st.one_of(st.sampled_from(["", "IVIG", "PBO", "IVIG-PBO", "A  B", " X"]), TEXT)
EXTRA_NAME = st.from_regex(r"X[A-Z0-9]{1,7}", fullmatch=True)

DM_CELLS: dict[str, st.SearchStrategy[str]] = {
    "SUBJID": CELL,
    "SITEID": CELL,
    "AGE": st.one_of(st.just(""), DECIMAL),
    "AGEU": st.one_of(st.sampled_from(["", "YEARS", "MONTHS"]), TEXT),
    "SEX": st.one_of(st.sampled_from(["", "M", "F", "U", "UNDIFFERENTIATED", "m"]), TEXT),
    "ARMCD": CODE,
    "ARM": CELL,
    "ACTARMCD": CODE,
    "ACTARM": CELL,
    "RFSTDTC": DATE,
    "RFENDTC": DATE,
    "BRTHDTC": DATE,
    "RACE": CELL,
    "ETHNIC": CELL,
    "COUNTRY": CELL,
    "DMDTC": DATE,
}
DM_OPTIONAL = ["BRTHDTC", "RACE", "ETHNIC", "COUNTRY", "DMDTC"]
SE_CELLS: dict[str, st.SearchStrategy[str]] = {
    "ETCD": CELL,
    "ELEMENT": CELL,
    "EPOCH": CELL,
    "SESTDTC": DATE,
    "SEENDTC": DATE,
    "TAETORD": st.one_of(st.just(""), st.integers(1, 9).map(str)),
    "SEUPDES": CELL,
}


ID_MAKERS: dict[str, Callable[[str, str], str]] = {
    "Patient": patient_id,
    "ResearchSubject": research_subject_id,
    "Condition": lambda studyid, usubjid: resource_id("Condition", studyid, usubjid),
}
"""The identity module's ids, which the subject mapping must give whatever the keys' text."""


@st.composite
def dm_se_trials(draw: st.DrawFn) -> Trial:
    studyid = draw(TEXT)
    dm_extras = draw(st.lists(EXTRA_NAME, max_size=2, unique=True))
    dm_tail = [c for c in DM_CELLS if c not in DM_OPTIONAL]
    dm_tail += draw(st.lists(st.sampled_from(DM_OPTIONAL), unique=True)) + dm_extras
    dm_columns = ["STUDYID", "DOMAIN", "USUBJID", *draw(st.permutations(dm_tail))]
    usubjids = draw(st.lists(TEXT, max_size=5, unique=True))
    dm_rows = []
    for usubjid in usubjids:
        row = {"STUDYID": studyid, "DOMAIN": "DM", "USUBJID": usubjid}
        row.update({c: draw(DM_CELLS.get(c, CELL)) for c in dm_columns if c not in row})
        dm_rows.append(row)
    se_extras = draw(st.lists(EXTRA_NAME, max_size=2, unique=True))
    se_tail = ["ETCD", "ELEMENT", "EPOCH", "SESTDTC", "SEENDTC"]
    se_tail += draw(st.lists(st.sampled_from(["TAETORD", "SEUPDES"]), unique=True)) + se_extras
    se_columns = ["STUDYID", "DOMAIN", "USUBJID", "SESEQ", *draw(st.permutations(se_tail))]
    se_rows = []
    for usubjid in usubjids:
        for seq in draw(st.lists(st.integers(1, 30), max_size=3, unique=True)):
            row = {"STUDYID": studyid, "DOMAIN": "SE", "USUBJID": usubjid, "SESEQ": str(seq)}
            row.update({c: draw(SE_CELLS.get(c, CELL)) for c in se_columns if c not in row})
            se_rows.append(row)
    # the way back writes rows in SDTM order: USUBJID, then SESEQ as a number
    dm_rows.sort(key=lambda r: r["USUBJID"])
    se_rows.sort(key=lambda r: (r["USUBJID"], int(r["SESEQ"])))
    return {"DM": Table("DM", dm_columns, dm_rows), "SE": Table("SE", se_columns, se_rows)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trial=dm_se_trials())
def test_any_dm_and_se_round_trip_exactly(trial: Trial, validate: Validate) -> None:
    resources = list(trial_to_fhir(trial))
    for resource in resources:
        validate(resource)
    ids = [r["id"] for r in resources]
    assert len(set(ids)) == len(ids)
    expected_ids = {
        (kind, make(row["STUDYID"], row["USUBJID"]))
        for row in trial["DM"].rows
        for kind, make in ID_MAKERS.items()
    }
    assert {(r["resourceType"], r["id"]) for r in resources if r["resourceType"] in ID_MAKERS} == (
        expected_ids
    )
    # through the JSON wire format, as a file or a server would carry them
    back = fhir_to_trial(loads(dumps(resource)) for resource in resources)
    if not trial["DM"].rows:
        assert back == {}
        return
    for domain in ("DM", "SE"):
        assert back[domain].columns == trial[domain].columns
        assert back[domain].rows == trial[domain].rows
