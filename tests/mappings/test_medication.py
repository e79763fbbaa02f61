"""EX, CM <-> MedicationAdministration: round trips, the g/kg dose from body weight, codes, dates."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from family_tables import (
    FREE_TEXT,
    JSON,
    Validate,
    assert_family_round_trips,
    assert_reading_leaves_resources_untouched,
    table,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings import medication
from mappings.identity import patient_id, row_identifier, row_resource_id, study_id
from mappings.medication import MedicationReader, administered_grams, body_weights, dosing_weight
from mappings.primitives import read_variable_extensions
from mappings.sdtm import DOMAINS, Table, Trial
from mappings.terminology import (
    ATC,
    EXT_DATA_ABSENT_REASON,
    EXT_EPOCH,
    EXT_PRESCRIBED_DOSE,
    EXT_RESEARCH_STUDY,
    EXT_SDTM_DTC,
    NCIT,
    RXNORM,
    SNOMED,
    UCUM,
)

IVIG = "IMMUNE GLOBULIN INTRAVENOUS (HUMAN)"


def assert_round_trips(trial: Trial) -> list[JSON]:
    return assert_family_round_trips(medication.to_fhir, MedicationReader(), trial, ("EX", "CM"))


VS_COLUMNS = "STUDYID DOMAIN USUBJID VSSEQ VSTESTCD VSTEST VSORRES VSORRESU VSSTRESN VSSTRESU VSDTC"
VS = table(
    "VS",
    VS_COLUMNS,
    "S1|VS|S1-001|1|WEIGHT|Weight|74.50|kg|74.50|kg|1991-04-10",
    "S1|VS|S1-001|2|WEIGHT|Weight|71.00|kg|71.00|kg|1991-06",
    "S1|VS|S1-002|1|WEIGHT|Weight|68.3|kg|68.3|kg|1991-05-02T08:15",
    "S1|VS|S1-002|2|HEIGHT|Height|170|cm|170|cm|1991-05-02",
    "S1|VS|S1-004|1|WEIGHT|Weight|150|LB|150|LB|1991-05-02",
)
EX_COLUMNS = (
    "STUDYID DOMAIN USUBJID EXSEQ EXTRT EXDOSE EXDOSU EXDOSFRM EXROUTE EPOCH EXSTDTC EXENDTC EXLOT"
)
EX = table(
    "EX",
    EX_COLUMNS,
    f"S1|EX|S1-001|1|{IVIG}|1|g/kg|SOLUTION|INTRAVENOUS|TREATMENT 1|1991-04-17T09:30|1991-04-17T13:00|"
    + FREE_TEXT,
    f"S1|EX|S1-001|2|{IVIG}|1|g/kg|SOLUTION|INTRAVENOUS|TREATMENT 1|1991-06-20||",
    "S1|EX|S1-002|1|PLACEBO|2|g/kg|SOLUTION|INTRAVENOUS|TREATMENT 1|1991-05-02|1991-05-02|",
    f"S1|EX|S1-003|1|{IVIG}|2|g/kg|SOLUTION|INTRAVENOUS|TREATMENT 1|1991-04||",
    f"S1|EX|S1-004|1|{IVIG}|140.0|g|SOLUTION|INTRAVENOUS|TREATMENT 2|1991-08-01|1991-08-01|",
    "S1|EX|S1-004|2|||||||||",
)
CM_COLUMNS = "STUDYID DOMAIN USUBJID CMSEQ CMTRT CMDECOD CMINDC CMDOSE CMDOSU CMDOSFRQ CMROUTE CMSTDTC CMENDTC CMCAT XXNOTE"
CM = table(
    "CM",
    CM_COLUMNS,
    "S1|CM|S1-001|1|PREDNISONE|PREDNISONE|DERMATOMYOSITIS|25|mg|QD|ORAL|1990-12-01|1991-09-30|STEROID|"
    + FREE_TEXT,
    "S1|CM|S1-001|2|PREDNISONE|PREDNISONE|DERMATOMYOSITIS|30|mg|ONCE|ORAL|1991-04-17T08:00|1991-04-17T08:00||",
    "S1|CM|S1-001|3|Prednisone 5 mg tab||DERMATOMYOSITIS|7.50|mg|QD|ORAL|1991-10|||",
    "S1|CM|S1-002|1|CALCIUM CARBONATE" + "|" * 10,
    "S1|CM|S1-002|2|||||mg||||1991-03-01||",
)


def example() -> Trial:
    return {"VS": VS, "EX": EX, "CM": CM}


def find(resources: list[JSON], domain: str, usubjid: str, seq: str) -> JSON:
    wanted = row_identifier(domain, "S1", usubjid, seq)
    (found,) = [r for r in resources if r["identifier"][0] == wanted]
    return found


# --- round trips, validity, links ---------------------------------------------------------------------


def test_example_tables_round_trip_cell_for_cell() -> None:
    assert_round_trips(example())


def test_every_administration_validates_as_r4b(validate: Validate) -> None:
    resources = list(medication.to_fhir(example()))
    assert len(resources) == len(EX.rows) + len(CM.rows)
    for resource in resources:
        validate(resource)


def test_output_is_deterministic() -> None:
    first = orjson.dumps(list(medication.to_fhir(example())), default=str)
    assert orjson.dumps(list(medication.to_fhir(example())), default=str) == first


def test_ids_subject_and_study_link() -> None:
    resources = list(medication.to_fhir(example()))
    first = find(resources, "EX", "S1-001", "1")
    assert first["id"] == row_resource_id("MedicationAdministration", "EX", "S1", "S1-001", "1")
    prednisone = find(resources, "CM", "S1-001", "1")
    assert prednisone["id"] == row_resource_id(
        "MedicationAdministration", "CM", "S1", "S1-001", "1"
    )
    for resource in resources:
        assert resource["status"] == "completed"
        assert (
            resource["subject"]["reference"]
            == f"Patient/{patient_id('S1', resource['identifier'][0]['value'].split('/')[1])}"
        )
        assert {
            "url": EXT_RESEARCH_STUDY,
            "valueReference": {"reference": f"ResearchStudy/{study_id('S1')}"},
        } in resource["extension"]


# --- EX: the study drug and its dose ------------------------------------------------------------------


def test_ivig_and_placebo_codes_keep_the_treatment_as_written() -> None:
    resources = list(medication.to_fhir(example()))
    ivig = find(resources, "EX", "S1-001", "1")["medicationCodeableConcept"]
    assert [(c["system"], c["code"]) for c in ivig["coding"]] == [(ATC, "J06BA02")]
    assert ivig["text"] == IVIG
    placebo = find(resources, "EX", "S1-002", "1")["medicationCodeableConcept"]
    assert [(c["system"], c["code"]) for c in placebo["coding"]] == [(NCIT, "C753")]
    assert placebo["text"] == "PLACEBO"


def test_one_g_per_kg_times_74_50_kg_is_74_50_g_exactly() -> None:
    first = find(list(medication.to_fhir(example())), "EX", "S1-001", "1")
    dose = first["dosage"]["dose"]
    assert dose == {"value": Decimal("74.50"), "unit": "g", "system": UCUM, "code": "g"}
    assert str(dose["value"]) == "74.50"
    assert first["dosage"]["extension"] == [
        {
            "url": EXT_PRESCRIBED_DOSE,
            "valueQuantity": {
                "value": Decimal("1"),
                "unit": "g/kg",
                "system": UCUM,
                "code": "g/kg",
            },
        }
    ]


def test_two_g_per_kg_times_68_3_kg_is_136_6_g() -> None:
    placebo = find(list(medication.to_fhir(example())), "EX", "S1-002", "1")
    assert str(placebo["dosage"]["dose"]["value"]) == "136.6"


def test_the_weight_is_the_last_on_or_before_the_dose_partial_dates_by_their_first_day() -> None:
    # 1991-06 counts as 1991-06-01, on or before 1991-06-20: 1 g/kg x 71.00 kg
    second = find(list(medication.to_fhir(example())), "EX", "S1-001", "2")
    assert str(second["dosage"]["dose"]["value"]) == "71.00"


def test_without_an_earlier_weight_the_first_weight_is_used() -> None:
    weights = body_weights({"VS": VS})[("S1", "S1-001")]
    assert dosing_weight(weights, "1991-01-01") == Decimal("74.50")
    assert dosing_weight(weights, "") == Decimal("74.50")
    assert dosing_weight(weights, "1991-07") == Decimal("71.00")
    assert dosing_weight([], "1991-07") is None


def test_a_weight_taken_on_the_dosing_day_counts_whatever_its_time() -> None:
    weights = body_weights({"VS": VS})[("S1", "S1-002")]
    assert dosing_weight(weights, "1991-05-02") == Decimal("68.3")


def test_weights_not_in_kg_are_not_used() -> None:
    assert ("S1", "S1-004") not in body_weights({"VS": VS})


def test_no_weight_means_no_grams_only_the_prescription(validate: Validate) -> None:
    no_weight = find(list(medication.to_fhir(example())), "EX", "S1-003", "1")
    dosage = no_weight["dosage"]
    assert dosage["dose"] == {
        "extension": [{"url": EXT_DATA_ABSENT_REASON, "valueCode": "unknown"}]
    }
    assert dosage["extension"][0]["valueQuantity"]["value"] == Decimal("2")
    validate(no_weight)


def test_without_any_vs_table_g_per_kg_rows_still_round_trip() -> None:
    resources = assert_round_trips({"EX": EX})
    assert all("value" not in r.get("dosage", {}).get("dose", {}) for r in resources[:4])


def test_a_dose_in_grams_is_the_dose_as_written() -> None:
    grams = find(list(medication.to_fhir(example())), "EX", "S1-004", "1")
    assert grams["dosage"]["dose"] == {
        "value": Decimal("140.0"),
        "unit": "g",
        "system": UCUM,
        "code": "g",
    }
    assert "extension" not in grams["dosage"]


def test_administered_grams_never_round() -> None:
    per_kg = Decimal("2.123456789012345678901234567890123")
    weight = Decimal("70.123456789")
    grams = administered_grams(per_kg, weight)
    digits = 2123456789012345678901234567890123 * 70123456789
    assert grams == Decimal(f"{digits}E-42")
    assert str(grams) == "148.904130387615912201961591220196127090395047"
    assert administered_grams(Decimal("1"), Decimal("74.50")).as_tuple().exponent == -2


def test_infusion_with_an_end_is_a_period_with_times_kept() -> None:
    first = find(list(medication.to_fhir(example())), "EX", "S1-001", "1")
    assert first["effectivePeriod"] == {
        "start": "1991-04-17",
        "_start": {"extension": [{"url": EXT_SDTM_DTC, "valueString": "1991-04-17T09:30"}]},
        "end": "1991-04-17",
        "_end": {"extension": [{"url": EXT_SDTM_DTC, "valueString": "1991-04-17T13:00"}]},
    }
    no_end = find(list(medication.to_fhir(example())), "EX", "S1-001", "2")
    assert no_end["effectiveDateTime"] == "1991-06-20"
    assert "effectivePeriod" not in no_end


def test_route_is_snomed_intravenous_with_the_text_as_written() -> None:
    first = find(list(medication.to_fhir(example())), "EX", "S1-001", "1")
    assert first["dosage"]["route"] == {
        "coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}],
        "text": "INTRAVENOUS",
    }


def test_an_empty_row_still_makes_a_valid_administration(validate: Validate) -> None:
    empty = find(list(medication.to_fhir(example())), "EX", "S1-004", "2")
    validate(empty)
    assert "extension" in empty["medicationCodeableConcept"]
    assert "extension" in empty["effectivePeriod"]
    assert "dosage" not in empty


def test_dosage_form_lot_and_epoch_are_kept() -> None:
    first = find(list(medication.to_fhir(example())), "EX", "S1-001", "1")
    assert read_variable_extensions(first) == {"EXDOSFRM": "SOLUTION", "EXLOT": FREE_TEXT}
    assert {"url": EXT_EPOCH, "valueString": "TREATMENT 1"} in first["extension"]


# --- CM: background medication ----------------------------------------------------------------------------


def test_prednisone_has_rxnorm_and_atc() -> None:
    prednisone = find(list(medication.to_fhir(example())), "CM", "S1-001", "1")
    codings = prednisone["medicationCodeableConcept"]["coding"]
    assert [(c["system"], c["code"]) for c in codings] == [(RXNORM, "8640"), (ATC, "H02AB07")]
    dosage = prednisone["dosage"]
    assert dosage["dose"] == {"value": Decimal("25"), "unit": "mg", "system": UCUM, "code": "mg"}
    assert dosage["route"]["coding"][0]["code"] == "26643006"
    assert dosage["text"] == "QD"
    assert prednisone["reasonCode"] == [{"text": "DERMATOMYOSITIS"}]
    assert prednisone["category"] == {"text": "STEROID"}


def test_other_treatments_are_text_only() -> None:
    other = find(list(medication.to_fhir(example())), "CM", "S1-002", "1")
    assert other["medicationCodeableConcept"] == {"text": "CALCIUM CARBONATE"}


def test_one_administration_is_an_event_and_a_dosing_period_a_period() -> None:
    resources = list(medication.to_fhir(example()))
    once = find(resources, "CM", "S1-001", "2")
    assert once["effectiveDateTime"] == "1991-04-17"
    assert "effectivePeriod" not in once
    daily = find(resources, "CM", "S1-001", "1")
    assert daily["effectivePeriod"] == {"start": "1990-12-01", "end": "1991-09-30"}
    ongoing = find(resources, "CM", "S1-001", "3")
    assert ongoing["effectivePeriod"] == {"start": "1991-10"}
    ended = find(resources, "CM", "S1-002", "2")
    assert ended["effectivePeriod"] == {"end": "1991-03-01"}


def test_a_unit_without_a_dose_is_kept(validate: Validate) -> None:
    unit_only = find(list(medication.to_fhir(example())), "CM", "S1-002", "2")
    assert read_variable_extensions(unit_only) == {"CMDOSU": "mg"}
    validate(unit_only)


def test_reader_leaves_resources_of_other_families() -> None:
    reader = MedicationReader()
    assert not reader.feed(
        {"resourceType": "Observation", "identifier": [row_identifier("VS", "S", "U", "1")]}
    )
    assert not reader.feed({"resourceType": "MedicationAdministration", "status": "completed"})
    assert reader.rows() == {}


def test_reading_back_leaves_the_resources_untouched() -> None:
    assert_reading_leaves_resources_untouched(
        list(medication.to_fhir(example())), MedicationReader()
    )


# --- the reconstructed cohort --------------------------------------------------------------------------------


def test_cohort_rows_round_trip_and_validate(dalakas_trial: Trial, validate: Validate) -> None:
    trial: Trial = {d: dalakas_trial[d] for d in ("VS", "EX", "CM") if d in dalakas_trial}
    assert "EX" in trial and "CM" in trial
    for resource in assert_round_trips(trial):
        validate(resource)


def test_cohort_grams_are_the_prescription_times_the_dosing_weight(dalakas_trial: Trial) -> None:
    weights = body_weights(dalakas_trial)
    resources = {r["id"]: r for r in medication.to_fhir(dalakas_trial)}
    checked = 0
    for row in dalakas_trial["EX"].rows:
        rid = row_resource_id(
            "MedicationAdministration", "EX", row["STUDYID"], row["USUBJID"], row["EXSEQ"]
        )
        dosage = resources[rid]["dosage"]
        if row["EXDOSU"] != "g/kg":
            assert str(dosage["dose"]["value"]) == row["EXDOSE"]
            continue
        weight = dosing_weight(weights.get((row["STUDYID"], row["USUBJID"]), []), row["EXSTDTC"])
        if weight is None:
            assert "value" not in dosage["dose"]
            continue
        assert dosage["dose"]["value"] == Decimal(row["EXDOSE"]) * weight
        checked += 1
    if any(r["EXDOSU"] == "g/kg" for r in dalakas_trial["EX"].rows):
        assert checked


# --- properties --------------------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda t: any(c in " \t\r\n" or not c.isspace() for c in t))
"""Free text FHIR can hold: not made only of whitespace other than plain spaces (a documented limit)."""
_NUMBER = st.from_regex(r"-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,4})?([eE][+-]?[0-9])?", fullmatch=True)


@st.composite
def dtc(draw: st.DrawFn) -> str:
    if draw(st.booleans()):  # a small pool: start = end (one CM administration), same-day weights
        return draw(st.sampled_from(["1991-04-17", "1991-04-17T09:30", "1991-04", "1991"]))
    text = f"{draw(st.integers(1900, 2099)):04d}"
    parts = ((1, 12, "-"), (1, 28, "-"), (0, 23, "T"), (0, 59, ":"), (0, 59, ":"))
    for low, high, sep in parts:
        if not draw(st.booleans()):
            return text
        text += f"{sep}{draw(st.integers(low, high)):02d}"
    return text


def cell(name: str, domain: str) -> st.SearchStrategy[str]:
    spec = DOMAINS[domain]
    if name in spec.integer:
        value: st.SearchStrategy[str] = st.integers(0, 99).map(str)
    elif name in spec.numeric:
        value = _NUMBER
    elif name in spec.dates:
        value = dtc()
    else:
        value = st.one_of(
            _TEXT,
            st.sampled_from(
                ["g/kg", "g", "mg", "PLACEBO", IVIG, "PREDNISONE", "ORAL", "INTRAVENOUS"]
            ),
        )
    return st.one_of(st.just(""), value)


@st.composite
def random_table(draw: st.DrawFn, domain: str) -> Table:
    spec = DOMAINS[domain]
    optional = draw(st.lists(st.sampled_from(spec.optional), unique=True))
    extras = draw(st.lists(st.sampled_from(["XXNOTE", "SPONSOR1"]), unique=True))
    columns = list(spec.required) + optional + extras
    rows = []
    for number, usubjid in enumerate(
        draw(st.lists(st.sampled_from(["S-1", "S/2", "Ø%3"]), max_size=6)), 1
    ):
        row = {"STUDYID": "ST1", "DOMAIN": domain, "USUBJID": usubjid, spec.seq or "": str(number)}
        for name in columns:
            if name not in row:
                row[name] = draw(cell(name, domain))
        rows.append(row)
    return Table(domain, columns, rows)


weights_table = st.lists(
    st.tuples(st.sampled_from(["S-1", "S/2", "Ø%3"]), _NUMBER, st.one_of(st.just(""), dtc())),
    max_size=4,
).map(
    lambda ws: table(
        "VS",
        VS_COLUMNS,
        *(f"ST1|VS|{u}|{i}|WEIGHT|Weight|{w}|kg|{w}|kg|{d}" for i, (u, w, d) in enumerate(ws, 1)),
    )
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ex=random_table("EX"), cm=random_table("CM"), vs=weights_table)
def test_random_tables_round_trip_and_validate(
    ex: Table, cm: Table, vs: Table, validate: Validate
) -> None:
    for resource in assert_round_trips({"EX": ex, "CM": cm, "VS": vs}):
        validate(resource)


@pytest.mark.parametrize(
    ("dose", "weight", "grams"),
    [("1", "74.50", "74.50"), ("2", "68.3", "136.6"), ("0.4", "55.25", "22.100")],
)
def test_grams_in_the_resource_are_exact(dose: str, weight: str, grams: str) -> None:
    vs = table("VS", VS_COLUMNS, f"S1|VS|S1-001|1|WEIGHT|Weight|{weight}|kg|{weight}|kg|1991-01-01")
    ex = table(
        "EX", EX_COLUMNS, f"S1|EX|S1-001|1|{IVIG}|{dose}|g/kg|SOLUTION|INTRAVENOUS||1991-02-01||"
    )
    (administration,) = assert_round_trips({"VS": vs, "EX": ex})
    assert str(administration["dosage"]["dose"]["value"]) == grams


@pytest.mark.hapi
def test_hapi_finds_no_error_in_the_example_resources(hapi_base_url: str) -> None:
    """HAPI's $validate on every resource of the example tables (the plugin's server)."""
    from adapter.client import FhirClient

    with FhirClient(hapi_base_url) as client:
        for resource in medication.to_fhir(example()):
            errors = [str(issue) for issue in client.validate(resource) if issue.is_error]
            assert not errors, f"{resource['resourceType']} {resource['identifier']}: {errors}"
