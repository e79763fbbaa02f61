"""The exception tree: the status table, OperationOutcome diagnostics in messages, stable codes."""

from __future__ import annotations

import pytest
from pytest_httpx import HTTPXMock

import adapter.client as client_api
from adapter.client import (
    BadRequest,
    FhirClient,
    FhirError,
    FhirHttpError,
    FhirVersionMismatch,
    Gone,
    InvalidResponse,
    PreconditionFailed,
    ResourceNotFound,
    RetryPolicy,
    ServerError,
    UnprocessableEntity,
)
from adapter.client._errors import error_class_for_status

from .conftest import BASE, outcome, patient

CODE_OUTCOME = outcome("HAPI-1821: [Patient.gender] invalid code 'x'", code="code-invalid")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (404, ResourceNotFound),
        (410, Gone),
        (412, PreconditionFailed),
        (422, UnprocessableEntity),
        (500, ServerError),
        (503, ServerError),
        (418, FhirHttpError),
    ],
)
def test_status_table(status: int, cls: type[FhirHttpError]) -> None:
    assert error_class_for_status(status) is cls


@pytest.mark.parametrize(("status", "cls"), [(400, BadRequest), (422, UnprocessableEntity)])
def test_operation_outcome_diagnostics_are_in_the_message(
    httpx_mock: HTTPXMock, status: int, cls: type[FhirHttpError]
) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient", method="POST", status_code=status, json=CODE_OUTCOME
    )
    with FhirClient(BASE) as client, pytest.raises(cls) as info:
        client.create({"resourceType": "Patient", "gender": "x"})
    error = info.value
    assert "invalid code 'x'" in str(error)
    assert f"HTTP {status}" in str(error)
    assert error.status == status
    assert error.method == "POST"
    assert error.issues[0].code == "code-invalid"
    assert error.outcome == CODE_OUTCOME


def test_messages_hold_no_query_or_id(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=400, json=outcome("bad parameter"))
    with FhirClient(BASE, retry=RetryPolicy.none()) as client, pytest.raises(BadRequest) as info:
        client.search("Patient").where(identifier="urn:x|SECRET-ID").all()
    assert "SECRET-ID" not in str(info.value)
    assert "SECRET-ID" in str(info.value.url)  # still available to code that needs it


def test_read_404_and_410(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/x", status_code=404, text="Not Found")
    httpx_mock.add_response(url=f"{BASE}/Patient/y", status_code=410, json=outcome("deleted"))
    with FhirClient(BASE) as client:
        with pytest.raises(ResourceNotFound) as missing:
            client.read("Patient", "x")
        with pytest.raises(Gone):
            client.read("Patient", "y")
    assert missing.value.outcome is None
    assert missing.value.code == "not_found"


def test_a_non_json_success_is_an_invalid_response(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/a", text="<html>proxy</html>")
    with FhirClient(BASE) as client, pytest.raises(InvalidResponse):
        client.read("Patient", "a")


def test_reading_the_wrong_type_is_an_invalid_response(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Observation/a", json=patient("a"))
    with FhirClient(BASE) as client, pytest.raises(InvalidResponse):
        client.read("Observation", "a")


def test_a_fhir_3_server_is_refused(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/metadata",
        json={"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2", "status": "active"},
    )
    with FhirClient(BASE) as client, pytest.raises(FhirVersionMismatch) as info:
        client.capabilities()
    assert info.value.found == "3.0.2"
    assert "3.0.2" in str(info.value) and "4.0" in str(info.value)


def test_an_r4_server_is_accepted_and_cached(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/metadata",
        json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "status": "active"},
    )
    with FhirClient(BASE) as client:
        assert client.capabilities()["fhirVersion"] == "4.0.1"
        assert client.metadata()["fhirVersion"] == "4.0.1"
    assert len(httpx_mock.get_requests()) == 1


def _all_error_classes() -> list[type[FhirError]]:
    return [
        obj
        for name in client_api.__all__
        if isinstance(obj := getattr(client_api, name), type) and issubclass(obj, FhirError)
    ]


def test_every_error_class_has_its_own_code() -> None:
    classes = _all_error_classes()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert len(classes) >= 20


def test_every_error_code_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "client.md").read_text()
    missing = [cls.code for cls in _all_error_classes() if f"`{cls.code}`" not in doc]
    assert missing == []


def test_an_undecodable_body_is_an_invalid_response(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient/a", content=b"not gzip at all", headers={"Content-Encoding": "gzip"}
    )
    with FhirClient(BASE) as client, pytest.raises(InvalidResponse) as info:
        client.read("Patient", "a")
    assert info.value.__cause__ is not None
