"""Replays of real HAPI FHIR 8.8.0 answers (tests/client/recorded/): paging by _getpages, per-entry
transaction outcomes, OperationOutcomes in errors, $validate, an expired paging link."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pytest_httpx import HTTPXMock

from adapter.client import (
    BadRequest,
    FhirClient,
    Gone,
    PreconditionFailed,
    ResourceNotFound,
    TransactionFailed,
    parse_bundle_response,
)

from .conftest import BASE

RECORDED = Path(__file__).parent / "recorded"


def load(name: str) -> dict[str, Any]:
    text = (RECORDED / f"{name}.json").read_text().replace("{base}", BASE)
    record: dict[str, Any] = json.loads(text)
    return record


def replay(httpx_mock: HTTPXMock, name: str) -> dict[str, Any]:
    record = load(name)
    request, response = record["request"], record["response"]
    httpx_mock.add_response(
        url=request["path"],
        method=request["method"],
        status_code=response["status"],
        json=response["body"],
        headers=response["headers"],
    )
    return record


def query_of(record: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(record["request"]["path"]).query).items()}


def test_hapis_capability_statement_is_accepted(httpx_mock: HTTPXMock) -> None:
    replay(httpx_mock, "capability-statement")
    with FhirClient(BASE) as client:
        statement = client.capabilities()
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["software"]["name"] == "HAPI FHIR Server"


def test_hapis_getpages_links_are_followed_exactly(httpx_mock: HTTPXMock) -> None:
    pages = [replay(httpx_mock, f"searchset-page-{n}") for n in (1, 2, 3)]
    query = query_of(pages[0])
    with FhirClient(BASE) as client:
        found = client.search("Patient").where(_id=query["_id"]).count(int(query["_count"])).all()
    assert sorted(p["id"] for p in found) == sorted(query["_id"].split(","))
    sent = [str(r.url) for r in httpx_mock.get_requests()]
    assert sent[1:] == [pages[1]["request"]["path"], pages[2]["request"]["path"]]
    assert "_getpages=" in sent[1] and urlsplit(sent[1]).path == "/fhir"


def test_hapis_summary_count(httpx_mock: HTTPXMock) -> None:
    record = replay(httpx_mock, "searchset-summary-count")
    with FhirClient(BASE) as client:
        assert client.search("Patient").where(_id=query_of(record)["_id"]).total() == 5


def test_nothing_found_versus_not_found(httpx_mock: HTTPXMock) -> None:
    empty = replay(httpx_mock, "searchset-empty")
    missing = replay(httpx_mock, "read-not-found")
    with FhirClient(BASE) as client:
        search = client.search("Patient").where(identifier=query_of(empty)["identifier"])
        assert search.all() == []
        with pytest.raises(ResourceNotFound) as info:
            client.read("Patient", missing["request"]["path"].rsplit("/", 1)[-1])
    assert "HAPI-2001" in str(info.value) and "is not known" in str(info.value)


def test_an_expired_getpages_link_is_gone(httpx_mock: HTTPXMock) -> None:
    record = replay(httpx_mock, "expired-getpages")
    with FhirClient(BASE) as client, pytest.raises(Gone) as info:
        client.search("Patient").resume(record["request"]["path"]).all()
    assert "HAPI-0417" in str(info.value) and "may have expired" in str(info.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("create-invalid-gender", "Unknown AdministrativeGender code 'x'"),
        ("search-invalid-date", "Invalid prefix"),
    ],
)
def test_hapi_bad_requests_carry_their_diagnostics(
    httpx_mock: HTTPXMock, name: str, expected: str
) -> None:
    record = replay(httpx_mock, name)
    with FhirClient(BASE) as client, pytest.raises(BadRequest) as info:
        if record["request"]["method"] == "POST":
            client.create({"resourceType": "Patient", "gender": "x"})
        else:
            client.search("Patient").where(birthdate="not-a-date").all()
    assert expected in str(info.value)
    assert info.value.issues[0].severity == "error"


def test_a_conditional_update_matching_two_resources(httpx_mock: HTTPXMock) -> None:
    record = replay(httpx_mock, "conditional-update-multiple-matches")
    twin = {"resourceType": "Patient"}
    with FhirClient(BASE) as client, pytest.raises(PreconditionFailed) as info:
        client.update(twin, condition={"identifier": query_of(record)["identifier"]})
    assert "matched 2 resources" in str(info.value)


@pytest.mark.parametrize(
    ("name", "results"),
    [
        ("transaction-created", ["created"] * 5),
        ("transaction-unchanged", ["unchanged"] * 2),
        ("transaction-updated", ["updated"]),
        ("transaction-conditional-create", ["unchanged", "created"]),
    ],
)
def test_hapi_transaction_outcomes_are_classified(name: str, results: list[str]) -> None:
    result = parse_bundle_response(load(name)["response"]["body"])
    assert [e.result for e in result.entries] == results
    assert all(e.resource_type == "Patient" and e.location and e.etag for e in result.entries)


def test_a_rejected_hapi_transaction(httpx_mock: HTTPXMock) -> None:
    replay(httpx_mock, "transaction-rejected")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    with FhirClient(BASE) as client, pytest.raises(TransactionFailed) as info:
        client.transaction(bundle)
    assert info.value.status == 400
    assert "HAPI-1094" in str(info.value) and "Observation.subject" in str(info.value)


def test_hapi_validate_answers(httpx_mock: HTTPXMock) -> None:
    replay(httpx_mock, "validate-invalid")
    replay(httpx_mock, "validate-valid")
    with FhirClient(BASE) as client:
        invalid = client.validate({"resourceType": "Observation"})
        valid = client.validate({"resourceType": "Patient"})
    assert any(i.is_error and "Observation.status" in i.text for i in invalid)
    assert not any(i.is_error for i in valid)
