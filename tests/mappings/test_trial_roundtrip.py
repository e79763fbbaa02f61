"""The whole trial both ways: the reconstructed Dalakas 1993 cohort, every domain, SDTM -> FHIR -> SDTM."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mappings.identity import SID_DERIVED
from mappings.sdtm import DOMAINS, Table, Trial
from mappings.terminology import EXT_SDTM_TABLE, EXT_SDTM_VARIABLE, EXT_SUBJECT_ELEMENT
from mappings.trial import TrialAssembler, fhir_to_trial, trial_to_fhir

Validate = Callable[[dict[str, Any]], None]

TYPE_ORDER = ["CodeSystem", "ResearchStudy", "Patient", "ResearchSubject", "Condition"]


@pytest.fixture(scope="module")
def resources(dalakas_trial: Trial) -> list[dict[str, Any]]:
    return list(trial_to_fhir(dalakas_trial))


@pytest.fixture(scope="module")
def back(resources: list[dict[str, Any]]) -> Trial:
    return fhir_to_trial(resources)


def assert_same_table(written: Table, read: Table) -> None:
    assert read.columns == written.columns
    assert len(read.rows) == len(written.rows)
    for number, (expected, found) in enumerate(zip(written.rows, read.rows, strict=True), start=1):
        differing = {
            c: (expected.get(c), found.get(c))
            for c in written.columns
            if expected.get(c) != found.get(c)
        }
        assert not differing, f"{written.domain} row {number}: (written, read back) {differing}"
        assert found.keys() == expected.keys()


CLINICAL = Path(__file__).resolve().parents[1] / "data" / "sdtm_clinical"
"""A small LB / AE / MH sample (with its DM): the domains the cohort does not have."""
CLINICAL_DOMAINS = ("LB", "AE", "MH")


@pytest.mark.parametrize("domain", [d for d in DOMAINS if d not in CLINICAL_DOMAINS])
def test_every_domain_comes_back_cell_by_cell(
    domain: str, dalakas_trial: Trial, back: Trial
) -> None:
    assert domain in dalakas_trial, f"the fixture should hold every domain; {domain} is missing"
    assert_same_table(dalakas_trial[domain], back[domain])


def test_every_domain_is_in_the_cohort_or_the_clinical_sample(dalakas_trial: Trial) -> None:
    from adapter.tables import read_trial

    assert set(DOMAINS) == set(dalakas_trial) | set(read_trial(CLINICAL))


def test_the_clinical_sample_comes_back_byte_for_byte(tmp_path: Path, validate: Validate) -> None:
    from adapter.fhir_files import read_resources, write_ndjson
    from adapter.tables import read_trial, write_trial

    written = read_trial(CLINICAL)
    assert set(CLINICAL_DOMAINS) <= set(written)
    resources = list(trial_to_fhir(written))
    for resource in resources:
        validate(resource)
    write_ndjson(resources, tmp_path / "fhir")
    assembler = TrialAssembler()
    for resource in read_resources(tmp_path / "fhir"):
        assert assembler.add(resource), resource["resourceType"]
    write_trial(assembler.tables(), tmp_path / "sdtm")
    names = sorted(p.name for p in CLINICAL.glob("*.csv"))
    assert sorted(p.name for p in (tmp_path / "sdtm").iterdir()) == names
    for name in names:
        assert (tmp_path / "sdtm" / name).read_bytes() == (CLINICAL / name).read_bytes(), name


def test_nothing_comes_back_that_was_not_written(dalakas_trial: Trial, back: Trial) -> None:
    assert set(back) <= set(dalakas_trial)


def test_every_resource_validates(resources: list[dict[str, Any]], validate: Validate) -> None:
    for resource in resources:
        validate(resource)


def test_ids_are_unique_and_deterministic(
    dalakas_trial: Trial, resources: list[dict[str, Any]]
) -> None:
    keys = [(r["resourceType"], r["id"]) for r in resources]
    assert len(set(keys)) == len(keys)
    assert keys == [(r["resourceType"], r["id"]) for r in trial_to_fhir(dalakas_trial)]


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def test_every_reference_points_to_an_earlier_resource(resources: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for resource in resources:
        for target in references(resource):
            assert target in seen, (
                f"{resource['resourceType']} refers forward to {target.split('/')[0]}"
            )
        seen.add(f"{resource['resourceType']}/{resource['id']}")


def test_study_level_resources_come_first_in_order(resources: list[dict[str, Any]]) -> None:
    kinds = [r["resourceType"] for r in resources]
    head = [k for k in kinds if k in TYPE_ORDER]
    assert head == sorted(head, key=TYPE_ORDER.index)
    assert kinds[: len(head)] == head  # the event families follow all of them
    assert kinds[0] == "CodeSystem"


def test_the_resources_stream(dalakas_trial: Trial) -> None:
    stream = trial_to_fhir(dalakas_trial)
    assert next(stream)["resourceType"] == "CodeSystem"
    assert inspect.isgenerator(stream)  # made lazily, one resource at a time, never a list of all


def test_the_order_resources_arrive_in_does_not_matter(
    dalakas_trial: Trial, resources: list[dict[str, Any]], back: Trial
) -> None:
    again = fhir_to_trial(reversed(resources))
    assert set(again) == set(back)
    for domain in back:
        assert_same_table(back[domain], again[domain])


def test_round_trip_through_ndjson_files(dalakas_trial: Trial, back: Trial, tmp_path: Path) -> None:
    from adapter.fhir_files import read_resources, write_ndjson

    write_ndjson(trial_to_fhir(dalakas_trial), tmp_path)
    from_files = fhir_to_trial(read_resources(tmp_path))
    assert set(from_files) == set(back)
    for domain in back:
        assert_same_table(back[domain], from_files[domain])


def test_resources_no_family_takes_are_counted_not_dropped() -> None:
    assembler = TrialAssembler()
    assert not assembler.add({"resourceType": "Organization", "id": "o1"})
    assert not assembler.add({"resourceType": "Organization", "id": "o2"})
    foreign_patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "http://example.org/mrn", "value": "1"}],
    }
    assert not assembler.add(foreign_patient)
    assert assembler.unrecognised == {"Organization": 2, "Patient": 1}
    assert assembler.tables() == {}


def test_a_learnt_route_still_refuses_what_its_family_does_not_take(
    resources: list[dict[str, Any]],
) -> None:
    assembler = TrialAssembler()
    for resource in resources:
        assert assembler.add(resource), resource["resourceType"]
    foreign_condition = {
        "resourceType": "Condition",
        "id": "c1",
        "identifier": [{"system": SID_DERIVED, "value": "Other/1"}],
        "subject": {"reference": "Patient/x"},
    }
    assert not assembler.add(foreign_condition)
    assert assembler.unrecognised == {"Condition": 1}


def without_layouts(resources: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for resource in resources:
        if resource["resourceType"] == "ResearchStudy":
            resource = dict(resource)
            kept = [e for e in resource["extension"] if e["url"] != EXT_SDTM_TABLE]
            if kept:
                resource["extension"] = kept
            else:  # R4 has no empty arrays (the readers refuse one)
                del resource["extension"]
        yield resource


def test_without_a_layout_columns_follow_the_domain_spec() -> None:
    columns = ["STUDYID", "DOMAIN", "USUBJID", "SEX", "XTRA", "AGE", "RACE", "SUBJID"]
    row = {"STUDYID": "S", "DOMAIN": "DM", "USUBJID": "S-1", "SEX": "F", "XTRA": "x", "AGE": "40",
           "RACE": "", "SUBJID": "1"}  # fmt: skip
    trial = {"DM": Table("DM", columns, [row])}
    back = fhir_to_trial(without_layouts(list(trial_to_fhir(trial))))
    spec = DOMAINS["DM"]
    # required variables in SDTM order, then the known optional ones with a value, then extras
    assert back["DM"].columns == [*spec.required, "XTRA"]
    assert back["DM"].rows[0]["XTRA"] == "x"
    assert back["DM"].rows[0]["RFSTDTC"] == ""


def test_a_column_the_layout_does_not_name_is_kept_at_the_end() -> None:
    trial = {
        "DM": Table("DM", ["STUDYID", "DOMAIN", "USUBJID", "XTRA"], [
            {"STUDYID": "S", "DOMAIN": "DM", "USUBJID": "S-1", "XTRA": "x"}
        ]),
    }  # fmt: skip
    resources = list(trial_to_fhir(trial))
    for resource in resources:
        if resource["resourceType"] == "ResearchStudy":
            layout = next(e for e in resource["extension"] if e["url"] == EXT_SDTM_TABLE)
            layout["extension"] = [p for p in layout["extension"] if p.get("valueString") != "XTRA"]
    back = fhir_to_trial(resources)
    assert back["DM"].columns == ["STUDYID", "DOMAIN", "USUBJID", "XTRA"]


def test_each_studyid_gets_its_own_research_study() -> None:
    columns = ["STUDYID", "DOMAIN", "USUBJID"]
    dm = Table("DM", columns, [
        {"STUDYID": "A", "DOMAIN": "DM", "USUBJID": "A-1"},
        {"STUDYID": "B", "DOMAIN": "DM", "USUBJID": "B-1"},
    ])  # fmt: skip
    resources = list(trial_to_fhir({"DM": dm}))
    studies = [r for r in resources if r["resourceType"] == "ResearchStudy"]
    assert [s["identifier"][0]["value"] for s in studies] == ["A", "B"]
    subjects = [r for r in resources if r["resourceType"] == "ResearchSubject"]
    assert [s["study"]["reference"] for s in subjects] == [
        f"ResearchStudy/{s['id']}" for s in studies
    ]
    assert fhir_to_trial(resources)["DM"].rows == dm.rows


@pytest.mark.hapi
def test_hapi_finds_no_error_in_any_resource_type(
    resources: list[dict[str, Any]], hapi_base_url: str
) -> None:
    """HAPI's $validate on the first resource of every type (the plugin's server)."""
    from adapter.client import FhirClient

    first_of_type: dict[str, dict[str, Any]] = {}
    for resource in resources:
        first_of_type.setdefault(resource["resourceType"], resource)
    with FhirClient(hapi_base_url) as client:
        for kind, resource in first_of_type.items():
            errors = [str(issue) for issue in client.validate(resource) if issue.is_error]
            assert not errors, f"{kind}: {errors}"


def test_study_and_subjects_read_twice_come_back_once(dalakas_trial: Trial) -> None:
    mine = {d: dalakas_trial[d] for d in ("TS", "TA", "DM", "SE")}
    resources = list(trial_to_fhir(mine))
    back = fhir_to_trial(resources + resources)
    for domain, written in mine.items():
        assert_same_table(written, back[domain])


def test_reading_back_leaves_every_resource_untouched(resources: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(resources)
    fhir_to_trial(resources)
    assert resources == before


@pytest.mark.parametrize("element", ["url", "valueString"])
@pytest.mark.parametrize("kind", ["ResearchStudy", "ResearchSubject", "Observation", "Variable"])
def test_a_cell_extension_without_a_url_is_refused_by_name_not_made_a_column(
    kind: str, element: str, resources: list[dict[str, Any]]
) -> None:
    """Found by the fuzz suite: a TA (arm-element) or SE (subject-element) part whose url is null
    became a column named 'None'; an `sdtm-variable` part whose url is null lost its cell; a null
    valueString lost its cell."""
    from mappings.trial import ResourceRefused

    holder = "ResearchSubject" if kind == "Variable" else kind
    changed = [copy.deepcopy(r) if r["resourceType"] == holder else r for r in resources]
    target = next(
        r
        for r in changed
        if r["resourceType"] == holder
        and (
            kind not in ("Observation", "Variable")
            or any(e["url"] == EXT_SDTM_VARIABLE for e in r.get("extension", ()))
        )
    )
    if kind == "ResearchStudy":
        parts = target["arm"][0]["extension"][1]["extension"]
    elif kind in ("Observation", "Variable"):
        parts = next(e for e in target["extension"] if e["url"] == EXT_SDTM_VARIABLE)["extension"]
    else:
        parts = next(e for e in target["extension"] if e["url"] == EXT_SUBJECT_ELEMENT)["extension"]
    part = next(p for p in parts if "valueString" in p)
    part[element] = True if element == "valueString" else None
    with pytest.raises(ResourceRefused, match=f"{element}: .* where R4 has a string"):
        fhir_to_trial(changed)
