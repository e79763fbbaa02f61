"""No patient data in logs: a whole session at DEBUG leaves no identifier, search value, id or body."""

from __future__ import annotations

import logging

import httpx
import pytest
from pytest_httpx import HTTPXMock

from adapter.client import BadRequest, FhirClient, RetryPolicy, token, transaction_bundle

from .conftest import BASE, SleepRecorder, outcome, patient, searchset

SECRET_VALUE = "USUBJID-0042-SECRET"
SECRET_ID = "pt-secret-77"
SECRET_NAME = "Dalakas-Doe"


def test_a_debug_session_logs_no_identifiers_or_values(
    httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture, sleeps: SleepRecorder
) -> None:
    person = patient(SECRET_ID, SECRET_VALUE) | {"name": [{"family": SECRET_NAME}]}
    next_url = f"{BASE}?_getpages=abc-{SECRET_VALUE}&_getpagesoffset=1"
    httpx_mock.add_response(status_code=503)
    httpx_mock.add_response(json=searchset([person], next_url=next_url))
    httpx_mock.add_response(url=next_url, json=searchset([person]))
    httpx_mock.add_response(url=f"{BASE}/Patient/{SECRET_ID}", json=person)
    httpx_mock.add_exception(httpx.ConnectError(SECRET_VALUE), url=f"{BASE}/Patient/{SECRET_ID}")
    httpx_mock.add_response(url=f"{BASE}/Patient/{SECRET_ID}", json=person)
    httpx_mock.add_response(
        url=BASE,
        method="POST",
        json={
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                {
                    "response": {
                        "status": "201 Created",
                        "location": f"Patient/{SECRET_ID}/_history/1",
                    }
                }
            ],
        },
    )
    httpx_mock.add_response(
        url=f"{BASE}/Patient", method="POST", status_code=400, json=outcome("bad request")
    )
    caplog.set_level(logging.DEBUG)
    with FhirClient(BASE, retry=RetryPolicy(random=lambda: 0.0), sleep=sleeps) as client:
        found = (
            client.search("Patient")
            .where(identifier=token("urn:trial:usubjid", SECRET_VALUE))
            .all()
        )
        client.read("Patient", SECRET_ID)
        client.read("Patient", SECRET_ID)
        client.transaction(transaction_bundle([person]))
        with pytest.raises(BadRequest):
            client.create(person)
    assert len(found) == 2
    text = caplog.text
    assert "trialfhir.client" in {r.name for r in caplog.records}
    for secret in (SECRET_VALUE, SECRET_ID, SECRET_NAME, "urn:trial:usubjid", "_getpages"):
        assert secret not in text
    # what may be logged is there: interaction, method, type, status, attempt
    assert "search GET Patient -> 200" in text
    assert "retrying" in text and "HTTP 503" in text
    assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
