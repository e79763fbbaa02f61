"""`trialfhir export` against the live HAPI server (Bulk Data $export, batch2): everything, a Group,
and a second export with --since that returns only what changed; the export folder converts to SDTM."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.client import FhirClient

pytestmark = pytest.mark.hapi

FIXTURE = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"
FAST_POLL = ("--max-poll-interval", "1", "--max-wait", "600")


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def exported(folder: Path) -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for file in sorted(folder.glob("*.ndjson")):
        for resource in lines(file):
            by_type.setdefault(resource["resourceType"], []).append(resource)
    return by_type


@pytest.fixture(scope="module")
def pushed(hapi_clean_base_url: str) -> str:
    invoke("push", str(FIXTURE), "--server", hapi_clean_base_url)
    return hapi_clean_base_url


def test_export_of_everything_gives_every_resource_and_converts_to_sdtm(
    pushed: str, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result = invoke("export", "--server", pushed, "--out", str(out), *FAST_POLL)
    by_type = exported(out)
    with FhirClient(pushed) as client:
        for resource_type in ("Patient", "Observation", "ResearchSubject", "Condition"):
            total = client.search(resource_type).total()
            assert len(by_type[resource_type]) == total, resource_type
    assert len(by_type["Patient"]) == 15
    assert f"Patient: {len(by_type['Patient'])}" in result.stdout
    assert json.loads((out / "manifest.json").read_text())["requiresAccessToken"] is True
    assert (out / "error").is_dir()
    sdtm = tmp_path / "sdtm"
    invoke("convert", str(out), "--to", "sdtm", "--out", str(sdtm))
    with (sdtm / "dm.csv").open(encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 15
    for name in ("vs.csv", "qs.csv", "ex.csv"):
        assert (FIXTURE / name).read_bytes() == (sdtm / name).read_bytes(), name


def test_export_of_a_group_gives_its_members_only(pushed: str, tmp_path: Path) -> None:
    with FhirClient(pushed) as client:
        members = [p["id"] for p in client.search("Patient").limit(3)]
        group = client.create(
            {
                "resourceType": "Group",
                "type": "person",
                "actual": True,
                "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in members],
            }
        )
    assert group.resource is not None
    out = tmp_path / "group"
    invoke(
        "export",
        "--server",
        pushed,
        "--out",
        str(out),
        "--group",
        group.resource["id"],
        "--type",
        "Patient,Observation",
        *FAST_POLL,
    )
    by_type = exported(out)
    assert sorted(p["id"] for p in by_type["Patient"]) == sorted(members)
    subjects = {o["subject"]["reference"] for o in by_type["Observation"]}
    assert subjects <= {f"Patient/{pid}" for pid in members}
    assert by_type["Observation"]


def test_a_second_export_since_the_first_returns_only_the_changes(
    pushed: str, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    invoke("export", "--server", pushed, "--out", str(first), "--type", "Patient", *FAST_POLL)
    since = json.loads((first / "export.json").read_text())["transactionTime"]
    with FhirClient(pushed) as client:
        patient = lines(first / "Patient.000.ndjson")[0]
        patient["gender"] = "other" if patient.get("gender") != "other" else "unknown"
        client.update(patient)
        created = client.create({"resourceType": "Patient", "gender": "female"})
    assert created.resource is not None
    second = tmp_path / "second"
    invoke(
        "export",
        "--server",
        pushed,
        "--out",
        str(second),
        "--type",
        "Patient",
        "--since",
        since,
        *FAST_POLL,
    )
    changed = sorted(p["id"] for p in exported(second).get("Patient", []))
    assert changed == sorted([patient["id"], created.resource["id"]])


def test_a_type_larger_than_one_export_file_comes_in_several_files(
    pushed: str, tmp_path: Path
) -> None:
    created: set[str] = set()
    with FhirClient(pushed) as client:
        latest = client.search("Patient").sort("-_lastUpdated").first()
        assert latest is not None
        since = latest["meta"]["lastUpdated"]
        for _ in range(2):
            batch = {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [
                    {
                        "resource": {"resourceType": "Patient", "gender": "unknown"},
                        "request": {"method": "POST", "url": "Patient"},
                    }
                    for _ in range(600)
                ],
            }
            result = client.batch(batch)
            assert not result.failed
            created |= {str(e.location).split("/")[1] for e in result.entries}
    out = tmp_path / "many"
    invoke(
        "export",
        "--server",
        pushed,
        "--out",
        str(out),
        "--type",
        "Patient",
        "--since",
        since,
        *FAST_POLL,
    )
    assert len(list(out.glob("Patient.*.ndjson"))) >= 3  # at most 499 resources per HAPI file
    patients = exported(out)["Patient"]
    assert {p["id"] for p in patients} >= created
    assert all(p["meta"]["lastUpdated"] >= since for p in patients)
