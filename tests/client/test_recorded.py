"""Replays of real HAPI FHIR 8.8.0 answers.

The project's recordings (fixtures/recorded/, one or more exchanges per file) cover paging, the
conditional-write cases, errors and $validate; tests/client/recorded/ adds what only the client needs
(per-entry results `updated` and conditional-create matches, an empty searchset, a bad search value).
"""

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
    ResourceNotFound,
    TransactionFailed,
    parse_bundle_response,
    token,
)

from .conftest import BASE

SHARED = Path(__file__).resolve().parents[2] / "fixtures" / "recorded"
OWN = Path(__file__).parent / "recorded"
SYSTEM = "urn:trialfhir:recorded"

JSON = dict[str, Any]


def exchanges(name: str) -> list[JSON]:
    """The exchanges of a project recording (fixtures/recorded/, made by tests/recorder)."""
    path = SHARED / f"{name}.json"
    recording: JSON = json.loads(path.read_text())
    assert recording["exchanges"][0]["request"]["url"].startswith(BASE)
    return list(recording["exchanges"])


def replay(httpx_mock: HTTPXMock, name: str) -> list[JSON]:
    """Register every exchange of a project recording as a mocked response, in order."""
    recorded = exchanges(name)
    for exchange in recorded:
        request, response = exchange["request"], exchange["response"]
        httpx_mock.add_response(
            url=request["url"],
            method=request["method"],
            status_code=response["status"],
            json=response["body"],
            headers=response["headers"],
        )
    return recorded


def own(name: str) -> JSON:
    record: JSON = json.loads((OWN / f"{name}.json").read_text().replace("{base}", BASE))
    return record


def replay_own(httpx_mock: HTTPXMock, name: str) -> JSON:
    record = own(name)
    request, response = record["request"], record["response"]
    httpx_mock.add_response(
        url=request["path"],
        method=request["method"],
        status_code=response["status"],
        json=response["body"],
        headers=response["headers"],
    )
    return record


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- reading -----------------------------------------------------------------------------------------


def test_hapis_capability_statement_is_accepted(httpx_mock: HTTPXMock) -> None:
    replay(httpx_mock, "capability_statement")
    with FhirClient(BASE) as client:
        statement = client.capabilities()
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["software"]["name"] == "HAPI FHIR Server"


def test_hapis_getpages_links_are_followed_exactly(httpx_mock: HTTPXMock) -> None:
    recorded = replay(httpx_mock, "searchset_paging")
    first = query_of(recorded[0]["request"]["url"])
    with FhirClient(BASE) as client:
        search = (
            client.search("Organization")
            .where(identifier=first["identifier"])
            .count(int(first["_count"]))
            .sort(first["_sort"])
        )
        pages = list(search.pages())
    assert [len(p.entries) for p in pages] == [2, 2, 2]
    assert pages[0].total == 6
    sent = [str(r.url) for r in httpx_mock.get_requests()]
    assert sent[1:] == [e["request"]["url"] for e in recorded[1:]]
    assert all("_getpages=" in url and urlsplit(url).path == "/fhir" for url in sent[1:])


def test_hapis_summary_count(httpx_mock: HTTPXMock) -> None:
    recorded = replay(httpx_mock, "search_summary_count")
    query = query_of(recorded[0]["request"]["url"])
    with FhirClient(BASE) as client:
        assert client.search("Organization").where(identifier=query["identifier"]).total() == 6


def test_a_read_of_a_missing_id_is_resource_not_found(httpx_mock: HTTPXMock) -> None:
    recorded = replay(httpx_mock, "read_not_found")
    with FhirClient(BASE) as client, pytest.raises(ResourceNotFound) as info:
        client.read("Patient", recorded[0]["request"]["url"].rsplit("/", 1)[-1])
    assert "HAPI-2001" in str(info.value) and "is not known" in str(info.value)


def test_a_search_that_finds_nothing_is_an_empty_result(httpx_mock: HTTPXMock) -> None:
    record = replay_own(httpx_mock, "searchset-empty")
    with FhirClient(BASE) as client:
        search = client.search("Patient").where(
            identifier=query_of(record["request"]["path"])["identifier"]
        )
        assert search.all() == []


def test_an_unknown_getpages_link_is_gone(httpx_mock: HTTPXMock) -> None:
    recorded = replay(httpx_mock, "getpages_unknown")
    with FhirClient(BASE) as client, pytest.raises(Gone) as info:
        client.search("Organization").resume(recorded[0]["request"]["url"]).all()
    assert "HAPI-0417" in str(info.value) and "may have expired" in str(info.value)


def test_a_bad_search_value_is_a_bad_request(httpx_mock: HTTPXMock) -> None:
    replay_own(httpx_mock, "search-invalid-date")
    with FhirClient(BASE) as client, pytest.raises(BadRequest) as info:
        client.search("Patient").where(birthdate="not-a-date").all()
    assert "Invalid prefix" in str(info.value)


# -- writing -----------------------------------------------------------------------------------------


def test_an_unparseable_resource_is_a_bad_request_with_hapis_words(httpx_mock: HTTPXMock) -> None:
    recorded = replay(httpx_mock, "create_invalid_resource")
    with FhirClient(BASE) as client, pytest.raises(BadRequest) as info:
        client.create(recorded[0]["request"]["body"])
    assert "Invalid date/time format" in str(info.value)
    assert info.value.issues[0].severity == "error"


def test_a_conditional_transaction_then_its_repeat(httpx_mock: HTTPXMock) -> None:
    first = replay(httpx_mock, "transaction_conditional_first")
    repeat = replay(httpx_mock, "transaction_conditional_repeat")
    with FhirClient(BASE) as client:
        created = client.transaction(first[0]["request"]["body"])
        again = client.transaction(repeat[0]["request"]["body"])
    assert [e.result for e in created.entries] == ["created"] * 3
    assert [e.result for e in again.entries] == ["unchanged"] * 3
    assert [e.method for e in created.entries] == ["PUT", "PUT", "POST"]
    assert [e.location for e in created.entries] == [e.location for e in again.entries]


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("transaction_failing_entry", 400, "HAPI-1094"),
        ("transaction_conditional_id_mismatch", 400, "HAPI-2279"),
        ("transaction_conditional_id_taken", 409, "HAPI-0550"),
        ("transaction_conditional_multiple_matches", 412, "HAPI-2207"),
    ],
)
def test_refused_transactions_carry_hapis_diagnostics(
    httpx_mock: HTTPXMock, name: str, status: int, words: str
) -> None:
    recorded = replay(httpx_mock, name)
    with FhirClient(BASE) as client:
        with pytest.raises(TransactionFailed) as info:
            client.transaction(recorded[0]["request"]["body"])
        for later in recorded[1:]:  # e.g. the read showing nothing was written
            with pytest.raises(ResourceNotFound):
                client.read(*later["request"]["url"].removeprefix(f"{BASE}/").split("/"))
    assert info.value.status == status
    assert words in str(info.value)
    assert info.value.outcome is not None


@pytest.mark.parametrize(
    ("name", "results"),
    [
        ("transaction-created", ["created"] * 5),
        ("transaction-unchanged", ["unchanged"] * 2),
        ("transaction-updated", ["updated"]),
        ("transaction-conditional-create", ["unchanged", "created"]),
    ],
)
def test_hapi_storage_codes_are_classified(name: str, results: list[str]) -> None:
    result = parse_bundle_response(own(name)["response"]["body"])
    assert [e.result for e in result.entries] == results
    assert all(e.resource_type == "Patient" and e.location and e.etag for e in result.entries)


def test_hapi_validate_answers(httpx_mock: HTTPXMock) -> None:
    invalid = replay(httpx_mock, "validate_invalid")
    valid = replay(httpx_mock, "validate_valid")
    with FhirClient(BASE) as client:
        bad = client.validate(invalid[0]["request"]["body"])
        good = client.validate(valid[0]["request"]["body"])
    assert any(i.is_error for i in bad)
    assert not any(i.is_error for i in good)


def test_the_identifier_token_matches_what_hapi_was_asked(httpx_mock: HTTPXMock) -> None:
    recorded = exchanges("searchset_paging")
    assert query_of(recorded[0]["request"]["url"])["identifier"] == token(SYSTEM, "ORG-PAGE")
