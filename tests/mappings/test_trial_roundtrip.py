"""The whole trial both ways: the reconstructed Dalakas 1993 cohort, every domain, SDTM -> FHIR -> SDTM."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mappings.identity import SID_DERIVED
from mappings.sdtm import DOMAINS, Table, Trial
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


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_every_domain_comes_back_cell_by_cell(
    domain: str, dalakas_trial: Trial, back: Trial
) -> None:
    assert domain in dalakas_trial, f"the fixture should hold every domain; {domain} is missing"
    assert_same_table(dalakas_trial[domain], back[domain])


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
    assert inspect.isgenerator(stream)
    assert next(stream)["resourceType"] == "CodeSystem"


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
