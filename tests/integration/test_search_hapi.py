"""Searching a live HAPI FHIR JPA server through trialfhir's client, on the reconstructed cohort.

Covers what mocks cannot: a token search `system|value` reaching Tomcat intact, `_include`,
`_revinclude`, `_has` reverse chaining, paging through HAPI's real `_getpages` links (every resource
exactly once), and `_summary=count`. Expected answers come from the resources the mapping emitted, not
from the server.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.client import FhirClient, token
from adapter.tables import read_trial
from mappings.identity import SID_STUDY, SID_USUBJID
from mappings.trial import trial_to_fhir

pytestmark = pytest.mark.hapi

FIXTURE = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"
STUDYID = "DALAKAS1993"

JSON = dict[str, Any]


@pytest.fixture(scope="module")
def emitted() -> list[JSON]:
    return list(trial_to_fhir(read_trial(FIXTURE)))


@pytest.fixture(scope="module")
def client(hapi_base_url: str, hapi_clean: None, emitted: list[JSON]) -> Iterator[FhirClient]:
    with FhirClient(hapi_base_url) as fhir:
        summary = fhir.upload(emitted, chunk_size=250, mode="update")
        assert summary.failed == []
        yield fhir


@pytest.fixture(scope="module")
def by_type(emitted: list[JSON]) -> dict[str, list[JSON]]:
    grouped: dict[str, list[JSON]] = {}
    for resource in emitted:
        grouped.setdefault(resource["resourceType"], []).append(resource)
    return grouped


@pytest.fixture(scope="module")
def study_ref(by_type: dict[str, list[JSON]]) -> str:
    (study,) = by_type["ResearchStudy"]
    return f"ResearchStudy/{study['id']}"


def refs(resources: list[JSON]) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


def test_search_by_identifier_system_and_value(
    client: FhirClient, by_type: dict[str, list[JSON]]
) -> None:
    for patient in by_type["Patient"][:3]:
        usubjid = next(i["value"] for i in patient["identifier"] if i["system"] == SID_USUBJID)
        found = client.search("Patient").where(identifier=token(SID_USUBJID, usubjid)).all()
        assert [p["id"] for p in found] == [patient["id"]]
    study = client.search("ResearchStudy").where(identifier=token(SID_STUDY, STUDYID)).all()
    assert [s["id"] for s in study] == [by_type["ResearchStudy"][0]["id"]]


def test_identifier_search_for_an_unknown_value_finds_nothing(client: FhirClient) -> None:
    search = client.search("Patient").where(identifier=token(SID_USUBJID, "NO-SUCH-SUBJECT"))
    assert search.all() == []
    assert search.first() is None


def test_identifier_value_with_a_reserved_character_is_escaped(
    client: FhirClient, by_type: dict[str, list[JSON]]
) -> None:
    """A row identifier value holds `/`; a value holding `|` or `,` must be escaped to match."""
    special = {
        "resourceType": "Patient",
        "id": "search-escape-1",
        "identifier": [{"system": SID_USUBJID, "value": "ESC|1,2$3"}],
    }
    client.update(special)
    found = client.search("Patient").where(identifier=token(SID_USUBJID, "ESC|1,2$3")).all()
    assert [p["id"] for p in found] == ["search-escape-1"]
    client.delete("Patient", "search-escape-1")


def test_include_brings_each_subjects_patient(
    client: FhirClient, by_type: dict[str, list[JSON]], study_ref: str
) -> None:
    search = (
        client.search("ResearchSubject")
        .where(study=study_ref)
        .include("ResearchSubject:individual")
    )
    entries = list(search.entries())
    matches = [e.resource for e in entries if e.is_match]
    included = [e.resource for e in entries if e.mode == "include"]
    assert refs(matches) == refs(by_type["ResearchSubject"])
    assert refs(included) == {s["individual"]["reference"] for s in by_type["ResearchSubject"]}
    assert refs(included) == refs(by_type["Patient"])


def test_revinclude_brings_a_patients_observations(
    client: FhirClient, by_type: dict[str, list[JSON]]
) -> None:
    observations_of = Counter(o["subject"]["reference"] for o in by_type["Observation"])
    patient_ref, expected = observations_of.most_common(1)[0]
    patient_id = patient_ref.split("/", 1)[1]
    search = (
        client.search("Patient").where(_id=patient_id).revinclude("Observation:subject").count(500)
    )
    entries = list(search.entries())
    assert [e.resource["id"] for e in entries if e.is_match] == [patient_id]
    included = [e.resource for e in entries if e.mode == "include"]
    assert {r["resourceType"] for r in included} == {"Observation"}
    assert len(included) == expected
    assert refs(included) == refs(
        [o for o in by_type["Observation"] if o["subject"]["reference"] == patient_ref]
    )


def test_has_finds_the_patients_of_the_study(
    client: FhirClient, by_type: dict[str, list[JSON]], study_ref: str
) -> None:
    found = client.search("Patient").has("ResearchSubject:individual:study", study_ref).all()
    assert refs(found) == refs(by_type["Patient"])
    assert len(found) == len(by_type["Patient"])
    none = client.search("Patient").has("ResearchSubject:individual:study", "ResearchStudy/none")
    assert none.all() == []


def test_paging_by_three_collects_every_resource_exactly_once(
    client: FhirClient, by_type: dict[str, list[JSON]]
) -> None:
    expected = by_type["Observation"]
    pages = list(client.search("Observation").count(3).pages())
    assert len(pages) == math.ceil(len(expected) / 3)
    assert all(len(page.entries) == 3 for page in pages[:-1])
    assert all("_getpages=" in str(page.next_link) for page in pages[:-1])
    assert pages[-1].next_link is None
    seen = [f"Observation/{e.resource['id']}" for page in pages for e in page.entries]
    duplicates = [ref for ref, n in Counter(seen).items() if n > 1]
    assert duplicates == []
    assert set(seen) == refs(expected)


def test_paging_a_filtered_search_by_three(
    client: FhirClient, by_type: dict[str, list[JSON]], study_ref: str
) -> None:
    found = client.search("ResearchSubject").where(study=study_ref).count(3).all()
    assert len(found) == len(by_type["ResearchSubject"])
    assert refs(found) == refs(by_type["ResearchSubject"])


def test_summary_count_per_type(client: FhirClient, by_type: dict[str, list[JSON]]) -> None:
    for resource_type, resources in by_type.items():
        assert client.search(resource_type).total() == len(resources), resource_type


def test_summary_count_with_a_filter(client: FhirClient, by_type: dict[str, list[JSON]]) -> None:
    patient_ref = by_type["Patient"][0]["id"]
    expected = sum(
        1 for o in by_type["Observation"] if o["subject"]["reference"] == f"Patient/{patient_ref}"
    )
    assert expected > 0
    total = client.search("Observation").where(subject=f"Patient/{patient_ref}").total()
    assert total == expected
