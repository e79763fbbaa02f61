"""VS, QS, RS <-> Observation: every cell comes back as written, codes and units, links, determinism."""

from __future__ import annotations

import json
from decimal import Decimal

import orjson
import pytest
from family_tables import (
    FREE_TEXT,
    JSON,
    Validate,
    assert_family_round_trips,
    assert_reading_leaves_resources_untouched,
    by_key,
    table,
    written,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings import observation
from mappings.identity import patient_id, row_identifier, row_resource_id, study_id
from mappings.observation import ObservationReader
from mappings.primitives import read_variable_extensions
from mappings.sdtm import DOMAINS, Table, Trial
from mappings.terminology import (
    EXT_EPOCH,
    EXT_RESEARCH_STUDY,
    EXT_SDTM_DTC,
    EXT_VISIT,
    LOINC,
    OBSERVATION_CATEGORY,
    PROJECT_CODESYSTEM,
    UCUM,
)


def round_trip(trial: Trial) -> tuple[list[JSON], dict[str, list[dict[str, str]]]]:
    resources = list(observation.to_fhir(trial))
    reader = ObservationReader()
    for resource in resources:
        assert reader.feed(resource)
    return resources, reader.rows()


def assert_round_trips(trial: Trial) -> list[JSON]:
    return assert_family_round_trips(
        observation.to_fhir, ObservationReader(), trial, ("VS", "QS", "RS")
    )


VS = table(
    "VS",
    "STUDYID DOMAIN USUBJID VSSEQ VSTESTCD VSTEST VSORRES VSORRESU VSSTRESN VSSTRESU VISITNUM VISIT EPOCH VSDTC VSLOC SPONSORNOTE",
    "S1|VS|S1-001|1|WEIGHT|Weight|73.50|kg|73.50|kg|1|SCREENING|SCREENING|1991-04-17T09:30||"
    + FREE_TEXT,
    "S1|VS|S1-001|2|WEIGHT|Weight|162|LB|73.48|kg|2.5|MONTH 1|TREATMENT 1|1991-04||",
    "S1|VS|S1-002|1|HEIGHT|Height|170|cm|170|cm|||SCREENING|1991|ARM|",
    "S1|VS|S1-002|2|TEMP|Temperature" + "|" * 10,
)
QS = table(
    "QS",
    "STUDYID DOMAIN USUBJID QSSEQ QSTESTCD QSTEST QSCAT QSORRES QSSTRESN VISITNUM VISIT EPOCH QSDTC XXNOTE",
    "S1|QS|S1-001|1|MSSUM|Muscle Strength Sum Score|MUSCLE STRENGTH|74.50|74.50|1|BASELINE|SCREENING|1991-04-17T09:30|"
    + FREE_TEXT,
    "S1|QS|S1-001|2|NSSTOT|Neuromuscular Symptom Score Total|NEUROMUSCULAR SYMPTOMS|29|29|1|BASELINE|SCREENING|1991-04|",
    "S1|QS|S1-001|3|HANDGRIP|Hand grip item|ITEMS|4+|4|2|MONTH 1|TREATMENT 1||",
    "S1|QS|S1-002|1|RASHGR|Rash Grade|SKIN RASH|NOT DONE||||||",
)
RS = table(
    "RS",
    "STUDYID DOMAIN USUBJID RSSEQ RSTESTCD RSTEST RSORRES RSDTC EPOCH RSSTRESC",
    "S1|RS|S1-001|1|CLINRESP|Clinical Response|MAJOR IMPROVEMENT|1991-07-01|TREATMENT 1|MAJOR",
    'S1|RS|S1-002|1|CLINRESP|Clinical Response|Better, "somewhat"|1991-07|TREATMENT 1|',
    "S1|RS|S1-002|2|CLINRESP|Clinical Response||||",
)


def example() -> Trial:
    return {"VS": VS, "QS": QS, "RS": RS}


def by_identifier(resources: list[JSON], domain: str, usubjid: str, seq: str) -> JSON:
    wanted = row_identifier(domain, "S1", usubjid, seq)
    (found,) = [r for r in resources if r["identifier"][0] == wanted]
    return found


# --- examples -------------------------------------------------------------------------------------------


def test_example_tables_round_trip_cell_for_cell() -> None:
    assert_round_trips(example())


def test_every_observation_validates_as_r4b(validate: Validate) -> None:
    for resource in observation.to_fhir(example()):
        validate(resource)


def test_output_is_deterministic() -> None:
    first = list(observation.to_fhir(example()))
    again = list(observation.to_fhir(example()))
    assert orjson.dumps(first, default=str) == orjson.dumps(again, default=str)


def test_ids_identifiers_subject_and_study_link() -> None:
    resources = list(observation.to_fhir(example()))
    weight = by_identifier(resources, "VS", "S1-001", "1")
    assert weight["id"] == row_resource_id("Observation", "VS", "S1", "S1-001", "1")
    assert weight["subject"] == {"reference": f"Patient/{patient_id('S1', 'S1-001')}"}
    study = [e for e in weight["extension"] if e["url"] == EXT_RESEARCH_STUDY]
    assert study == [
        {
            "url": EXT_RESEARCH_STUDY,
            "valueReference": {"reference": f"ResearchStudy/{study_id('S1')}"},
        }
    ]
    assert len({r["id"] for r in resources}) == len(resources)


def test_weight_is_loinc_body_weight_in_ucum_kg_keeping_its_precision() -> None:
    weight = by_identifier(list(observation.to_fhir(example())), "VS", "S1-001", "1")
    systems = [(c["system"], c["code"]) for c in weight["code"]["coding"]]
    assert systems == [(LOINC, "29463-7"), (PROJECT_CODESYSTEM, "WEIGHT")]
    assert weight["code"]["text"] == "Weight"
    assert weight["category"][0]["coding"][0]["code"] == "vital-signs"
    q = weight["valueQuantity"]
    assert q == {"value": Decimal("73.50"), "unit": "kg", "system": UCUM, "code": "kg"}
    assert str(q["value"]) == "73.50"
    cells = read_variable_extensions(weight)
    assert cells == {"VSORRES": "73.50", "VSORRESU": "kg", "SPONSORNOTE": FREE_TEXT}


def test_a_date_with_a_time_keeps_the_written_text_in_sdtm_dtc() -> None:
    weight = by_identifier(list(observation.to_fhir(example())), "VS", "S1-001", "1")
    assert weight["effectiveDateTime"] == "1991-04-17"
    assert weight["_effectiveDateTime"] == {
        "extension": [{"url": EXT_SDTM_DTC, "valueString": "1991-04-17T09:30"}]
    }
    partial = by_identifier(list(observation.to_fhir(example())), "VS", "S1-001", "2")
    assert partial["effectiveDateTime"] == "1991-04"
    assert "_effectiveDateTime" not in partial


def test_epoch_and_visit_extensions() -> None:
    second = by_identifier(list(observation.to_fhir(example())), "VS", "S1-001", "2")
    assert {"url": EXT_EPOCH, "valueString": "TREATMENT 1"} in second["extension"]
    (visit,) = [e for e in second["extension"] if e["url"] == EXT_VISIT]
    assert visit["extension"] == [
        {"url": "visitnum", "valueDecimal": Decimal("2.5")},
        {"url": "visit", "valueString": "MONTH 1"},
    ]


def test_unit_outside_ucum_table_is_kept_as_unit_text_only() -> None:
    vs = table(
        "VS",
        "STUDYID DOMAIN USUBJID VSSEQ VSTESTCD VSTEST VSORRES VSORRESU VSSTRESN VSSTRESU VSDTC",
        "S1|VS|S1-001|1|GRIP|Grip|30|kgf|30|kgf|1991",
    )
    (grip,) = assert_round_trips({"VS": vs})
    assert grip["valueQuantity"] == {"value": Decimal("30"), "unit": "kgf"}


def test_scores_are_survey_observations_in_ucum_score() -> None:
    resources = list(observation.to_fhir(example()))
    score = by_identifier(resources, "QS", "S1-001", "1")
    assert score["category"][0]["coding"][0] == {
        "system": OBSERVATION_CATEGORY,
        "code": "survey",
        "display": "Survey",
    }
    assert score["code"]["coding"] == [
        {"system": PROJECT_CODESYSTEM, "code": "MSSUM", "display": "Muscle-strength sum score"}
    ]
    assert score["code"]["text"] == "Muscle Strength Sum Score"
    assert score["valueQuantity"] == {
        "value": Decimal("74.50"),
        "unit": "{score}",
        "system": UCUM,
        "code": "{score}",
    }
    assert read_variable_extensions(score)["QSORRES"] == "74.50"


def test_an_unknown_score_code_is_still_carried_as_a_coding() -> None:
    item = by_identifier(list(observation.to_fhir(example())), "QS", "S1-001", "3")
    assert item["code"]["coding"] == [{"system": PROJECT_CODESYSTEM, "code": "HANDGRIP"}]


def test_a_score_not_done_has_no_value() -> None:
    not_done = by_identifier(list(observation.to_fhir(example())), "QS", "S1-002", "1")
    assert not any(k.startswith("value") for k in not_done)
    assert read_variable_extensions(not_done)["QSORRES"] == "NOT DONE"


def test_response_is_coded_when_known_and_text_as_written() -> None:
    resources = list(observation.to_fhir(example()))
    major = by_identifier(resources, "RS", "S1-001", "1")
    assert major["category"][0]["coding"][0]["code"] == "exam"
    assert major["valueCodeableConcept"] == {
        "coding": [
            {
                "system": PROJECT_CODESYSTEM,
                "code": "MAJOR IMPROVEMENT",
                "display": "Major improvement",
            }
        ],
        "text": "MAJOR IMPROVEMENT",
    }
    free = by_identifier(resources, "RS", "S1-002", "1")
    assert free["valueCodeableConcept"] == {"text": 'Better, "somewhat"'}


def test_numbers_that_decimal_would_rewrite_come_back_as_written(validate: Validate) -> None:
    qs = table(
        "QS",
        "STUDYID DOMAIN USUBJID QSSEQ QSTESTCD QSTEST QSSTRESN VISITNUM",
        "S1|QS|S1-001|1|MSSUM|Strength|1e3|0.0000001",
    )
    (score,) = assert_round_trips({"QS": qs})
    assert score["valueQuantity"]["value"] == Decimal("1000")
    validate(score)


def test_a_test_code_that_is_no_fhir_code_rides_as_a_string(validate: Validate) -> None:
    qs = table(
        "QS",
        "STUDYID DOMAIN USUBJID QSSEQ QSTESTCD QSTEST QSSTRESN",
        "S1|QS|S1-001|1|MS  SUM| |1",
        "S1|QS|S1-001|2|||2",
    )
    resources = assert_round_trips({"QS": qs})
    for resource in resources:
        validate(resource)
    assert "coding" not in resources[0]["code"]


def test_keys_that_need_escaping_round_trip() -> None:
    rs = table(
        "RS",
        "STUDYID DOMAIN USUBJID RSSEQ RSTESTCD RSTEST RSORRES",
        "S/1|RS|a%2F b,c|1|CLINRESP|Clinical Response|NO CHANGE",
    )
    assert_round_trips({"RS": rs})


def test_resources_survive_json_with_decimals_as_written() -> None:
    def fragment(value: object) -> orjson.Fragment:
        assert isinstance(value, Decimal)
        return orjson.Fragment(str(value))

    text = orjson.dumps(list(observation.to_fhir(example())), default=fragment)
    assert b"73.50" in text
    reader = ObservationReader()
    for resource in json.loads(text, parse_float=Decimal):
        assert reader.feed(resource)
    back = reader.rows()
    assert by_key(back["VS"], "VSSEQ") == by_key(written(VS.rows), "VSSEQ")


def test_reader_leaves_resources_of_other_families() -> None:
    reader = ObservationReader()
    mi = {
        "resourceType": "Observation",
        "identifier": [row_identifier("MI", "S1", "S1-001", "1")],
        "status": "final",
        "code": {"text": "x"},
    }
    assert not reader.feed(mi)
    assert not reader.feed({"resourceType": "Patient", "id": "x"})
    assert not reader.feed({"resourceType": "Observation", "status": "final"})
    assert reader.rows() == {}


def test_a_cell_outside_the_tables_columns_is_still_carried() -> None:
    qs = Table(
        "QS",
        ["STUDYID", "DOMAIN", "USUBJID", "QSSEQ"],
        [
            {
                "STUDYID": "S1",
                "DOMAIN": "QS",
                "USUBJID": "S1-001",
                "QSSEQ": "1",
                "QSTESTCD": "MSSUM",
                "ZZ": FREE_TEXT,
            }
        ],
    )
    _, back = round_trip({"QS": qs})
    assert back["QS"] == written(qs.rows)


def test_absent_tables_give_nothing() -> None:
    assert list(observation.to_fhir({})) == []


def test_reading_back_leaves_the_resources_untouched() -> None:
    assert_reading_leaves_resources_untouched(
        list(observation.to_fhir(example())), ObservationReader()
    )


# --- the reconstructed cohort ---------------------------------------------------------------------------


def test_cohort_rows_round_trip_and_validate(dalakas_trial: Trial, validate: Validate) -> None:
    trial: Trial = {d: dalakas_trial[d] for d in ("VS", "QS", "RS") if d in dalakas_trial}
    assert trial
    for resource in assert_round_trips(trial):
        validate(resource)


# --- properties -------------------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda t: any(c in " \t\r\n" or not c.isspace() for c in t))
"""Free text FHIR can hold: not made only of whitespace other than plain spaces (a documented limit)."""


@st.composite
def dtc(draw: st.DrawFn) -> str:
    year = draw(st.integers(1900, 2099))
    text = f"{year:04d}"
    for width, low, high, sep in (
        (2, 1, 12, "-"),
        (2, 1, 28, "-"),
        (2, 0, 23, "T"),
        (2, 0, 59, ":"),
        (2, 0, 59, ":"),
    ):
        if not draw(st.booleans()):
            return text
        text += f"{sep}{draw(st.integers(low, high)):0{width}d}"
    if draw(st.booleans()):
        text += "." + draw(st.from_regex(r"[0-9]{1,3}", fullmatch=True))
    return text


def cell(spec_numeric: bool, spec_date: bool) -> st.SearchStrategy[str]:
    if spec_numeric:
        value = st.from_regex(
            r"-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,4})?([eE][+-]?[0-9])?", fullmatch=True
        )
    elif spec_date:
        value = dtc()
    else:
        value = st.one_of(
            _TEXT,
            st.sampled_from(["WEIGHT", "MSSUM", "RASHGR", "MAJOR IMPROVEMENT", "kg", "um", "/mm2"]),
        )
    return st.one_of(st.just(""), value)


@st.composite
def random_table(draw: st.DrawFn, domain: str) -> Table:
    spec = DOMAINS[domain]
    optional = draw(st.lists(st.sampled_from(spec.optional), unique=True)) if spec.optional else []
    extras = draw(st.lists(st.sampled_from(["XXNOTE", "SPONSOR1", "ZZFLAG"]), unique=True))
    columns = list(spec.required) + optional + extras
    subjects = draw(
        st.lists(st.sampled_from(["S-001", "S/002", "S%3", "Ø 4"]), min_size=1, max_size=3)
    )
    rows = []
    for number, usubjid in enumerate(
        draw(st.lists(st.sampled_from(subjects), max_size=6)), start=1
    ):
        row = {"STUDYID": "ST,1", "DOMAIN": domain, "USUBJID": usubjid, spec.seq or "": str(number)}
        for name in columns:
            if name not in row:
                row[name] = draw(
                    cell(name in spec.numeric and name not in spec.integer, name in spec.dates)
                )
            if name in spec.integer and name != spec.seq:
                row[name] = draw(st.one_of(st.just(""), st.integers(0, 99).map(str)))
        rows.append(row)
    return Table(domain, columns, rows)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vs=random_table("VS"), qs=random_table("QS"), rs=random_table("RS"))
def test_random_tables_round_trip_and_validate(
    vs: Table, qs: Table, rs: Table, validate: Validate
) -> None:
    for resource in assert_round_trips({"VS": vs, "QS": qs, "RS": rs}):
        validate(resource)


@pytest.mark.hapi
def test_hapi_finds_no_error_in_the_example_resources(hapi_base_url: str) -> None:
    """HAPI's $validate on every resource of the example tables (the plugin's server)."""
    from adapter.client import FhirClient

    with FhirClient(hapi_base_url) as client:
        for resource in observation.to_fhir(example()):
            errors = [str(issue) for issue in client.validate(resource) if issue.is_error]
            assert not errors, f"{resource['resourceType']} {resource['identifier']}: {errors}"
