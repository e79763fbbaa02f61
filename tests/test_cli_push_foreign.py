"""`trialfhir push` of FHIR written elsewhere, against pytest-httpx: what is sent (Bundles as they are,
creates with references rewritten from the server's answers, PUT by id with --keep-ids), and the answer
shapes a live server does not show on demand (a short answer, a missing location, a refusal half-way)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pytest_httpx import HTTPXMock
from synthea_like import (
    hospital_batch,
    ndjson_folder,
    patient_resources,
    synthea_folder,
    transaction,
)

from adapter.cli import main
from adapter.cli._common import EXIT_BAD_INPUT, EXIT_SERVER_ANSWER, EXIT_TRANSACTION
from adapter.client import FhirClient
from adapter.transfer import push

BASE = "http://fhir.test/fhir"
JSON = dict[str, Any]
CAPABILITY = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "fhirVersion": "4.0.1",
    "kind": "instance",
    "format": ["json"],
    "date": "2026-11-30",
}


class FakeServer:
    """Answers every transaction as a server that creates each entry under a new id (srv-1, ...);
    `edit` may spoil the answer to the n-th transaction (from 1)."""

    def __init__(self, edit: Callable[[int, JSON], httpx.Response | None] | None = None) -> None:
        self.bundles: list[JSON] = []
        self.next_id = 0
        self.edit = edit

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=CAPABILITY)
        bundle = json.loads(request.content)
        self.bundles.append(bundle)
        entries = []
        for entry in bundle["entry"]:
            rt = entry["request"]["url"].split("?")[0].split("/")[0]
            rid = entry["request"]["url"].split("/")[1] if "/" in entry["request"]["url"] else None
            if rid is None:
                self.next_id += 1
                rid = f"srv-{self.next_id}"
            entries.append(
                {"response": {"status": "201 Created", "location": f"{rt}/{rid}/_history/1"}}
            )
        answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        spoiled = self.edit(len(self.bundles), answer) if self.edit else None
        return spoiled or httpx.Response(200, json=answer)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def serve(httpx_mock: HTTPXMock, server: FakeServer) -> FakeServer:
    httpx_mock.add_callback(server, is_reusable=True)
    return server


def test_a_synthea_folder_is_pushed_as_it_is_hospital_first(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = serve(httpx_mock, FakeServer())
    folder = synthea_folder(tmp_path / "fhir")
    result = runner.invoke(main, ["push", str(folder), "--server", BASE])
    assert result.exit_code == 0, result.output
    hospital, patient = server.bundles
    assert patient == transaction(patient_resources("p1"))  # as it is
    assert hospital["entry"][0]["request"] == hospital_batch("p1")["entry"][0]["request"]
    assert "pushed 7 resources" in result.output
    assert (
        "paths: 6 in transaction Bundles sent as they are, 1 created unless the server holds a "
        "match (their batch's ifNoneExist)" in " ".join(result.output.split())
    )


def test_a_transaction_bigger_than_the_chunk_size_is_sent_whole_and_said_so(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = serve(httpx_mock, FakeServer())
    folder = synthea_folder(tmp_path / "fhir", observations=10)
    result = runner.invoke(main, ["push", str(folder), "--server", BASE, "--chunk-size", "5"])
    assert result.exit_code == 0, result.output
    assert [len(b["entry"]) for b in server.bundles] == [1, 13]
    assert "sent whole, larger than --chunk-size (references tie it together)" in result.output
    assert "Ann_p1.json: 13 entries" in result.output


def test_an_unsplittable_transaction_above_the_bound_is_refused_before_connecting(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    folder = synthea_folder(tmp_path / "fhir", observations=10)
    args = ["push", str(folder), "--server", BASE, "--max-transaction-entries", "12"]
    result = runner.invoke(main, args)
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "13 entries tied together by references cannot be split, more than 12" in result.output
    assert "nothing was sent" in result.output
    assert httpx_mock.get_requests() == []  # checked before the server is asked anything


def test_a_dangling_urn_uuid_reference_is_refused_naming_file_and_entry(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    folder = synthea_folder(tmp_path / "fhir")
    patient_file = folder / "Ann_p1.json"
    bundle = json.loads(patient_file.read_text())
    bundle["entry"][3]["resource"]["encounter"]["reference"] = "urn:uuid:not-in-the-bundle"
    patient_file.write_text(json.dumps(bundle))
    result = runner.invoke(main, ["push", str(folder), "--server", BASE])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert f"{patient_file}, Bundle entry 4 (Observation) encounter: a urn:uuid reference" in (
        result.output.replace("\n", " ")
    )
    assert "not-in-the-bundle" not in result.output  # positions, not values
    assert httpx_mock.get_requests() == []


def test_an_ndjson_folder_is_created_with_references_from_the_servers_answers(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = serve(httpx_mock, FakeServer())
    folder = ndjson_folder(tmp_path / "bulk")
    result = runner.invoke(main, ["push", str(folder), "--server", BASE, "--chunk-size", "2"])
    assert result.exit_code == 0, result.output
    first, *later = server.bundles
    assert [e["resource"]["resourceType"] for e in first["entry"]] == ["Patient", "Encounter"]
    assert first["entry"][1]["resource"]["subject"]["reference"] == first["entry"][0]["fullUrl"]
    assert first["entry"][0]["fullUrl"].startswith("urn:uuid:")
    resources = [e["resource"] for b in later for e in b["entry"]]
    assert {r["subject"]["reference"] for r in resources} == {"Patient/srv-1"}
    assert {r["encounter"]["reference"] for r in resources} == {"Encounter/srv-2"}
    assert all(e["request"]["method"] == "POST" for b in server.bundles for e in b["entry"])
    assert "paths: 6 created, ids assigned by the server" in result.output
    assert "9 references between uploaded resources rewritten" in result.output


def test_keep_ids_puts_by_id(runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock) -> None:
    server = serve(httpx_mock, FakeServer())
    folder = ndjson_folder(tmp_path / "bulk")
    patient = json.loads((folder / "Patient.ndjson").read_text())
    result = runner.invoke(main, ["push", str(folder), "--server", BASE, "--keep-ids"])
    assert result.exit_code == 0, result.output
    (bundle,) = server.bundles
    assert bundle["entry"][0]["request"] == {"method": "PUT", "url": f"Patient/{patient['id']}"}
    assert bundle["entry"][0]["resource"] == patient
    assert "paths: 6 written with their own ids (--keep-ids)" in result.output


def test_an_answer_without_a_location_that_is_needed_next_exits_10(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    def no_location(number: int, answer: JSON) -> httpx.Response | None:
        del answer["entry"][0]["response"]["location"]
        return None

    server = serve(httpx_mock, FakeServer(no_location))
    folder = ndjson_folder(tmp_path / "bulk")
    result = runner.invoke(main, ["push", str(folder), "--server", BASE, "--chunk-size", "2"])
    assert result.exit_code == EXIT_SERVER_ANSWER, result.output
    assert (
        "entry 0 (Patient): no location, and resources still to send refer to it" in result.output
    )
    assert "re-running the upload would create them again" in result.output
    assert len(server.bundles) == 1


def test_a_short_answer_exits_10_and_says_what_was_committed(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    def short(number: int, answer: JSON) -> httpx.Response | None:
        answer["entry"] = answer["entry"][:-1]
        return None

    serve(httpx_mock, FakeServer(short))
    result = runner.invoke(main, ["push", str(synthea_folder(tmp_path / "fhir")), "--server", BASE])
    assert result.exit_code == EXIT_SERVER_ANSWER, result.output
    assert "0 entries answer the 1 sent" in result.output
    assert "Nothing was committed before it" in result.output


def test_a_transaction_refused_half_way_exits_8_naming_what_was_committed(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": "HAPI-1094"}],
    }

    def refuse_second(number: int, answer: JSON) -> httpx.Response | None:
        return httpx.Response(400, json=outcome) if number == 2 else None

    serve(httpx_mock, FakeServer(refuse_second))
    result = runner.invoke(main, ["push", str(synthea_folder(tmp_path / "fhir")), "--server", BASE])
    assert result.exit_code == EXIT_TRANSACTION, result.output
    text = " ".join(result.output.split())
    assert "transaction failed in chunk 2 (HTTP 400): HAPI-1094" in text
    assert "Transaction 1 (1 of 7 entries) was committed before it" in text
    assert "transaction 2 was rolled back" in text
    assert "re-running the upload would create them again" in text


def test_the_python_push_takes_resources_of_others_without_crashing(httpx_mock: HTTPXMock) -> None:
    server = serve(httpx_mock, FakeServer())
    resources: list[JSON] = [
        {"resourceType": "Patient"},  # no id, no identifier: the conditional path cannot take it
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
    ]
    with FhirClient(BASE) as client:
        summary = push(client, resources)
    assert summary.paths == {"create": 2}
    assert summary.as_dict() == {"Observation": {"created": 1}, "Patient": {"created": 1}}
    assert [e["request"]["method"] for e in server.bundles[0]["entry"]] == ["POST", "POST"]
