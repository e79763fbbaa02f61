"""Foreign uploads against a live HAPI FHIR server: a Synthea-like transaction Bundle pushed as it is
(its urn:uuid references resolved by the server), a Bulk-like NDJSON folder created with ids the server
assigns (references consistent across transactions), and --keep-ids (PUT by the source ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from synthea_like import SYNTHEA, ndjson_folder, patient_resources, synthea_folder, transaction

from adapter.cli import main
from adapter.client import FhirClient, token

pytestmark = pytest.mark.hapi

JSON = dict[str, Any]


def push(base: str, folder: Path, *extra: str) -> str:
    result = CliRunner().invoke(main, ["push", str(folder), "--server", base, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def created_patient(client: FhirClient, seed: str) -> JSON:
    """The one Patient on the server with the seed's Synthea identifier."""
    source_id = patient_resources(seed)[0]["id"]
    found = client.search("Patient").where(identifier=token(SYNTHEA, source_id)).all()
    assert len(found) == 1
    return found[0]


def test_a_synthea_transaction_bundle_is_pushed_as_it_is_and_its_references_resolve(
    hapi_clean_base_url: str, tmp_path: Path
) -> None:
    folder = synthea_folder(tmp_path / "fhir", "syn1", observations=4)
    output = push(hapi_clean_base_url, folder)
    assert "paths: 7 in transaction Bundles sent as they are, 1 created unless" in output
    with FhirClient(hapi_clean_base_url) as client:
        patient = created_patient(client, "syn1")
        observations = client.search("Observation").where(subject=f"Patient/{patient['id']}").all()
        assert len(observations) == 4
        encounters = client.search("Encounter").where(subject=f"Patient/{patient['id']}").all()
        assert len(encounters) == 1
        for observation in observations[:3]:
            assert observation["subject"]["reference"] == f"Patient/{patient['id']}"
            assert observation["encounter"]["reference"] == f"Encounter/{encounters[0]['id']}"
        # the conditional reference to the hospital (sent first) resolved too
        organization = client.read(*encounters[0]["serviceProvider"]["reference"].split("/"))
        assert organization["identifier"][0]["value"] == "hospital-syn1"
    # again: the hospital's conditional create matches (no second Organization, so the patient
    # Bundle's conditional reference still resolves); Synthea's plain POSTs create a second patient
    again = push(hapi_clean_base_url, folder)
    assert "Organization: unchanged 1" in again
    assert "Patient: created 1" in again


def test_an_ndjson_folder_is_created_with_server_ids_and_consistent_references(
    hapi_clean_base_url: str, tmp_path: Path
) -> None:
    folder = ndjson_folder(tmp_path / "bulk", "bulk1", observations=3)
    output = push(hapi_clean_base_url, folder, "--chunk-size", "2")
    assert "paths: 6 created, ids assigned by the server" in output
    source_id = patient_resources("bulk1")[0]["id"]
    with FhirClient(hapi_clean_base_url) as client:
        patient = created_patient(client, "bulk1")
        assert patient["id"] != source_id  # the server assigned it
        observations = client.search("Observation").where(subject=f"Patient/{patient['id']}").all()
        assert len(observations) == 3
        (encounter,) = client.search("Encounter").where(subject=f"Patient/{patient['id']}").all()
        assert {o["encounter"]["reference"] for o in observations} == {
            f"Encounter/{encounter['id']}"
        }
        conditions = client.search("Condition").where(subject=f"Patient/{patient['id']}").all()
        assert len(conditions) == 1


def test_keep_ids_writes_the_resources_under_their_own_ids(
    hapi_clean_base_url: str, tmp_path: Path
) -> None:
    folder = ndjson_folder(tmp_path / "bulk", "keep1", observations=2)
    output = push(hapi_clean_base_url, folder, "--keep-ids")
    assert "paths: 5 written with their own ids (--keep-ids)" in output
    source = {r["resourceType"]: r for r in map(json.loads, (folder / "Patient.ndjson").open())}
    pid = source["Patient"]["id"]
    with FhirClient(hapi_clean_base_url) as client:
        assert client.read("Patient", pid)["identifier"][0]["value"] == pid
        observations = client.search("Observation").where(subject=f"Patient/{pid}").all()
        assert len(observations) == 2
    again = push(hapi_clean_base_url, folder, "--keep-ids")  # PUT by id: safe to repeat
    assert "created" not in again


def test_a_transaction_of_two_patients_is_split_between_them_and_both_resolve(
    hapi_clean_base_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    both = transaction(patient_resources("two-a", 2) + patient_resources("two-b", 2))
    for entry in both["entry"]:
        entry["resource"].pop("serviceProvider", None)  # no hospital in this upload
    (folder / "two.json").write_text(json.dumps(both), encoding="utf-8")
    output = push(hapi_clean_base_url, folder, "--chunk-size", "5")
    assert "sent in 2 transaction(s)" in output  # cut between the two patients
    assert "sent whole" not in output  # each patient's 5 entries fit a transaction of 5
    with FhirClient(hapi_clean_base_url) as client:
        for seed in ("two-a", "two-b"):
            patient = created_patient(client, seed)
            found = client.search("Observation").where(subject=f"Patient/{patient['id']}").all()
            assert len(found) == 2
