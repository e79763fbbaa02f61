"""Against a live HAPI FHIR R4 server (the plugin's `hapi_base_url`: TRIALFHIR_HAPI_URL or a local one).

Checks what mocks cannot: that HAPI's real _getpages links are followed, that conditional uploads are
idempotent, and that real OperationOutcomes land in the exception messages.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adapter.client import (
    BadRequest,
    FhirClient,
    ResourceNotFound,
    UnprocessableEntity,
    token,
)

pytestmark = pytest.mark.hapi

SYSTEM = "urn:trialfhir:test:client"


@pytest.fixture(scope="module")
def client(hapi_base_url: str) -> Iterator[FhirClient]:
    """A client on the plugin's server (TRIALFHIR_HAPI_URL, or a local HAPI started once per run)."""
    with FhirClient(hapi_base_url) as fhir:
        yield fhir


def test_hapi_speaks_r4(client: FhirClient) -> None:
    assert client.capabilities(refresh=True)["fhirVersion"].startswith("4.0")


def test_conditional_upload_is_idempotent_and_pages_like_hapi(client: FhirClient) -> None:
    run = uuid.uuid4().hex[:12]
    ids = [f"cl-{run}-{i}" for i in range(7)]
    patients: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": f"cl-{run}-{i}",
            "identifier": [{"system": SYSTEM, "value": f"{run}-{i}"}],
            "gender": "female",
        }
        for i in range(7)
    ]
    first = client.upload(patients, chunk_size=3)
    assert first.total("failed") == 0
    assert first.total("created") + first.total("updated") == 7
    second = client.upload(patients, chunk_size=3)
    assert second.total("created") == 0
    search = client.search("Patient").where(_id=",".join(ids)).count(2)
    pages = list(search.pages())
    assert len(pages) == 4
    assert sorted(r["id"] for r in search) == sorted(ids)
    assert search.total() == 7
    found = client.search("Patient").where(identifier=token(SYSTEM, f"{run}-3")).all()
    assert [p["id"] for p in found] == [f"cl-{run}-3"]


def test_missing_and_invalid(client: FhirClient) -> None:
    with pytest.raises(ResourceNotFound):
        client.read("Patient", f"missing-{uuid.uuid4().hex[:12]}")
    with pytest.raises((BadRequest, UnprocessableEntity)) as info:
        client.create({"resourceType": "Patient", "gender": "not-a-gender"})
    assert info.value.diagnostics
    issues = client.validate({"resourceType": "Patient", "gender": "not-a-gender"})
    assert any(issue.is_error for issue in issues)


def test_includes_reverse_chains_and_post_search(client: FhirClient) -> None:
    run = uuid.uuid4().hex[:12]
    study = {
        "resourceType": "ResearchStudy",
        "id": f"st-{run}",
        "status": "completed",
        "identifier": [{"system": SYSTEM, "value": f"st-{run}"}],
    }
    people: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": f"pt-{run}-{i}",
            "identifier": [{"system": SYSTEM, "value": f"pt-{run}-{i}"}],
        }
        for i in range(3)
    ]
    subjects: list[dict[str, Any]] = [
        {
            "resourceType": "ResearchSubject",
            "id": f"rs-{run}-{i}",
            "status": "on-study",
            "identifier": [{"system": SYSTEM, "value": f"rs-{run}-{i}"}],
            "study": {"reference": f"ResearchStudy/st-{run}"},
            "individual": {"reference": f"Patient/pt-{run}-{i}"},
        }
        for i in range(3)
    ]
    client.upload([study, *people, *subjects])
    search = (
        client.search("ResearchSubject")
        .where(study=f"ResearchStudy/st-{run}")
        .include("ResearchSubject:individual")
        .count(2)
    )
    entries = list(search.entries())
    assert sorted(e.resource["id"] for e in entries if e.mode == "match") == sorted(
        s["id"] for s in subjects
    )
    assert sorted(e.resource["id"] for e in entries if e.mode == "include") == sorted(
        p["id"] for p in people
    )
    in_study = client.search("Patient").has(
        "ResearchSubject:individual:study", f"ResearchStudy/st-{run}"
    )
    assert sorted(p["id"] for p in in_study.post()) == sorted(p["id"] for p in people)
    assert in_study.total() == 3
