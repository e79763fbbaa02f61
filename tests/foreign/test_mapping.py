"""The profile-free mapping (mappings.foreign) on the hand-written bundle: domains, codes, units, values
as written, skip reasons, accounting and order independence."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import pytest

from mappings.foreign import ForeignOptions, ForeignResource, bundle_entries, map_foreign
from mappings.foreign.codes import LB_LOINC, VS_LOINC, VS_UNITS, convert, fallback_testcd


def rows(result: Any, domain: str) -> list[dict[str, str]]:
    table = result.tables[domain]
    return [dict(zip(table.columns, row, strict=True)) for row in table.rows]


def by_source(result: Any, domain: str) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for row in rows(result, domain):
        found.setdefault(row[f"{domain}SRCID"], []).append(row)
    return found


def test_subject_comes_from_the_research_subject(bundle: dict[str, Any]) -> None:
    result = map_foreign([bundle])
    (dm,) = rows(result, "DM")
    assert (dm["STUDYID"], dm["USUBJID"], dm["SUBJID"]) == ("STUDY-X", "STUDY-X-001", "MRN-1")
    assert (dm["ARM"], dm["ACTARM"], dm["RFSTDTC"]) == ("IVIG", "IVIG", "2020-01-15")
    assert (dm["SEX"], dm["BRTHDTC"], dm["AGE"], dm["AGEU"]) == ("F", "1960-03-02", "59", "YEARS")
    assert (dm["RACE"], dm["ETHNIC"], dm["COUNTRY"]) == (
        "MULTIPLE",
        "NOT HISPANIC OR LATINO",
        "NLD",
    )
    assert (dm["DTHDTC"], dm["DTHFL"], dm["DMSRCID"]) == ("2021-06-01T10:00:00", "Y", "Patient/p1")


def test_vital_signs_keep_the_written_value_and_convert_exactly(bundle: dict[str, Any]) -> None:
    vs = by_source(map_foreign([bundle]), "VS")
    (weight,) = vs["Observation/weight"]
    assert (weight["VSTESTCD"], weight["VSORRES"], weight["VSORRESU"]) == ("WEIGHT", "165.0", "lb")
    assert (weight["VSSTRESN"], weight["VSSTRESU"]) == (
        "74.84",
        "kg",
    )  # 165.0 * 0.45359237, 4 digits
    (temp,) = vs["Observation/temp"]
    assert (temp["VSORRES"], temp["VSSTRESN"], temp["VSSTRESU"]) == ("98.60", "37.00", "C")
    (height,) = vs["Observation/height"]
    assert (height["VSORRES"], height["VSSTRESN"], height["VSSTRESU"]) == ("70", "178", "cm")
    panel = {r["VSTESTCD"]: r for r in vs["Observation/bp"]}
    assert sorted(panel) == ["DIABP", "SYSBP"]
    assert (panel["SYSBP"]["VSORRES"], panel["SYSBP"]["VSSTRESU"]) == ("120", "mmHg")
    assert panel["SYSBP"]["VSDTC"] == "2020-01-20T09:30:00"  # local time as written, zone left out


def test_labs_map_by_the_loinc_table_and_the_fallback(bundle: dict[str, Any]) -> None:
    result = map_foreign([bundle])
    lb = by_source(result, "LB")
    (glucose,) = lb["Observation/glucose"]
    assert (glucose["LBTESTCD"], glucose["LBCAT"], glucose["LBLOINC"]) == (
        "GLUC",
        "CHEMISTRY",
        "2345-7",
    )
    assert (glucose["LBORNRLO"], glucose["LBORNRHI"], glucose["LBNRIND"]) == ("70", "99", "NORMAL")
    assert (glucose["LBSTRESN"], glucose["LBSTRESU"]) == ("95", "mg/dL")  # no molar conversion
    (hgb,) = lb["Observation/hgb"]
    assert (hgb["LBORRES"], hgb["LBORRESU"], hgb["LBSTRESN"], hgb["LBSTRESU"]) == (
        "13.50",
        "g/dL",
        "135.0",
        "g/L",
    )
    (ldh,) = lb["Observation/ldh"]
    assert (ldh["LBTESTCD"], ldh["LBLOINC"], ldh["LBTEST"]) == ("L25320", "2532-0", "test 2532-0")
    (color,) = lb["Observation/urine-color"]
    assert (color["LBORRES"], color["LBSTRESC"], color["LBSTRESN"], color["LBSPEC"]) == (
        "Yellow",
        "Yellow",
        "",
        "URINE",
    )
    notes = result.report.types["Observation"].notes
    assert notes["LOINC not in the LB table: --TESTCD by the fallback rule"].count == 1


def test_medications_events_conditions_procedures(bundle: dict[str, Any]) -> None:
    result = map_foreign([bundle])
    cm = by_source(result, "CM")
    (request,) = cm["MedicationRequest/mr1"]
    assert (request["CMTRT"], request["CMDECOD"], request["CMCODE"]) == (
        "prednisone",
        "prednisone",
        "8640",
    )
    assert (request["CMDOSE"], request["CMDOSU"], request["CMDOSFRQ"], request["CMROUTE"]) == (
        "60",
        "mg",
        "QD",
        "oral",
    )
    assert (request["CMSTDTC"], request["CMENDTC"]) == ("2020-01-16", "2020-03-01")
    assert (
        cm["MedicationStatement/ms1"][0]["CMTRT"] == "Calcium carbonate 500 mg"
    )  # contained Medication
    assert cm["MedicationAdministration/ma1"][0]["CMDOSE"] == "2.0"
    (ae,) = rows(result, "AE")
    assert (ae["AESPID"], ae["AETERM"], ae["AEDECOD"], ae["AECODE"]) == (
        "AE-7",
        "rash on the left forearm",
        "Eruption of skin",
        "271807003",
    )
    assert (ae["AESER"], ae["AESEV"], ae["AEOUT"], ae["AEREL"]) == (
        "Y",
        "MODERATE",
        "RECOVERED/RESOLVED",
        "Probably-Likely",
    )
    (mh,) = rows(result, "MH")
    assert (mh["MHTERM"], mh["MHCAT"], mh["MHSTDTC"], mh["MHENDTC"]) == (
        "Dermatomyositis",
        "problem-list-item",
        "2018-05",
        "2019",
    )
    (pr,) = rows(result, "PR")
    assert (pr["PRTRT"], pr["PRLOC"], pr["PRSTDTC"], pr["PRENDTC"]) == (
        "Muscle biopsy",
        "left quadriceps",
        "2020-01-16T08:00:00",
        "2020-01-16T08:40:00",
    )


def test_every_resource_is_accounted_for_with_its_reason(bundle: dict[str, Any]) -> None:
    report = map_foreign([bundle]).report
    assert report.unbalanced() == []
    assert report.total_read == 29  # 27 resources + 2 Bundles
    skipped = {
        (t, reason): e.count for t, a in report.types.items() for reason, e in a.skipped.items()
    }
    assert skipped[("Observation", "status entered-in-error")] == 1
    assert skipped[("Observation", "subject not in the input")] == 1
    assert skipped[("Observation", "subject is not a study subject")] == 1
    assert (
        skipped[
            (
                "Observation",
                "not valid R4: Observation.code: expected one value (0..1), not an array",
            )
        ]
        == 1
    )
    assert skipped[("Condition", "verificationStatus refuted")] == 1
    assert skipped[("Procedure", "status not-done")] == 1
    assert skipped[("AdverseEvent", "actuality potential (a risk, not an event)")] == 1
    assert skipped[("Encounter", "no SDTM domain")] == 1
    examples = report.types["Observation"].skipped["subject not in the input"].examples
    assert examples[0][0] == "Observation/nobody"


def test_seq_is_per_subject_and_domain_by_date_then_test_code(bundle: dict[str, Any]) -> None:
    vs = rows(map_foreign([bundle]), "VS")
    assert [r["VSSEQ"] for r in vs] == ["1", "2", "3", "4", "5"]
    assert [r["VSTESTCD"] for r in vs] == ["DIABP", "HEIGHT", "SYSBP", "TEMP", "WEIGHT"]


def test_output_does_not_depend_on_input_order(bundle: dict[str, Any]) -> None:
    flat = [r for r in bundle_entries(bundle) if r.resource.get("resourceType") != "Bundle"]
    reference = map_foreign(flat)
    for seed in range(5):
        shuffled = list(flat)
        random.Random(seed).shuffle(shuffled)
        again = map_foreign(shuffled)
        assert again.tables == reference.tables
        assert again.report.to_json() == reference.report.to_json()


def test_without_research_subjects_every_patient_is_a_subject_of_the_given_study(
    bundle: dict[str, Any],
) -> None:
    flat = [
        r
        for r in bundle_entries(bundle)
        if r.resource.get("resourceType") not in ("Bundle", "ResearchSubject")
    ]
    result = map_foreign(flat, ForeignOptions(study="EHR1"))
    assert [(r["USUBJID"], r["SUBJID"]) for r in rows(result, "DM")] == [
        ("EHR1-MRN-1", "MRN-1"),
        ("EHR1-p2", "p2"),
    ]
    by_id = map_foreign(flat, ForeignOptions(study="EHR1", subjid="id"))
    assert [r["SUBJID"] for r in rows(by_id, "DM")] == ["p1", "p2"]
    by_system = map_foreign(flat, ForeignOptions(study="EHR1", subjid="system:urn:example:mrn"))
    assert [r["SUBJID"] for r in rows(by_system, "DM")] == ["MRN-1", "p2"]
    assert "Observation/other-patient" in by_source(result, "LB")  # p2 is a subject now


def test_without_a_study_nothing_is_invented(bundle: dict[str, Any]) -> None:
    flat = [
        r
        for r in bundle_entries(bundle)
        if r.resource.get("resourceType") not in ("Bundle", "ResearchSubject")
    ]
    result = map_foreign(flat)
    assert all(not t.rows for t in result.tables.values())
    reason = "no STUDYID: no ResearchSubject in the input and no study given"
    assert result.report.types["Patient"].skipped[reason].count == 2
    assert result.report.unbalanced() == []


def test_a_duplicate_resource_is_counted_once_and_reported() -> None:
    patient = {"resourceType": "Patient", "id": "a", "gender": "male"}
    result = map_foreign(
        [patient, dict(patient), ForeignResource(dict(patient), "x.ndjson, line 9")],
        ForeignOptions(study="S"),
    )
    assert len(result.tables["DM"].rows) == 1
    account = result.report.types["Patient"]
    assert account.read == 3 and account.skipped_resources == 2 and account.mapped_resources == 1


@pytest.mark.parametrize(
    ("written", "unit", "test", "expected"),
    [
        ("150", "[lb_av]", "WEIGHT", "68.0"),
        ("98.6", "[degF]", "TEMP", "37.0"),
        ("212.0", "[degF]", "TEMP", "100.0"),
        ("74.50", "kg", "WEIGHT", "74.50"),
        ("5.5", "[ft_i]", "HEIGHT", "168"),
        ("1500", "g", "WEIGHT", "1.500"),
    ],
)
def test_unit_conversion_digits_rule(written: str, unit: str, test: str, expected: str) -> None:
    assert convert(written, VS_UNITS[test][unit]) == expected


def test_tables_cover_the_panels_the_issue_names() -> None:
    by_testcd = {t.testcd for t in LB_LOINC.values()}
    assert {"WBC", "HGB", "PLAT"} <= by_testcd  # CBC
    assert {"SODIUM", "K", "CREAT", "ALT", "ALB"} <= by_testcd  # BMP / CMP
    assert {"CHOL", "HDL", "LDL", "TRIG", "HBA1C"} <= by_testcd  # lipids, HbA1c
    assert {"SPGRAV", "KETONES", "NITRITE"} <= by_testcd  # urinalysis
    assert {"PT", "INR", "APTT"} <= by_testcd  # coagulation
    assert {t.testcd for t in VS_LOINC.values()} >= {
        "HEIGHT",
        "WEIGHT",
        "BMI",
        "SYSBP",
        "DIABP",
        "HR",
        "RESP",
        "TEMP",
        "OXYSAT",
    }
    assert all(len(t.testcd) <= 8 for t in LB_LOINC.values())
    assert fallback_testcd("100000-9") == "L1000009"


def test_valid_r4_one_object_identifiers_do_not_crash() -> None:
    questionnaire = {
        "resourceType": "QuestionnaireResponse",
        "id": "q",
        "status": "completed",
        "identifier": {"system": "urn:x", "value": "1"},
    }
    report = map_foreign([questionnaire], ForeignOptions(study="S")).report
    assert report.types["QuestionnaireResponse"].skipped["no SDTM domain"].count == 1


def test_a_resource_with_the_wrong_cardinality_is_skipped_naming_the_element() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "x",
        "identifier": {"system": "urn:x", "value": "1"},
    }
    unknown = {"resourceType": "Patientt", "id": "y"}
    report = map_foreign([patient, unknown], ForeignOptions(study="S")).report
    assert (
        "not valid R4: Patient.identifier: expected an array (0..*)"
        in report.types["Patient"].skipped
    )
    assert "not valid R4: resourceType: not an R4 resource type" in report.types["Patientt"].skipped
    assert report.unbalanced() == []


def test_a_study_drug_administration_goes_to_ex(bundle: dict[str, Any]) -> None:
    result = map_foreign([bundle], ForeignOptions(study_drugs=("IV immunoglobulin",)))
    (ex,) = rows(result, "EX")
    assert (ex["EXTRT"], ex["EXDOSE"], ex["EXDOSU"], ex["EXROUTE"]) == (
        "IV immunoglobulin",
        "2.0",
        "g/kg",
        "intravenous",
    )
    assert (ex["EXSTDTC"], ex["EXSEQ"], ex["EXSRCID"]) == (
        "2020-01-16T10:00:00",
        "1",
        "MedicationAdministration/ma1",
    )
    assert "MedicationAdministration/ma1" not in by_source(result, "CM")
    by_code = map_foreign([bundle], ForeignOptions(study_drugs=("8640",)))
    assert rows(by_code, "EX") == []  # prednisone is ordered (MedicationRequest), not administered


def _element_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            yield from _element_paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:2]):
            yield (*prefix, index)
            yield from _element_paths(inner, (*prefix, index))


def test_no_element_of_any_shape_makes_the_mapping_crash(bundle: dict[str, Any]) -> None:
    """Every element (to any depth) of every hand-written resource, replaced by each JSON shape in
    turn: the resource is mapped or skipped, never a traceback, and the books always balance."""
    base = [
        r.resource for r in bundle_entries(bundle) if r.resource.get("resourceType") != "Bundle"
    ]
    shapes: list[Any] = [1, "x", True, None, [], {}, [1], [{}], {"coding": 1}]
    context = {"st1", "rs1", "p1", "m1"}  # what the other resources refer to
    for index, resource in enumerate(base):
        for path in _element_paths(resource):
            if path in (("resourceType",), ("id",)):
                continue
            for shape in shapes:
                broken = copy.deepcopy(resource)
                target = broken
                for step in path[:-1]:
                    target = target[step]
                target[path[-1]] = shape
                others = [r for i, r in enumerate(base) if i != index and r["id"] in context]
                report = map_foreign([broken, *others], ForeignOptions(study="S")).report
                assert report.unbalanced() == [], (resource["id"], path, shape)
                assert report.total_read == len(others) + 1


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        (
            {
                "resourceType": "MedicationRequest",
                "id": "r",
                "status": "active",
                "medicationCodeableConcept": {"text": "x"},
                "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": True}}]}],
            },
            "not valid R4: MedicationRequest.dosageInstruction.doseAndRate.doseQuantity: expected a Quantity with a number",
        ),
        (
            {
                "resourceType": "MedicationAdministration",
                "id": "a",
                "status": "completed",
                "medicationCodeableConcept": {"text": "x"},
                "dosage": {"dose": {"value": "60"}},
            },
            "not valid R4: MedicationAdministration.dosage.dose: value: expected a number",
        ),
        (
            {
                "resourceType": "MedicationStatement",
                "id": "s",
                "status": "active",
                "medicationCodeableConcept": {"text": "x"},
                "dosage": [{"route": "oral"}],
            },
            "not valid R4: MedicationStatement.dosage.route: expected a CodeableConcept",
        ),
    ],
)
def test_a_dose_of_the_wrong_type_is_not_valid_r4(resource: dict[str, Any], reason: str) -> None:
    report = map_foreign([resource], ForeignOptions(study="S")).report
    assert list(report.types[resource["resourceType"]].skipped) == [reason]
