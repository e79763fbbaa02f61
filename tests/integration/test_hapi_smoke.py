"""Smoke tests of the live HAPI FHIR server with raw HTTP: what trialfhir relies on HAPI to do.

Metadata, client-assigned ids, token search ``system|value``, paging through ``_getpages`` links,
conditional writes inside transactions (the push code depends on these answers: see docs/hapi.md),
a failing transaction, ``$validate`` and ``$expunge``. All data is synthetic Organizations and
Patients with obviously fake identifiers.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.hapi

SYSTEM = "urn:trialfhir:smoke"
JSON = dict[str, Any]


def organization(value: str, *, id_: str | None = None, name: str = "Smoke Test Org") -> JSON:
    resource: JSON = {
        "resourceType": "Organization",
        "identifier": [{"system": SYSTEM, "value": value}],
        "name": name,
    }
    if id_ is not None:
        resource["id"] = id_
    return resource


def transaction(http: httpx.Client, base_url: str, entries: list[JSON]) -> httpx.Response:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return http.post(base_url, json=bundle)


def conditional_put(value: str, id_: str, name: str = "Smoke Test Org") -> JSON:
    return {
        "fullUrl": f"Organization/{id_}",
        "resource": organization(value, id_=id_, name=name),
        "request": {"method": "PUT", "url": f"Organization?identifier={SYSTEM}|{value}"},
    }


def post_if_none_exist(value: str, *, id_: str | None = None) -> JSON:
    return {
        "fullUrl": "urn:uuid:0b7c1a52-5e7e-4d0a-9d54-7a1f00000001",
        "resource": organization(value, id_=id_),
        "request": {
            "method": "POST",
            "url": "Organization",
            "ifNoneExist": f"identifier={SYSTEM}|{value}",
        },
    }


def matches(http: httpx.Client, value: str) -> list[JSON]:
    response = http.get("Organization", params={"identifier": f"{SYSTEM}|{value}"})
    assert response.status_code == 200
    return [entry["resource"] for entry in response.json().get("entry", [])]


def outcome_code(entry_response: JSON) -> str:
    """HAPI's storage response code (e.g. SUCCESSFUL_UPDATE_NO_CONDITIONAL_MATCH) of one entry."""
    issue = entry_response["outcome"]["issue"][0]
    code: str = issue["details"]["coding"][0]["code"]
    return code


def error_issues(outcome: JSON) -> list[JSON]:
    return [i for i in outcome.get("issue", []) if i.get("severity") in {"error", "fatal"}]


# --- metadata, ids, search -------------------------------------------------------------------


def test_metadata_says_fhir_4_0_1(fhir_http: httpx.Client) -> None:
    response = fhir_http.get("metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    types = {r["type"] for r in statement["rest"][0]["resource"]}
    assert {"Patient", "ResearchStudy", "ResearchSubject", "Observation"} <= types


def test_put_with_client_assigned_id_creates_then_reads_back(fhir_http: httpx.Client) -> None:
    patient = {
        "resourceType": "Patient",
        "id": "smoke-pt-0001",
        "identifier": [{"system": SYSTEM, "value": "FAKE-PT-0001"}],
    }
    created = fhir_http.put("Patient/smoke-pt-0001", json=patient)
    assert created.status_code == 201
    read = fhir_http.get("Patient/smoke-pt-0001")
    assert read.status_code == 200
    body = read.json()
    assert body["id"] == "smoke-pt-0001"
    assert body["meta"]["versionId"] == "1"
    assert body["identifier"] == patient["identifier"]


def test_purely_numeric_client_ids_are_accepted(fhir_http: httpx.Client) -> None:
    created = fhir_http.put("Organization/90001", json=organization("NUM-1", id_="90001"))
    assert created.status_code == 201
    assert fhir_http.get("Organization/90001").json()["id"] == "90001"


def test_read_of_unknown_id_is_404_with_operation_outcome(fhir_http: httpx.Client) -> None:
    response = fhir_http.get("Organization/smoke-no-such-id")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_search_by_identifier_system_and_value(fhir_http: httpx.Client) -> None:
    fhir_http.put("Organization/smoke-s-1", json=organization("SEARCH-1", id_="smoke-s-1"))
    fhir_http.put("Organization/smoke-s-2", json=organization("SEARCH-2", id_="smoke-s-2"))
    assert [r["id"] for r in matches(fhir_http, "SEARCH-1")] == ["smoke-s-1"]
    # The same search with a raw '|' in the URL (server.tomcat.relaxed-query-chars=|).
    raw = fhir_http.get(f"Organization?identifier={SYSTEM}|SEARCH-2")
    assert raw.status_code == 200
    assert [e["resource"]["id"] for e in raw.json()["entry"]] == ["smoke-s-2"]


def test_paging_with_count_2_follows_getpages_links_over_every_page(
    fhir_http: httpx.Client,
) -> None:
    ids = [f"smoke-page-{n}" for n in range(7)]
    for id_ in ids:
        fhir_http.put(f"Organization/{id_}", json=organization("PAGE", id_=id_))
    response = fhir_http.get("Organization", params={"identifier": f"{SYSTEM}|PAGE", "_count": 2})
    seen: list[str] = []
    page_sizes: list[int] = []
    next_links: list[str] = []
    while True:
        assert response.status_code == 200
        bundle = response.json()
        page = [entry["resource"]["id"] for entry in bundle.get("entry", [])]
        page_sizes.append(len(page))
        seen += page
        next_url = next(
            (link["url"] for link in bundle["link"] if link["relation"] == "next"), None
        )
        if next_url is None:
            break
        next_links.append(next_url)
        response = fhir_http.get(next_url)
    assert sorted(seen) == sorted(ids)
    assert page_sizes == [2, 2, 2, 1]
    assert all("_getpages=" in link for link in next_links)


def test_page_size_defaults_to_20_and_is_capped_at_500(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    entries = [
        {
            "fullUrl": f"Organization/smoke-size-{n}",
            "resource": organization("SIZE", id_=f"smoke-size-{n}"),
            "request": {"method": "PUT", "url": f"Organization/smoke-size-{n}"},
        }
        for n in range(505)
    ]
    assert transaction(fhir_http, hapi_base_url, entries).status_code == 200
    query = {"identifier": f"{SYSTEM}|SIZE"}
    default_page = fhir_http.get("Organization", params=query).json()
    assert len(default_page["entry"]) == 20
    capped_page = fhir_http.get("Organization", params={**query, "_count": 1000}).json()
    assert len(capped_page["entry"]) == 500
    assert any(link["relation"] == "next" for link in capped_page["link"])


# --- conditional writes in transactions --------------------------------------------------------


def test_conditional_put_with_no_match_creates_the_resource_under_the_body_id(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    response = transaction(fhir_http, hapi_base_url, [conditional_put("COND-1", "smoke-cond-1")])
    assert response.status_code == 200
    (entry,) = response.json()["entry"]
    assert entry["response"]["status"].startswith("201")
    assert entry["response"]["location"].startswith("Organization/smoke-cond-1/_history/1")
    assert outcome_code(entry["response"]) == "SUCCESSFUL_UPDATE_NO_CONDITIONAL_MATCH"
    assert [r["id"] for r in matches(fhir_http, "COND-1")] == ["smoke-cond-1"]


def test_repeating_an_identical_conditional_put_writes_no_new_version(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    entries = [conditional_put("COND-2", "smoke-cond-2")]
    first = transaction(fhir_http, hapi_base_url, entries)
    second = transaction(fhir_http, hapi_base_url, entries)
    assert first.status_code == second.status_code == 200
    (entry,) = second.json()["entry"]
    assert entry["response"]["status"].startswith("200")
    assert entry["response"]["location"].startswith("Organization/smoke-cond-2/_history/1")
    assert outcome_code(entry["response"]) == "SUCCESSFUL_UPDATE_WITH_CONDITIONAL_MATCH_NO_CHANGE"
    found = matches(fhir_http, "COND-2")
    assert [(r["id"], r["meta"]["versionId"]) for r in found] == [("smoke-cond-2", "1")]
    history = fhir_http.get("Organization/smoke-cond-2/_history").json()
    assert len(history["entry"]) == 1


def test_conditional_put_with_a_percent_encoded_bar_behaves_the_same(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    # trialfhir's client writes the entry URL as identifier=system%7Cvalue.
    entry = conditional_put("COND-ENC", "smoke-cond-enc")
    entry["request"]["url"] = f"Organization?identifier={SYSTEM}%7CCOND-ENC"
    first = transaction(fhir_http, hapi_base_url, [entry])
    second = transaction(fhir_http, hapi_base_url, [entry])
    (created,) = first.json()["entry"]
    (again,) = second.json()["entry"]
    assert created["response"]["location"].startswith("Organization/smoke-cond-enc/_history/1")
    assert outcome_code(created["response"]) == "SUCCESSFUL_UPDATE_NO_CONDITIONAL_MATCH"
    assert again["response"]["location"].startswith("Organization/smoke-cond-enc/_history/1")
    assert outcome_code(again["response"]) == "SUCCESSFUL_UPDATE_WITH_CONDITIONAL_MATCH_NO_CHANGE"
    assert len(matches(fhir_http, "COND-ENC")) == 1


def test_conditional_put_with_changed_content_writes_version_2(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    transaction(fhir_http, hapi_base_url, [conditional_put("COND-3", "smoke-cond-3")])
    changed = transaction(
        fhir_http, hapi_base_url, [conditional_put("COND-3", "smoke-cond-3", name="Renamed Org")]
    )
    (entry,) = changed.json()["entry"]
    assert entry["response"]["location"].startswith("Organization/smoke-cond-3/_history/2")
    assert outcome_code(entry["response"]) == "SUCCESSFUL_UPDATE_WITH_CONDITIONAL_MATCH"


def test_a_single_conditional_put_with_no_match_ignores_the_body_id(
    fhir_http: httpx.Client,
) -> None:
    """Outside a transaction HAPI creates under its own id: why push always uses transactions."""
    response = fhir_http.put(
        "Organization",
        params={"identifier": f"{SYSTEM}|SINGLE-1"},
        json=organization("SINGLE-1", id_="smoke-single-1"),
    )
    assert response.status_code == 201
    (found,) = matches(fhir_http, "SINGLE-1")
    assert found["id"] != "smoke-single-1"
    assert fhir_http.get("Organization/smoke-single-1").status_code == 404


def test_conditional_put_whose_body_id_differs_from_the_match_fails_the_transaction(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    transaction(fhir_http, hapi_base_url, [conditional_put("COND-4", "smoke-cond-4")])
    response = transaction(fhir_http, hapi_base_url, [conditional_put("COND-4", "smoke-other-4")])
    assert response.status_code == 400
    assert "HAPI-2279" in response.text
    assert fhir_http.get("Organization/smoke-other-4").status_code == 404


def test_conditional_put_with_no_match_but_a_taken_body_id_is_a_conflict(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    transaction(fhir_http, hapi_base_url, [conditional_put("COND-5", "smoke-cond-5")])
    response = transaction(
        fhir_http, hapi_base_url, [conditional_put("COND-5-NEW", "smoke-cond-5")]
    )
    assert response.status_code == 409
    kept = fhir_http.get("Organization/smoke-cond-5").json()
    assert kept["identifier"][0]["value"] == "COND-5"
    assert kept["meta"]["versionId"] == "1"


def test_conditional_put_matching_two_resources_is_precondition_failed(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    for id_ in ("smoke-dup-1", "smoke-dup-2"):
        fhir_http.put(f"Organization/{id_}", json=organization("DUP", id_=id_))
    response = transaction(fhir_http, hapi_base_url, [conditional_put("DUP", "smoke-dup-1")])
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"


def test_post_if_none_exist_creates_once_then_matches(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    first = transaction(fhir_http, hapi_base_url, [post_if_none_exist("INE-1")])
    second = transaction(fhir_http, hapi_base_url, [post_if_none_exist("INE-1")])
    (created,) = first.json()["entry"]
    (matched,) = second.json()["entry"]
    assert created["response"]["status"].startswith("201")
    assert outcome_code(created["response"]) == "SUCCESSFUL_CREATE_NO_CONDITIONAL_MATCH"
    assert matched["response"]["status"].startswith("200")
    assert outcome_code(matched["response"]) == "SUCCESSFUL_CREATE_WITH_CONDITIONAL_MATCH"
    assert matched["response"]["location"] == created["response"]["location"]
    found = matches(fhir_http, "INE-1")
    assert len(found) == 1
    assert found[0]["meta"]["versionId"] == "1"


def test_post_if_none_exist_ignores_the_body_id_and_assigns_a_uuid(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    response = transaction(
        fhir_http, hapi_base_url, [post_if_none_exist("INE-2", id_="smoke-ine-2")]
    )
    (entry,) = response.json()["entry"]
    match = re.fullmatch(r"Organization/([^/]+)/_history/1", entry["response"]["location"])
    assert match is not None
    assert match.group(1) != "smoke-ine-2"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", match.group(1)
    )


def test_post_if_none_exist_rewrites_references_to_its_full_url(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    # The created resource gets a server id; a reference in the same transaction to the entry's
    # fullUrl (here the client-assigned Type/id form) is rewritten to that server id.
    parent = post_if_none_exist("INE-PARENT", id_="smoke-ine-parent")
    parent["fullUrl"] = f"{hapi_base_url}/Organization/smoke-ine-parent"
    child = organization("INE-CHILD", id_="smoke-ine-child")
    child["partOf"] = {"reference": "Organization/smoke-ine-parent"}
    child_entry = {
        "fullUrl": f"{hapi_base_url}/Organization/smoke-ine-child",
        "resource": child,
        "request": {"method": "PUT", "url": "Organization/smoke-ine-child"},
    }
    response = transaction(fhir_http, hapi_base_url, [parent, child_entry])
    assert response.status_code == 200, response.text
    parent_location = response.json()["entry"][0]["response"]["location"]
    parent_id = parent_location.split("/")[1]
    assert parent_id != "smoke-ine-parent"
    stored_child = fhir_http.get("Organization/smoke-ine-child").json()
    assert stored_child["partOf"]["reference"] == f"Organization/{parent_id}"


def test_a_transaction_with_one_failing_entry_writes_nothing(
    fhir_http: httpx.Client, hapi_base_url: str
) -> None:
    dangling = organization("FAIL-2", id_="smoke-fail-2")
    dangling["partOf"] = {"reference": "Organization/smoke-does-not-exist"}
    response = transaction(
        fhir_http,
        hapi_base_url,
        [
            {
                "fullUrl": "Organization/smoke-fail-1",
                "resource": organization("FAIL-1", id_="smoke-fail-1"),
                "request": {"method": "PUT", "url": "Organization/smoke-fail-1"},
            },
            {
                "fullUrl": "Organization/smoke-fail-2",
                "resource": dangling,
                "request": {"method": "PUT", "url": "Organization/smoke-fail-2"},
            },
        ],
    )
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert error_issues(outcome)
    assert fhir_http.get("Organization/smoke-fail-1").status_code == 404


# --- $validate and $expunge --------------------------------------------------------------------


def test_validate_accepts_a_valid_patient(fhir_http: httpx.Client) -> None:
    patient = {"resourceType": "Patient", "gender": "female", "birthDate": "1970"}
    response = fhir_http.post("Patient/$validate", json=patient)
    assert response.status_code == 200
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert error_issues(outcome) == []


def test_validate_reports_errors_of_an_invalid_patient(fhir_http: httpx.Client) -> None:
    # pat-1: a contact must have a name, telecom, address or organization.
    response = fhir_http.post(
        "Patient/$validate", json={"resourceType": "Patient", "contact": [{}]}
    )
    assert response.status_code == 200
    errors = error_issues(response.json())
    assert any("Patient.contact[0]" in issue.get("expression", []) for issue in errors)


def test_expunge_everything_empties_the_server(fhir_http: httpx.Client) -> None:
    fhir_http.put("Organization/smoke-gone", json=organization("GONE", id_="smoke-gone"))
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "expungeEverything", "valueBoolean": True}],
    }
    response = fhir_http.post("$expunge", json=parameters)
    assert response.status_code == 200
    assert fhir_http.get("Organization/smoke-gone").status_code == 404
    counted = fhir_http.get("Organization", params={"_summary": "count"}).json()
    assert counted["total"] == 0
