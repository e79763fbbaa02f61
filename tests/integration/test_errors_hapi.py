"""What a live HAPI FHIR JPA server refuses, and how trialfhir's client reports it.

Each refusal must surface as the client's own error class (BadRequest, UnprocessableEntity,
PreconditionFailed, ResourceNotFound, TransactionFailed) whose message carries HAPI's OperationOutcome
diagnostics text, and never the query values sent. A rejected transaction commits nothing; in a chunked
upload the chunks before the failing one stay committed and the error says which chunk failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adapter.client import (
    BadRequest,
    FhirClient,
    FhirHttpError,
    PreconditionFailed,
    ResourceNotFound,
    TransactionFailed,
    UnprocessableEntity,
    token,
    transaction_bundle,
)

pytestmark = pytest.mark.hapi

SYSTEM = "urn:trialfhir:test:errors"

JSON = dict[str, Any]


@pytest.fixture(scope="module")
def client(hapi_base_url: str, hapi_clean: None) -> Iterator[FhirClient]:
    with FhirClient(hapi_base_url) as fhir:
        yield fhir


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def patient(pid: str) -> JSON:
    return {"resourceType": "Patient", "id": pid, "identifier": [{"system": SYSTEM, "value": pid}]}


def observation(oid: str, subject: str) -> JSON:
    return {
        "resourceType": "Observation",
        "id": oid,
        "identifier": [{"system": SYSTEM, "value": oid}],
        "status": "final",
        "code": {"text": "a test observation"},
        "subject": {"reference": subject},
        "valueQuantity": {"value": 74.5},
    }


def assert_carries_diagnostics(error: FhirHttpError | TransactionFailed) -> None:
    """The message holds every diagnostics text of HAPI's OperationOutcome (and there is one)."""
    assert error.outcome is not None, "no OperationOutcome was kept"
    assert error.outcome.get("resourceType") == "OperationOutcome"
    texts = [i["diagnostics"] for i in error.outcome.get("issue", []) if i.get("diagnostics")]
    assert texts, "HAPI's OperationOutcome had no diagnostics"
    for text in texts:
        assert text in str(error)


def exists(client: FhirClient, resource_type: str, rid: str) -> bool:
    try:
        client.read(resource_type, rid)
    except ResourceNotFound:
        return False
    return True


def test_an_unparseable_code_is_a_bad_request(client: FhirClient) -> None:
    with pytest.raises((BadRequest, UnprocessableEntity)) as info:
        client.create({"resourceType": "Patient", "gender": "not-a-gender"})
    assert_carries_diagnostics(info.value)
    assert "not-a-gender" in info.value.diagnostics


def test_an_observation_without_status_and_code_is_stored_but_fails_validate(
    client: FhirClient,
) -> None:
    """HAPI's JPA server checks references on write, not the profile: an Observation missing its
    required status and code is stored (this server runs no request validation), and only `$validate`
    reports it. The client must not pretend otherwise, and must return `$validate`'s errors."""
    subject = fresh("err-pat")
    client.update(patient(subject))
    broken = observation(fresh("err-obs"), f"Patient/{subject}")
    del broken["status"], broken["code"]
    issues = [i for i in client.validate(broken) if i.is_error]
    assert any("status" in i.text for i in issues), [i.text for i in issues]
    assert any("code" in i.text for i in issues), [i.text for i in issues]
    written = client.update(broken)
    assert written.created
    assert exists(client, "Observation", broken["id"])


def test_a_reference_to_a_missing_patient_is_refused(client: FhirClient) -> None:
    missing = fresh("err-missing")
    with pytest.raises((BadRequest, UnprocessableEntity, ResourceNotFound)) as info:
        client.update(observation(fresh("err-obs"), f"Patient/{missing}"))
    assert_carries_diagnostics(info.value)
    assert f"Patient/{missing}" in info.value.diagnostics


def test_a_transaction_with_a_dangling_reference_fails_whole(client: FhirClient) -> None:
    good, missing, obs = fresh("err-pat"), fresh("err-missing"), fresh("err-obs")
    bundle = transaction_bundle(
        [patient(good), observation(obs, f"Patient/{missing}")], base_url=client.base_url
    )
    with pytest.raises(TransactionFailed) as info:
        client.transaction(bundle)
    error = info.value
    assert error.status in (400, 404, 409, 412, 422)
    assert_carries_diagnostics(error)
    assert f"Patient/{missing}" in str(error)
    # Atomic: the valid Patient in the same transaction was not committed either.
    assert not exists(client, "Patient", good)
    assert not exists(client, "Observation", obs)


def test_a_failing_chunk_names_itself_and_keeps_what_was_committed(client: FhirClient) -> None:
    run = fresh("chunk")
    first = [patient(f"{run}-p{i}") for i in range(3)]
    second = [
        observation(f"{run}-o1", f"Patient/{run}-p0"),
        observation(f"{run}-o2", f"Patient/{run}-absent"),
        observation(f"{run}-o3", f"Patient/{run}-p1"),
    ]
    third = [patient(f"{run}-p9")]
    with pytest.raises(TransactionFailed) as info:
        client.upload([*first, *second, *third], chunk_size=3)
    error = info.value
    assert error.chunk == 1
    assert error.completed is not None
    assert error.completed.total("created") == 3
    assert error.completed.bundles == 1
    assert_carries_diagnostics(error)
    assert all(exists(client, "Patient", p["id"]) for p in first)
    assert not exists(client, "Observation", f"{run}-o1")
    assert not exists(client, "Patient", f"{run}-p9"), "the upload went on after a failed chunk"


def test_a_conditional_update_matching_two_resources_is_a_precondition_failure(
    client: FhirClient,
) -> None:
    value = fresh("err-dup")
    for _ in range(2):
        client.create(
            {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}]}
        )
    with pytest.raises(PreconditionFailed) as info:
        client.update(
            {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}]},
            condition={"identifier": token(SYSTEM, value)},
        )
    assert_carries_diagnostics(info.value)
    assert value not in str(info.value).replace(info.value.diagnostics, "")


def test_an_unknown_search_parameter_is_a_bad_request_without_the_value(
    client: FhirClient,
) -> None:
    secret = fresh("value")
    with pytest.raises(BadRequest) as info:
        client.search("Patient").where({"no-such-parameter": secret}).all()
    assert_carries_diagnostics(info.value)
    assert "no-such-parameter" in info.value.diagnostics
    assert secret not in str(info.value)


def test_reading_a_missing_resource_is_not_found(client: FhirClient) -> None:
    missing = fresh("err-missing")
    with pytest.raises(ResourceNotFound) as info:
        client.read("Patient", missing)
    assert_carries_diagnostics(info.value)


def test_validate_returns_hapis_issues_instead_of_raising(client: FhirClient) -> None:
    issues = client.validate({"resourceType": "Observation", "code": {"text": "x"}})
    errors = [i for i in issues if i.is_error]
    assert errors
    assert any("status" in i.text for i in errors)
