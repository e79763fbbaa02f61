"""PR, MI <-> Procedure, Specimen, finding Observations, DiagnosticReport: round trips, links, order."""

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

from mappings import biopsy
from mappings.biopsy import BiopsyReader
from mappings.identity import (
    SID_DERIVED,
    SID_SPECIMEN,
    key_value,
    patient_id,
    resource_id,
    row_identifier,
    row_resource_id,
    study_id,
)
from mappings.primitives import read_variable_extensions
from mappings.sdtm import DOMAINS, Table, Trial
from mappings.terminology import EXT_RESEARCH_STUDY, EXT_SDTM_DTC, PROJECT_CODESYSTEM, SNOMED, UCUM


def assert_round_trips(trial: Trial) -> list[JSON]:
    return assert_family_round_trips(biopsy.to_fhir, BiopsyReader(), trial, ("PR", "MI"))


PR = table(
    "PR",
    "STUDYID DOMAIN USUBJID PRSEQ PRREFID PRTRT PRLOC PRLAT EPOCH PRSTDTC PRENDTC XXNOTE",
    "S1|PR|S1-001|1|MB-001-1|MUSCLE BIOPSY|QUADRICEPS|LEFT|SCREENING|1991-04-17T09:30||"
    + FREE_TEXT,
    "S1|PR|S1-001|2|MB-001-2|MUSCLE BIOPSY|DELTOID||TREATMENT 1|1991-07|1991-07|",
    "S1|PR|S1-002|1||SKIN BIOPSY||||||",
)
MI_COLUMNS = (
    "STUDYID DOMAIN USUBJID MISEQ MIREFID MITESTCD MITEST MIORRES MIORRESU MISTRESC MISTRESN "
    "MISPEC MILOC EPOCH MIDTC MIMETHOD XXNOTE"
)
MI = table(
    "MI",
    MI_COLUMNS,
    "S1|MI|S1-001|1|MB-001-1|FIBDIAM|Mean Muscle Fiber Diameter|44.90|um|44.90|44.90|SKELETAL MUSCLE|QUADRICEPS|SCREENING|1991-04-17T09:30|MORPHOMETRY|",
    "S1|MI|S1-001|2|MB-001-1|CAPDENS|Capillary Density|192|/mm2|192|192|SKELETAL MUSCLE|QUADRICEPS|SCREENING|1991-04-17T09:30||",
    "S1|MI|S1-001|3|MB-001-1|MACCAP|Membrane Attack Complex on Capillaries|PRESENT||PRESENT||SKELETAL MUSCLE|QUADRICEPS|SCREENING|1991-04-17T09:30||",
    "S1|MI|S1-001|5|MB-001-1|MICONCL|Pathologist Conclusion|"
    + FREE_TEXT
    + "||"
    + FREE_TEXT
    + "||SKELETAL MUSCLE|QUADRICEPS|SCREENING|1991-04-17T09:30||note",
    "S1|MI|S1-001|4|MB-001-1|ICAM1|ICAM-1 Expression|focal+||WIDESPREAD||SKELETAL MUSCLE|QUADRICEPS|SCREENING|1991-04-17T09:30||",
    "S1|MI|S1-001|6|MB-001-2|MHC1|MHC class I Expression|NONE||NONE||SKELETAL MUSCLE|DELTOID|TREATMENT 1|1991-07||",
    "S1|MI|S1-003|1|MB-003-1|FIBDIAM|Mean Muscle Fiber Diameter|51|um|||SKELETAL MUSCLE|||||",
    "S1|MI|S1-003|2||CAPDIAM|Mean Capillary Diameter" + "|" * 10,
)


def example() -> Trial:
    return {"PR": PR, "MI": MI}


def find(resources: list[JSON], domain: str, usubjid: str, seq: str) -> JSON:
    wanted = row_identifier(domain, "S1", usubjid, seq)
    (found,) = [r for r in resources if r.get("identifier", [None])[0] == wanted]
    return found


def of_type(resources: list[JSON], kind: str) -> list[JSON]:
    return [r for r in resources if r["resourceType"] == kind]


def specimen_id(usubjid: str, refid: str) -> str:
    return resource_id("Specimen", "S1", usubjid, refid)


# --- round trips, validity, order ---------------------------------------------------------------------


def test_example_tables_round_trip_cell_for_cell() -> None:
    assert_round_trips(example())


def test_every_resource_validates_as_r4b(validate: Validate) -> None:
    for resource in biopsy.to_fhir(example()):
        validate(resource)


def test_output_is_deterministic() -> None:
    first = orjson.dumps(list(biopsy.to_fhir(example())), default=str)
    assert orjson.dumps(list(biopsy.to_fhir(example())), default=str) == first


def test_what_is_made_one_of_each() -> None:
    resources = list(biopsy.to_fhir(example()))
    assert len(of_type(resources, "Procedure")) == len(PR.rows)
    assert len(of_type(resources, "Observation")) == len(MI.rows)
    # specimens MB-001-1, MB-001-2 (from PR) and MB-003-1 (MI only); reports for each MI specimen
    assert {r["id"] for r in of_type(resources, "Specimen")} == {
        specimen_id("S1-001", "MB-001-1"),
        specimen_id("S1-001", "MB-001-2"),
        specimen_id("S1-003", "MB-003-1"),
    }
    assert len(of_type(resources, "DiagnosticReport")) == 3
    assert len({r["id"] for r in resources}) == len(resources)


def test_specimens_come_before_observations_and_reports_after() -> None:
    resources = list(biopsy.to_fhir(example()))
    position = {r["id"]: n for n, r in enumerate(resources)}
    for observation in of_type(resources, "Observation"):
        if "specimen" in observation:
            specimen = observation["specimen"]["reference"].removeprefix("Specimen/")
            assert position[specimen] < position[observation["id"]]
    for report in of_type(resources, "DiagnosticReport"):
        for result in report["result"]:
            assert (
                position[result["reference"].removeprefix("Observation/")] < position[report["id"]]
            )


# --- PR -> Procedure, Specimen ---------------------------------------------------------------------------------


def test_procedure_codes_body_site_and_links() -> None:
    resources = list(biopsy.to_fhir(example()))
    procedure = find(resources, "PR", "S1-001", "1")
    assert procedure["id"] == row_resource_id("Procedure", "PR", "S1", "S1-001", "1")
    assert procedure["status"] == "completed"
    assert procedure["code"] == {
        "coding": [{"system": SNOMED, "code": "178263003", "display": "Biopsy of muscle"}],
        "text": "MUSCLE BIOPSY",
    }
    assert procedure["bodySite"] == [
        {
            "coding": [
                {"system": SNOMED, "code": "21989003", "display": "Quadriceps femoris muscle"}
            ],
            "text": "QUADRICEPS",
        }
    ]
    assert procedure["subject"] == {"reference": f"Patient/{patient_id('S1', 'S1-001')}"}
    assert {
        "url": EXT_RESEARCH_STUDY,
        "valueReference": {"reference": f"ResearchStudy/{study_id('S1')}"},
    } in procedure["extension"]
    assert procedure["performedDateTime"] == "1991-04-17"
    assert procedure["_performedDateTime"]["extension"][0] == {
        "url": EXT_SDTM_DTC,
        "valueString": "1991-04-17T09:30",
    }
    cells = read_variable_extensions(procedure)
    assert cells == {"PRREFID": "MB-001-1", "PRLAT": "LEFT", "XXNOTE": FREE_TEXT}


def test_other_body_sites_and_treatments_are_text_only() -> None:
    resources = list(biopsy.to_fhir(example()))
    deltoid = find(resources, "PR", "S1-001", "2")
    assert deltoid["bodySite"] == [{"text": "DELTOID"}]
    assert deltoid["performedPeriod"] == {"start": "1991-07", "end": "1991-07"}
    skin = find(resources, "PR", "S1-002", "1")
    assert skin["code"] == {"text": "SKIN BIOPSY"}


def test_specimen_identity_collection_and_type() -> None:
    resources = list(biopsy.to_fhir(example()))
    (specimen,) = [
        r for r in of_type(resources, "Specimen") if r["id"] == specimen_id("S1-001", "MB-001-1")
    ]
    assert specimen["identifier"] == [
        {"system": SID_SPECIMEN, "value": key_value("S1", "S1-001", "MB-001-1")}
    ]
    assert specimen["subject"] == {"reference": f"Patient/{patient_id('S1', 'S1-001')}"}
    assert specimen["type"] == {"text": "SKELETAL MUSCLE"}
    assert specimen["collection"]["collectedDateTime"] == "1991-04-17"
    assert specimen["collection"]["bodySite"]["text"] == "QUADRICEPS"


# --- MI -> finding Observations ---------------------------------------------------------------------------------


def test_measured_findings_are_quantities_in_ucum() -> None:
    resources = list(biopsy.to_fhir(example()))
    diameter = find(resources, "MI", "S1-001", "1")
    assert diameter["valueQuantity"] == {
        "value": Decimal("44.90"),
        "unit": "um",
        "system": UCUM,
        "code": "um",
    }
    assert str(diameter["valueQuantity"]["value"]) == "44.90"
    assert diameter["code"]["coding"][0] == {
        "system": PROJECT_CODESYSTEM,
        "code": "FIBDIAM",
        "display": "Mean muscle fibre diameter",
    }
    assert diameter["code"]["text"] == "Mean Muscle Fiber Diameter"
    assert diameter["method"] == {"text": "MORPHOMETRY"}
    density = find(resources, "MI", "S1-001", "2")
    assert density["valueQuantity"]["code"] == "/mm2"
    assert read_variable_extensions(density) == {
        "MIORRES": "192",
        "MIORRESU": "/mm2",
        "MISTRESC": "192",
        "MISPEC": "SKELETAL MUSCLE",
    }


def test_coded_findings_are_codeable_concepts_with_the_text_as_written() -> None:
    resources = list(biopsy.to_fhir(example()))
    mac = find(resources, "MI", "S1-001", "3")
    assert mac["valueCodeableConcept"] == {
        "coding": [{"system": PROJECT_CODESYSTEM, "code": "PRESENT", "display": "Present"}],
        "text": "PRESENT",
    }
    icam = find(resources, "MI", "S1-001", "4")
    assert icam["valueCodeableConcept"]["coding"][0]["code"] == "WIDESPREAD"
    assert read_variable_extensions(icam)["MIORRES"] == "focal+"


def test_the_conclusion_is_a_string() -> None:
    conclusion = find(list(biopsy.to_fhir(example())), "MI", "S1-001", "5")
    assert conclusion["valueString"] == FREE_TEXT


def test_findings_point_to_their_specimen_and_body_site() -> None:
    resources = list(biopsy.to_fhir(example()))
    diameter = find(resources, "MI", "S1-001", "1")
    assert diameter["specimen"] == {
        "reference": f"Specimen/{specimen_id('S1-001', 'MB-001-1')}",
        "identifier": {"system": SID_SPECIMEN, "value": key_value("S1", "S1-001", "MB-001-1")},
    }
    assert diameter["bodySite"]["coding"][0]["code"] == "21989003"
    without = find(resources, "MI", "S1-003", "2")
    assert "specimen" not in without


# --- the DiagnosticReport --------------------------------------------------------------------------------------


def test_one_report_per_specimen_with_its_findings_in_order() -> None:
    resources = list(biopsy.to_fhir(example()))
    report_id = resource_id("DiagnosticReport", "S1", "S1-001", "MB-001-1")
    (report,) = [r for r in of_type(resources, "DiagnosticReport") if r["id"] == report_id]
    assert report["identifier"] == [
        {"system": SID_DERIVED, "value": key_value("DiagnosticReport", "S1", "S1-001", "MB-001-1")}
    ]
    assert report["status"] == "final"
    assert report["code"] == {"text": "Muscle biopsy pathology"}
    assert report["subject"] == {"reference": f"Patient/{patient_id('S1', 'S1-001')}"}
    assert report["specimen"][0]["reference"] == f"Specimen/{specimen_id('S1-001', 'MB-001-1')}"
    expected = [row_resource_id("Observation", "MI", "S1", "S1-001", s) for s in "12345"]
    assert [r["reference"] for r in report["result"]] == [f"Observation/{i}" for i in expected]
    assert report["conclusion"] == FREE_TEXT
    assert report["effectiveDateTime"] == "1991-04-17"
    assert report["extension"] == [
        {
            "url": EXT_RESEARCH_STUDY,
            "valueReference": {"reference": f"ResearchStudy/{study_id('S1')}"},
        }
    ]


def test_the_reader_takes_derived_resources_without_rows() -> None:
    resources = list(biopsy.to_fhir(example()))
    reader = BiopsyReader()
    for resource in of_type(resources, "Specimen") + of_type(resources, "DiagnosticReport"):
        assert reader.feed(resource)
    assert reader.rows() == {}
    assert not reader.feed(
        {"resourceType": "Observation", "identifier": [row_identifier("QS", "S", "U", "1")]}
    )
    assert not reader.feed(
        {"resourceType": "Specimen", "identifier": [{"system": "urn:x", "value": "1"}]}
    )


def test_reading_back_leaves_the_resources_untouched() -> None:
    assert_reading_leaves_resources_untouched(list(biopsy.to_fhir(example())), BiopsyReader())


# --- the reconstructed cohort -----------------------------------------------------------------------------------


def test_cohort_rows_round_trip_and_validate(dalakas_trial: Trial, validate: Validate) -> None:
    trial: Trial = {d: dalakas_trial[d] for d in ("PR", "MI") if d in dalakas_trial}
    assert trial
    for resource in assert_round_trips(trial):
        validate(resource)


def test_cohort_reports_conclude_with_the_pathologist(dalakas_trial: Trial) -> None:
    resources = list(biopsy.to_fhir(dalakas_trial))
    conclusions = {
        (r["STUDYID"], r["USUBJID"], r["MIREFID"]): r["MISTRESC"] or r["MIORRES"]
        for r in dalakas_trial["MI"].rows
        if r["MITESTCD"] == "MICONCL"
    }
    reports = of_type(resources, "DiagnosticReport")
    assert len(reports) == len(
        {(r["STUDYID"], r["USUBJID"], r["MIREFID"]) for r in dalakas_trial["MI"].rows}
    )
    for key, text in conclusions.items():
        (report,) = [r for r in reports if r["id"] == resource_id("DiagnosticReport", *key)]
        assert report["conclusion"] == text


# --- properties -----------------------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda t: any(c in " \t\r\n" or not c.isspace() for c in t))
"""Free text FHIR can hold: not made only of whitespace other than plain spaces (a documented limit)."""
_NUMBER = st.from_regex(r"-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,4})?([eE][+-]?[0-9])?", fullmatch=True)


@st.composite
def dtc(draw: st.DrawFn) -> str:
    text = f"{draw(st.integers(1900, 2099)):04d}"
    for low, high, sep in ((1, 12, "-"), (1, 28, "-"), (0, 23, "T"), (0, 59, ":")):
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
    elif name.endswith("REFID"):
        value = st.sampled_from(["MB-1", "MB/2", "Ø 3"])
    else:
        value = st.one_of(
            _TEXT,
            st.sampled_from(
                ["PRESENT", "FOCAL", "um", "/mm2", "QUADRICEPS", "MUSCLE BIOPSY", "MICONCL"]
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
    subjects = st.sampled_from(["S-1", "S/2", "Ø%3"])
    for number, usubjid in enumerate(draw(st.lists(subjects, max_size=7)), 1):
        row = {"STUDYID": "ST1", "DOMAIN": domain, "USUBJID": usubjid, spec.seq or "": str(number)}
        for name in columns:
            if name not in row:
                row[name] = draw(cell(name, domain))
        rows.append(row)
    return Table(domain, columns, rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pr=random_table("PR"), mi=random_table("MI"))
def test_random_tables_round_trip_and_validate(pr: Table, mi: Table, validate: Validate) -> None:
    for resource in assert_round_trips({"PR": pr, "MI": mi}):
        validate(resource)


@pytest.mark.hapi
def test_hapi_finds_no_error_in_the_example_resources(hapi_base_url: str) -> None:
    """HAPI's $validate on every resource of the example tables (the plugin's server)."""
    from adapter.client import FhirClient

    with FhirClient(hapi_base_url) as client:
        for resource in biopsy.to_fhir(example()):
            errors = [str(issue) for issue in client.validate(resource) if issue.is_error]
            assert not errors, f"{resource['resourceType']} {resource['identifier']}: {errors}"
