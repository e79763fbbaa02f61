"""Writing: creates, conditional creates and updates, transactions and batches, chunked uploads, $validate."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from adapter.client import (
    AsyncFhirClient,
    FhirClient,
    Forbidden,
    InvalidResponse,
    ResourceNotFound,
    ServerError,
    TransactionFailed,
    TransactionResponseMismatch,
    UnwritableResources,
    bundle_is_idempotent,
    parse_bundle_response,
    token,
    transaction_bundle,
)

from .conftest import BASE, outcome, patient

SYS = "urn:trial:usubjid"
HAPI_CODES = "https://hapifhir.io/fhir/CodeSystem/hapi-fhir-storage-response-code"


def storage_outcome(code: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "information",
                "code": "informational",
                "details": {"coding": [{"system": HAPI_CODES, "code": code}]},
            }
        ],
    }


def response_bundle(*statuses: str, kind: str = "transaction-response") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"response": {"status": s}} for s in statuses],
    }


def test_create_returns_status_location_and_etag(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient",
        method="POST",
        status_code=201,
        json=patient("new"),
        headers={"Location": f"{BASE}/Patient/new/_history/1", "ETag": 'W/"1"'},
    )
    with FhirClient(BASE) as client:
        result = client.create({"resourceType": "Patient"})
    assert result.created and result.version_id == "1"
    assert result.location == f"{BASE}/Patient/new/_history/1"
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["Content-Type"].startswith("application/fhir+json")
    assert "If-None-Exist" not in request.headers


def test_conditional_create_sends_if_none_exist_encoded(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient", method="POST", status_code=200, json=patient("old")
    )
    with FhirClient(BASE) as client:
        result = client.create(patient("a"), if_none_exist={"identifier": token(SYS, "DM-1")})
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["If-None-Exist"] == "identifier=urn:trial:usubjid%7CDM-1"
    assert not result.created


def test_conditional_update_puts_to_the_type_with_the_condition(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="PUT", status_code=200, json=patient("a"), headers={"ETag": 'W/"2"'}
    )
    with FhirClient(BASE) as client:
        result = client.update(patient("a"), condition={"identifier": token(SYS, "DM-1")})
    request = httpx_mock.get_request()
    assert request is not None
    assert request.url.raw_path == b"/fhir/Patient?identifier=urn:trial:usubjid%7CDM-1"
    assert json.loads(request.content)["id"] == "a"
    assert result.version_id == "2"


def test_update_by_id_with_if_match(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/a", method="PUT", json=patient("a"))
    with FhirClient(BASE) as client:
        client.update(patient("a"), if_match="3")
    request = httpx_mock.get_request()
    assert request is not None and request.headers["If-Match"] == 'W/"3"'


def test_update_needs_an_id_or_a_condition() -> None:
    with FhirClient(BASE) as client, pytest.raises(ValueError):
        client.update({"resourceType": "Patient"})


def test_delete_of_a_missing_resource_is_fine(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/a", method="DELETE", status_code=404)
    with FhirClient(BASE) as client:
        client.delete("Patient", "a")


# -- building transaction bundles ------------------------------------------------------------------


def test_conditional_update_entries_carry_the_client_id() -> None:
    bundle = transaction_bundle([patient("a", "DM|1")], base_url=BASE)
    entry = bundle["entry"][0]
    assert entry["request"] == {
        "method": "PUT",
        "url": "Patient?identifier=urn:trial:usubjid%7CDM%5C%7C1",
    }
    assert entry["resource"]["id"] == "a"
    assert entry["fullUrl"] == f"{BASE}/Patient/a"
    assert bundle_is_idempotent(bundle)


def test_conditional_create_entries_use_if_none_exist() -> None:
    bundle = transaction_bundle([patient("a")], mode="conditional-create")
    request = bundle["entry"][0]["request"]
    assert request == {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": "identifier=urn:trial:usubjid%7CDM-a",
    }
    assert bundle["entry"][0]["fullUrl"].startswith("urn:uuid:")
    assert bundle_is_idempotent(bundle)


def test_plain_create_bundles_are_not_idempotent() -> None:
    assert not bundle_is_idempotent(transaction_bundle([patient("a")], mode="create"))
    assert bundle_is_idempotent(transaction_bundle([patient("a")], mode="update"))


def test_the_identifier_system_can_be_chosen() -> None:
    resource = {
        "resourceType": "Patient",
        "id": "a",
        "identifier": [{"system": "urn:other", "value": "1"}, {"system": SYS, "value": "DM-9"}],
    }
    bundle = transaction_bundle([resource], identifier_system=SYS)
    assert bundle["entry"][0]["request"]["url"].endswith("%7CDM-9")


def test_every_resource_without_an_identifier_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as info:
        transaction_bundle(
            [
                {"resourceType": "Patient", "id": "a"},
                patient("b"),
                {"resourceType": "Observation", "id": "o"},
            ]
        )
    assert "resource 0 (Patient)" in str(info.value)
    assert "resource 2 (Observation)" in str(info.value)


# -- transactions and batches ----------------------------------------------------------------------


def test_transaction_outcomes_are_typed(httpx_mock: HTTPXMock) -> None:
    resources = [patient("a"), patient("b"), patient("c")]
    answer = response_bundle("201 Created", "200 OK", "200 OK")
    answer["entry"][0]["response"].update(location="Patient/a/_history/1", etag='W/"1"')
    answer["entry"][2]["response"]["outcome"] = storage_outcome("SUCCESSFUL_UPDATE_NO_CHANGE")
    httpx_mock.add_response(url=BASE, method="POST", json=answer)
    with FhirClient(BASE) as client:
        result = client.transaction(transaction_bundle(resources))
    assert [e.result for e in result.entries] == ["created", "updated", "unchanged"]
    assert result.entries[0].location == "Patient/a/_history/1"
    assert result.entries[0].etag == 'W/"1"'
    assert result.counts() == {"Patient": {"created": 1, "updated": 1, "unchanged": 1}}


def test_a_transaction_with_a_failing_entry_raises_with_that_entry(httpx_mock: HTTPXMock) -> None:
    answer = response_bundle("201 Created", "412 Precondition Failed")
    answer["entry"][1]["response"]["outcome"] = outcome("Multiple resources match this search")
    httpx_mock.add_response(url=BASE, method="POST", json=answer)
    with FhirClient(BASE) as client, pytest.raises(TransactionFailed) as info:
        client.transaction(transaction_bundle([patient("a"), patient("b")]))
    failed = info.value.failed_entries
    assert [(e.index, e.status, e.resource_type, e.method) for e in failed] == [
        (1, 412, "Patient", "PUT")
    ]
    assert "Multiple resources match" in str(info.value)
    assert info.value.code == "transaction_failed"


def test_a_rejected_transaction_carries_the_server_outcome(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=BASE,
        method="POST",
        status_code=400,
        json=outcome("HAPI-0541: Invalid match URL: Multiple resources match"),
    )
    with FhirClient(BASE) as client, pytest.raises(TransactionFailed) as info:
        client.transaction(transaction_bundle([patient("a")]))
    assert info.value.status == 400
    assert "Invalid match URL" in str(info.value)


def test_server_errors_on_a_transaction_stay_server_errors(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=BASE, method="POST", status_code=500, json=outcome("boom"))
    with FhirClient(BASE) as client, pytest.raises(ServerError):
        client.transaction(transaction_bundle([patient("a")], mode="create"))


def test_a_batch_reports_failures_per_entry_without_raising(httpx_mock: HTTPXMock) -> None:
    answer = response_bundle("201 Created", "404 Not Found", kind="batch-response")
    answer["entry"][1]["response"]["outcome"] = outcome("Resource Patient/zz is not known")
    httpx_mock.add_response(url=BASE, method="POST", json=answer)
    with FhirClient(BASE) as client:
        result = client.batch(transaction_bundle([patient("a"), patient("b")], bundle_type="batch"))
    assert not result.ok
    assert [e.index for e in result.failed] == [1]
    assert result.failed[0].issues[0].diagnostics == "Resource Patient/zz is not known"


def test_parse_bundle_response_takes_the_type_from_the_location_when_no_request() -> None:
    result = parse_bundle_response(
        {
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [{"response": {"status": "201", "location": "Observation/o1/_history/1"}}],
        }
    )
    assert result.entries[0].resource_type == "Observation"
    assert result.entries[0].result == "created"


def test_chunked_upload_counts_what_happened(httpx_mock: HTTPXMock) -> None:
    resources = [patient(str(i)) for i in range(5)]
    httpx_mock.add_response(
        url=BASE, method="POST", json=response_bundle("201 Created", "201 Created")
    )
    httpx_mock.add_response(url=BASE, method="POST", json=response_bundle("200 OK", "201 Created"))
    last = response_bundle("200 OK")
    last["entry"][0]["response"]["outcome"] = storage_outcome("SUCCESSFUL_UPDATE_NO_CHANGE")
    httpx_mock.add_response(url=BASE, method="POST", json=last)
    progress: list[int] = []
    with FhirClient(BASE) as client:
        summary = client.upload(resources, chunk_size=2, progress=progress.append)
    assert summary.bundles == 3
    assert summary.as_dict() == {"Patient": {"created": 3, "unchanged": 1, "updated": 1}}
    assert summary.total("created") == 3
    assert progress == [2, 4, 5]
    sizes = [len(json.loads(r.content)["entry"]) for r in httpx_mock.get_requests()]
    assert sizes == [2, 2, 1]


def test_a_failing_chunk_says_which_and_what_was_committed(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=BASE, method="POST", json=response_bundle("201 Created"))
    httpx_mock.add_response(url=BASE, method="POST", status_code=422, json=outcome("bad gender"))
    with FhirClient(BASE) as client, pytest.raises(TransactionFailed) as info:
        client.upload([patient("a"), patient("b"), patient("c")], chunk_size=1)
    assert info.value.chunk == 1
    assert info.value.completed is not None and info.value.completed.total("created") == 1


def test_validate_returns_the_issues_even_when_invalid(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient/$validate",
        method="POST",
        status_code=412,
        json=outcome("Patient.gender: code 'x' not in value set", code="code-invalid"),
    )
    with FhirClient(BASE) as client:
        issues = client.validate({"resourceType": "Patient", "gender": "x"})
    assert [(i.severity, i.code) for i in issues] == [("error", "code-invalid")]
    assert issues[0].is_error


def test_validate_of_an_unknown_type_still_raises(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Nonsense/$validate", method="POST", status_code=404)
    with FhirClient(BASE) as client, pytest.raises(ResourceNotFound):
        client.validate({"resourceType": "Nonsense"})


def test_async_transaction_and_upload(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=BASE, method="POST", json=response_bundle("201 Created", "201 Created")
    )

    async def run() -> dict[str, dict[str, int]]:
        async with AsyncFhirClient(BASE) as client:
            summary = await client.upload([patient("a"), patient("b")], mode="conditional-create")
            return summary.as_dict()

    assert asyncio.run(run()) == {"Patient": {"created": 2}}
    request = httpx_mock.get_request()
    assert request is not None
    assert all("ifNoneExist" in e["request"] for e in json.loads(request.content)["entry"])


def test_failing_entries_of_an_upload_are_numbered_in_upload_order(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=BASE, method="POST", json=response_bundle("201 Created", "201 Created")
    )
    httpx_mock.add_response(
        url=BASE, method="POST", json=response_bundle("201 Created", "409 Conflict")
    )
    with FhirClient(BASE) as client, pytest.raises(TransactionFailed) as info:
        client.upload([patient(str(i)) for i in range(4)], chunk_size=2)
    assert [e.index for e in info.value.failed_entries] == [3]
    assert info.value.chunk == 1


def test_decimals_keep_their_written_precision_both_ways(httpx_mock: HTTPXMock) -> None:
    from decimal import Decimal

    weight = {
        "resourceType": "Observation",
        "id": "w",
        "status": "final",
        "code": {"text": "weight"},
        "valueQuantity": {"value": Decimal("74.50"), "unit": "kg"},
    }
    httpx_mock.add_response(
        url=f"{BASE}/Observation/w",
        method="PUT",
        json=None,
        content=b'{"resourceType":"Observation","id":"w","valueQuantity":{"value":74.50}}',
    )
    httpx_mock.add_response(
        url=f"{BASE}/Observation/w",
        method="GET",
        content=b'{"resourceType":"Observation","id":"w","valueQuantity":{"value":1.50}}',
    )
    with FhirClient(BASE) as client:
        stored = client.update(weight).resource
        read = client.read("Observation", "w")
    sent = httpx_mock.get_requests()[0].content
    assert b'"value":74.50' in sent
    assert stored is not None and str(stored["valueQuantity"]["value"]) == "74.50"
    assert str(read["valueQuantity"]["value"]) == "1.50"


def test_a_codesystem_without_identifier_is_matched_on_its_url() -> None:
    code_system = {
        "resourceType": "CodeSystem",
        "id": "trialfhir",
        "status": "active",
        "url": "https://trialfhir.org/fhir/CodeSystem/trialfhir",
        "version": "0.1.0",
        "content": "complete",
    }
    update = transaction_bundle([code_system])["entry"][0]["request"]
    create = transaction_bundle([code_system], mode="conditional-create")["entry"][0]["request"]
    condition = "url=https://trialfhir.org/fhir/CodeSystem/trialfhir&version=0.1.0"
    assert update == {"method": "PUT", "url": f"CodeSystem?{condition}"}
    assert create["ifNoneExist"] == condition


# -- transaction answers checked against the request -------------------------------------------------


def answered(bundle: dict[str, Any], *statuses: str, kind: str | None = None) -> dict[str, Any]:
    """A response to ``bundle`` with these statuses and a Type/id location for each entry."""
    answer = response_bundle(*statuses, kind=kind or f"{bundle['type']}-response")
    for entry, sent in zip(answer["entry"], bundle["entry"], strict=False):
        resource = sent["resource"]
        entry["response"]["location"] = f"{resource['resourceType']}/{resource['id']}/_history/1"
    return answer


def test_a_response_that_answers_every_entry_is_read() -> None:
    bundle = transaction_bundle([patient("a"), patient("b")])
    result = parse_bundle_response(answered(bundle, "201 Created", "200 OK"), bundle)
    assert [e.result for e in result.entries] == ["created", "updated"]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda a: a.update(type="batch-response"), "the Bundle type is 'batch-response'"),
        (lambda a: a["entry"].pop(), "1 entries answer the 2 sent"),
        (lambda a: a["entry"].append(a["entry"][0]), "3 entries answer the 2 sent"),
        (lambda a: a["entry"][1]["response"].update(status="OK"), "entry 1 (PUT Patient): status"),
        (
            lambda a: a["entry"][0]["response"].update(status="204 No Content"),
            "cannot answer a PUT",
        ),
        (
            lambda a: a["entry"][1]["response"].update(location="Observation/b/_history/1"),
            "entry 1 (PUT Patient): the location is a Observation",
        ),
        (
            lambda a: a["entry"][1]["response"].update(location="Patient/zz/_history/1"),
            "the location has another id than the one sent",
        ),
        (lambda a: a["entry"][0]["response"].update(location="nowhere"), "not Type/id"),
        (
            lambda a: a["entry"][0].update(resource={"resourceType": "Observation"}),
            "the returned resource is not a Patient",
        ),
    ],
    ids=[
        "type",
        "short",
        "long",
        "status-text",
        "status-for-method",
        "location-type",
        "location-id",
        "location-shape",
        "resource-type",
    ],
)
def test_a_response_that_does_not_answer_the_request_is_refused(
    edit: Any, problem: str, httpx_mock: HTTPXMock
) -> None:
    bundle = transaction_bundle([patient("a"), patient("b")], base_url=BASE)
    answer = answered(bundle, "201 Created", "200 OK")
    edit(answer)
    httpx_mock.add_response(url=BASE, method="POST", json=answer)
    with FhirClient(BASE) as client, pytest.raises(TransactionResponseMismatch) as info:
        client.transaction(bundle)
    assert any(problem in p for p in info.value.problems), info.value.problems
    assert info.value.code == "transaction_response_mismatch"


@pytest.mark.parametrize(
    "entries",
    [{"response": {"status": "200"}}, ["x"], [{"response": "200 OK"}], [{"response": {}}]],
    ids=["entry-object", "entry-string", "response-string", "no-status"],
)
def test_a_wrongly_shaped_transaction_response_is_an_invalid_response(
    entries: Any, httpx_mock: HTTPXMock
) -> None:
    answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    httpx_mock.add_response(url=BASE, method="POST", json=answer)
    with FhirClient(BASE) as client, pytest.raises(InvalidResponse):
        client.transaction(transaction_bundle([patient("a")]))


def test_a_conditional_create_may_answer_with_a_server_assigned_id() -> None:
    bundle = transaction_bundle([patient("a")], mode="conditional-create")
    answer = response_bundle("201 Created")
    answer["entry"][0]["response"]["location"] = f"{BASE}/Patient/8f2c-new/_history/1"
    assert parse_bundle_response(answer, bundle).entries[0].result == "created"


# -- uploads check the whole input first -----------------------------------------------------------


def test_an_upload_checks_every_resource_before_sending_anything(httpx_mock: HTTPXMock) -> None:
    resources = [patient(str(i)) for i in range(5)] + [{"resourceType": "Observation", "id": "o"}]

    def lazily() -> Any:
        yield from resources

    with FhirClient(BASE) as client, pytest.raises(UnwritableResources) as info:
        client.upload(lazily(), chunk_size=2)
    assert info.value.problems == [
        "resource 5 (Observation): no identifier with system and value (nor a canonical url)"
    ]
    assert "nothing was sent" in str(info.value)
    assert httpx_mock.get_requests() == []


def test_an_upload_reads_a_reiterable_input_twice_instead_of_holding_it(
    httpx_mock: HTTPXMock,
) -> None:
    class Source:
        def __init__(self) -> None:
            self.reads = 0

        def __iter__(self) -> Any:
            self.reads += 1
            return iter([patient("a"), patient("b")])

    source = Source()
    httpx_mock.add_response(url=BASE, method="POST", json=response_bundle("201", "201"))
    with FhirClient(BASE) as client:
        client.upload(source)
    assert source.reads == 2


def test_an_error_half_way_through_an_upload_carries_a_note_on_what_was_committed(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_response(url=BASE, method="POST", json=response_bundle("201 Created"))
    httpx_mock.add_response(url=BASE, method="POST", status_code=403)
    with FhirClient(BASE) as client, pytest.raises(Forbidden) as info:
        client.upload([patient("a"), patient("b"), patient("c")], chunk_size=1)
    assert info.value.__notes__ == [
        "Chunk 1 (1 of 3 resources) was committed before it; chunk 2 was refused. "
        "Re-running the same upload completes it (it is idempotent)."
    ]
    assert len(httpx_mock.get_requests()) == 2


def test_a_failed_first_chunk_says_nothing_was_committed(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=BASE, method="POST", status_code=422, json=outcome("bad gender"))
    with FhirClient(BASE) as client, pytest.raises(TransactionFailed) as info:
        client.upload([patient("a"), patient("b")], chunk_size=1)
    assert "Nothing was committed before it; chunk 1 was rolled back" in str(info.value)


def test_an_input_that_fails_on_its_second_reading_says_what_was_committed(
    httpx_mock: HTTPXMock,
) -> None:
    class ChangingFile:
        """Reads fine for the check, then breaks at the third resource (the file was edited)."""

        def __init__(self) -> None:
            self.reads = 0

        def __iter__(self) -> Any:
            self.reads += 1
            for i in range(4):
                if self.reads == 2 and i == 2:
                    raise ValueError("resources.ndjson, line 3: not JSON")
                yield patient(str(i))

    httpx_mock.add_response(url=BASE, method="POST", json=response_bundle("201", "201"))
    with FhirClient(BASE) as client, pytest.raises(ValueError) as info:
        client.upload(ChangingFile(), chunk_size=2)
    assert info.value.__notes__ == [
        "Chunk 1 (2 of 4 resources) was committed before it; chunk 2 and later were not sent. "
        "Re-running the same upload completes it (it is idempotent)."
    ]
    assert len(httpx_mock.get_requests()) == 1
