"""LB <-> Observation (laboratory), AE <-> AdverseEvent, MH <-> Condition: every cell comes back as
written, codes where the terms have them, the one-object identifier of AdverseEvent, determinism."""

from __future__ import annotations

from decimal import Decimal

import orjson
from family_tables import (
    FREE_TEXT,
    JSON,
    Validate,
    assert_family_round_trips,
    assert_reading_leaves_resources_untouched,
    table,
)
from hypothesis import HealthCheck, given, settings
from test_observation import random_table

from mappings import clinical, observation
from mappings.clinical import ClinicalReader
from mappings.identity import SID_DERIVED, patient_id, row_system
from mappings.observation import ObservationReader
from mappings.primitives import read_variable_extensions
from mappings.sdtm import Table, Trial
from mappings.terminology import (
    AE_OUTCOME,
    AE_SERIOUSNESS,
    AE_SEVERITY,
    EXT_RESEARCH_STUDY,
    EXT_SDTM_DTC,
    LOINC,
    OBSERVATION_CATEGORY,
    PROJECT_CODESYSTEM,
)
from mappings.trial import TrialAssembler, fhir_to_trial, trial_to_fhir

LB = table(
    "LB",
    "STUDYID DOMAIN USUBJID LBSEQ LBTESTCD LBTEST LBCAT LBLOINC LBORRES LBORRESU LBORNRLO LBORNRHI "
    "LBSTRESC LBSTRESN LBSTRESU LBNRIND LBSPEC LBMETHOD LBSTAT LBDTC LBSRCID",
    "S1|LB|S1-001|1|HGB|Hemoglobin|HEMATOLOGY|718-7|13.20|g/dL|12.0|15.5|132.0|132.0|g/L|HIGH|BLOOD|||"
    "2024-03-04T08:30|Observation/a",
    "S1|LB|S1-001|2|CK|Creatine kinase|CHEMISTRY|2157-6|<20|U/L|<20|200|<20||U/L||SERUM|||2024-04|",
    "S1|LB|S1-002|1|UCOLOR|Color|URINALYSIS|5778-6|Yellow||||YELLOW||||URINE|VISUAL||2024|",
    "S1|LB|S1-002|2|CHOL|Cholesterol|CHEMISTRY|not  a code||mmol/L|||||||||NOT DONE||" + FREE_TEXT,
)
AE = table(
    "AE",
    "STUDYID DOMAIN USUBJID AESEQ AETERM AEDECOD AECAT AESER AESEV AEREL AEACN AEOUT AESTDTC AEENDTC "
    "EPOCH",
    "S1|AE|S1-001|1|Headache after infusion|Headache||N|MILD|POSSIBLY RELATED|DOSE NOT CHANGED|"
    "RECOVERED/RESOLVED|2024-03-05T14:20|2024-03-06|TREATMENT",
    "S1|AE|S1-001|2|"
    + FREE_TEXT
    + "|Rash|SKIN|N|Moderate|NOT RELATED||RECOVERING/RESOLVING|2024-04||",
    "S1|AE|S1-002|1|Thrombosis|Deep vein thrombosis||Y|SEVERE|RELATED|DRUG WITHDRAWN|FATAL|2024||",
    "S1|AE|S1-002|2|||||||||||",
)
MH = table(
    "MH",
    "STUDYID DOMAIN USUBJID MHSEQ MHTERM MHDECOD MHCAT MHDTC MHSTDTC MHENDTC MHENRF",
    "S1|MH|S1-001|1|Type 2 diabetes|Type 2 diabetes mellitus|GENERAL|2024-03-04|2015||ONGOING",
    "S1|MH|S1-001|2|Appendectomy||SURGICAL|2024-03-04|1988-07|1988-07|",
    "S1|MH|S1-002|1|" + FREE_TEXT + "|||2024-03-11T08:15|2010-02-01T09:00||",
    "S1|MH|S1-002|2||||||2001|BEFORE",
)


def lab_round_trips(trial: Trial) -> list[JSON]:
    return assert_family_round_trips(observation.to_fhir, ObservationReader(), trial, ("LB",))


def clinical_round_trips(trial: Trial) -> list[JSON]:
    return assert_family_round_trips(clinical.to_fhir, ClinicalReader(), trial, ("AE", "MH"))


def test_example_tables_round_trip_and_validate(validate: Validate) -> None:
    for resource in lab_round_trips({"LB": LB}) + clinical_round_trips({"AE": AE, "MH": MH}):
        validate(resource)


def test_output_is_deterministic() -> None:
    trial: Trial = {"LB": LB, "AE": AE, "MH": MH}
    first = orjson.dumps(list(trial_to_fhir(trial)), default=str)
    assert first == orjson.dumps(list(trial_to_fhir(trial)), default=str)


def test_a_lab_result_is_a_laboratory_observation_with_loinc_range_and_interpretation() -> None:
    hgb, ck, color, chol = observation.to_fhir({"LB": LB})
    assert hgb["category"][0]["coding"][0] == {
        "system": OBSERVATION_CATEGORY,
        "code": "laboratory",
        "display": "Laboratory",
    }
    assert hgb["code"]["coding"] == [
        {"system": LOINC, "code": "718-7"},
        {"system": PROJECT_CODESYSTEM, "code": "HGB"},
    ]
    assert hgb["valueQuantity"] == {"value": Decimal("132.0"), "unit": "g/L"}
    assert str(hgb["valueQuantity"]["value"]) == "132.0"
    assert hgb["referenceRange"] == [
        {
            "low": {"value": Decimal("12.0"), "unit": "g/dL"},
            "high": {"value": Decimal("15.5"), "unit": "g/dL"},
        }
    ]
    assert hgb["interpretation"][0]["coding"][0]["code"] == "H"
    assert hgb["interpretation"][0]["text"] == "HIGH"
    assert hgb["specimen"] == {"display": "BLOOD"}
    assert hgb["_effectiveDateTime"] == {
        "extension": [{"url": EXT_SDTM_DTC, "valueString": "2024-03-04T08:30"}]
    }
    assert read_variable_extensions(hgb) == {
        "LBCAT": "HEMATOLOGY",
        "LBORRES": "13.20",
        "LBORRESU": "g/dL",
        "LBSTRESC": "132.0",
        "LBSRCID": "Observation/a",
    }
    # a limit that is no number rides as text; only the numeric one is a Quantity
    assert ck["referenceRange"] == [{"high": {"value": Decimal("200"), "unit": "U/L"}}]
    assert read_variable_extensions(ck)["LBORNRLO"] == "<20"
    assert "valueQuantity" not in ck and ck["valueString"] == "<20"
    assert color["valueString"] == "YELLOW" and color["method"] == {"text": "VISUAL"}
    # a LOINC that is no FHIR code makes no coding and rides as text
    assert [c["system"] for c in chol["code"]["coding"]] == [PROJECT_CODESYSTEM]
    assert read_variable_extensions(chol)["LBLOINC"] == "not  a code"


def test_an_adverse_event_has_one_identifier_and_coded_terms() -> None:
    headache, rash, thrombosis, empty = clinical.to_fhir({"AE": AE})
    assert headache["identifier"] == {"system": row_system("AE"), "value": "S1/S1-001/1"}
    assert headache["actuality"] == "actual"
    assert headache["event"] == {"text": "Headache after infusion"}
    assert headache["subject"] == {"reference": f"Patient/{patient_id('S1', 'S1-001')}"}
    assert any(e["url"] == EXT_RESEARCH_STUDY for e in headache["extension"])
    assert headache["date"] == "2024-03-05"
    assert headache["seriousness"]["coding"][0] == {
        "system": AE_SERIOUSNESS,
        "code": "non-serious",
        "display": "Non-serious",
    }
    assert headache["severity"]["coding"][0]["system"] == AE_SEVERITY
    assert headache["outcome"] == {
        "coding": [{"system": AE_OUTCOME, "code": "resolved", "display": "Resolved"}],
        "text": "RECOVERED/RESOLVED",
    }
    assert headache["suspectEntity"][0]["causality"][0]["assessment"] == {
        "text": "POSSIBLY RELATED"
    }
    cells = read_variable_extensions(headache)
    assert cells == {"AEDECOD": "Headache", "AEACN": "DOSE NOT CHANGED", "AEENDTC": "2024-03-06"}
    assert rash["severity"] == {"text": "Moderate"}  # not the CDISC term as written: no coding
    assert rash["category"] == [{"text": "SKIN"}]
    assert thrombosis["outcome"]["coding"][0]["code"] == "fatal"
    assert set(empty) == {"resourceType", "id", "extension", "identifier", "actuality", "subject"}


def test_medical_history_is_a_condition_distinct_from_the_studys_own() -> None:
    diabetes, appendectomy, free, empty = clinical.to_fhir({"MH": MH})
    assert diabetes["identifier"] == [{"system": row_system("MH"), "value": "S1/S1-001/1"}]
    assert diabetes["code"] == {"text": "Type 2 diabetes"}
    assert diabetes["onsetDateTime"] == "2015"
    assert "clinicalStatus" not in diabetes and "abatementDateTime" not in diabetes
    assert appendectomy["abatementDateTime"] == "1988-07"
    assert appendectomy["clinicalStatus"]["coding"][0]["code"] == "resolved"
    assert free["_recordedDate"]["extension"][0]["valueString"] == "2024-03-11T08:15"
    assert read_variable_extensions(empty) == {"MHENRF": "BEFORE"}
    dm = table("DM", "STUDYID DOMAIN USUBJID", "S1|DM|S1-001", "S1|DM|S1-002")
    resources = list(trial_to_fhir({"DM": dm, "MH": MH}))
    conditions = [r for r in resources if r["resourceType"] == "Condition"]
    systems = sorted(c["identifier"][0]["system"] for c in conditions)
    assert systems == [SID_DERIVED] * 2 + [row_system("MH")] * 4
    assert len({c["id"] for c in conditions}) == 6
    back = fhir_to_trial(resources)
    assert [r["MHSEQ"] for r in back["MH"].rows] == ["1", "2", "1", "2"]


def test_the_assembler_routes_one_object_identifiers_and_leaves_foreign_ones() -> None:
    assembler = TrialAssembler()
    for resource in clinical.to_fhir({"AE": AE}):
        assert assembler.add(resource)
    foreign = {
        "resourceType": "AdverseEvent",
        "id": "x",
        "identifier": {"system": "http://example.org/ae", "value": "1"},
        "actuality": "actual",
        "subject": {"reference": "Patient/p"},
    }
    assert not assembler.add(foreign)
    assert assembler.unrecognised == {"AdverseEvent": 1}
    assert len(assembler.tables()["AE"].rows) == 4


def test_readers_leave_resources_of_other_families() -> None:
    reader = ClinicalReader()
    derived = {
        "resourceType": "Condition",
        "identifier": [{"system": SID_DERIVED, "value": "Condition/S1/S1-001"}],
    }
    assert not reader.feed(derived)
    assert not reader.feed({"resourceType": "AdverseEvent", "identifier": [{"system": "x"}]})
    assert not reader.feed({"resourceType": "Observation"})
    assert reader.rows() == {}


def test_reading_back_leaves_the_resources_untouched() -> None:
    resources = list(clinical.to_fhir({"MH": MH}))
    assert_reading_leaves_resources_untouched(resources, ClinicalReader())


# --- properties -------------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lb=random_table("LB"))
def test_random_lab_tables_round_trip_and_validate(lb: Table, validate: Validate) -> None:
    for resource in lab_round_trips({"LB": lb}):
        validate(resource)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ae=random_table("AE"), mh=random_table("MH"))
def test_random_ae_and_mh_tables_round_trip_and_validate(
    ae: Table, mh: Table, validate: Validate
) -> None:
    for resource in clinical_round_trips({"AE": ae, "MH": mh}):
        validate(resource)


# --- wrongly shaped elements: refused by name, never a crash -------------------------------------------

_WRONG: list[object] = ["x", 7, 2.5, True, None, [], {}, ["x"], [7], {"a": 1}, [{"a": 1}]]


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:2]):
            found += _paths(item, (*path, index))
    return found


def test_any_element_wrongly_shaped_is_taken_or_refused_never_a_crash() -> None:
    from adapter import fhir_json
    from mappings.trial import ResourceRefused

    samples = [
        *observation.to_fhir({"LB": LB}),
        *clinical.to_fhir({"AE": AE, "MH": MH}),
    ]
    refused = 0
    for resource in samples:
        text = fhir_json.dumps(resource)  # decimals as written (numbers, not strings)
        base = TrialAssembler()
        assert base.add(orjson.loads(text), check_strings=True)
        for path in _paths(resource):
            if path == ("resourceType",):
                continue
            for value in _WRONG:
                copy = orjson.loads(text)
                node = copy
                for step in path[:-1]:
                    node = node[step]
                node[path[-1]] = value
                assembler = TrialAssembler()
                try:
                    assembler.add(copy, check_strings=True)
                    assembler.tables()
                except ResourceRefused as exc:
                    refused += 1
                    assert exc.element.startswith((resource["resourceType"], "LB.", "AE.", "MH."))
    assert refused > 100


def test_an_adverse_event_is_written_conditionally_on_its_one_identifier() -> None:
    """Files and the client find the business identifier of R4's 0..1 `identifier` too (a push of AE
    rows is a conditional update like every other row, not a write by id)."""
    from adapter.client import transaction_bundle
    from adapter.fhir_files import entry_request

    event = next(iter(clinical.to_fhir({"AE": AE})))
    expected = {
        "method": "PUT",
        "url": "AdverseEvent?identifier=https://trialfhir.org/fhir/sid/sdtm/ae%7CS1/S1-001/1",
    }
    assert entry_request(event) == expected
    bundle = transaction_bundle([event], mode="conditional-update")
    assert bundle["entry"][0]["request"] == expected
