"""FHIR from elsewhere, the whole wire path against the live HAPI server: Synthea-like transaction
Bundles pushed as they are (their `urn:uuid:` references resolved by the server) -> `trialfhir export`
(Bulk Data, everything and one Group) -> `convert --to sdtm` -> tables and a mapping report that accounts
for every exported resource."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.client import FhirClient
from adapter.fhir_json import dumps, loads
from tests.foreign import synthetic

pytestmark = pytest.mark.hapi

FAST_POLL = ("--max-poll-interval", "1", "--max-wait", "600")
PATIENTS = (
    2,
    3,
    4,
)  # synthetic.synthea_bundle(1) carries invalid R4 on purpose: HAPI would refuse it


def invoke(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def exported(folder: Path) -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for file in sorted(folder.glob("*.ndjson")):
        for line in file.read_text(encoding="utf-8").splitlines():
            if line:
                resource = loads(line)
                by_type.setdefault(resource["resourceType"], []).append(resource)
    return by_type


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    return {n: synthetic.synthea_bundle(n) for n in PATIENTS}


@pytest.fixture(scope="module")
def pushed(
    hapi_clean_base_url: str,
    bundles: dict[int, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    folder = tmp_path_factory.mktemp("synthea")
    for n, bundle in bundles.items():
        (folder / f"patient-{n}.json").write_bytes(dumps(bundle))
    result = invoke("push", str(folder), "--server", hapi_clean_base_url)
    assert "transaction Bundles sent as they are" in result.output
    return hapi_clean_base_url


def test_pushed_as_is_then_exported_then_every_resource_is_in_the_report(
    pushed: str, bundles: dict[int, dict[str, Any]], tmp_path: Path
) -> None:
    sent: dict[str, int] = {}
    for bundle in bundles.values():
        for entry in bundle["entry"]:
            kind = entry["resource"]["resourceType"]
            sent[kind] = sent.get(kind, 0) + 1
    out = tmp_path / "export"
    invoke("export", "--server", pushed, "--out", str(out), *FAST_POLL)
    by_type = exported(out)
    assert {kind: len(found) for kind, found in by_type.items()} == sent
    # the server resolved the urn:uuid references: every Observation names an exported Patient
    patients = {f"Patient/{p['id']}" for p in by_type["Patient"]}
    assert all(o["subject"]["reference"] in patients for o in by_type["Observation"])

    sdtm = tmp_path / "sdtm"
    invoke("convert", str(out), "--to", "sdtm", "--study", "SYN01", "--out", str(sdtm))
    report = json.loads((sdtm / "mapping-report.json").read_text(encoding="utf-8"))
    types = report["resource_types"]
    assert {kind: entry["read"] for kind, entry in types.items()} == sent
    for kind, entry in types.items():
        assert entry["mapped"] + entry["skipped"] == entry["read"], kind
    assert report["totals"]["read"] == sum(sent.values())
    dm = rows(sdtm / "dm.csv")
    assert sorted(r["DMSRCID"] for r in dm) == sorted(patients)
    # the values as written in the pushed Bundles come back as written, row by row
    vs_lb = rows(sdtm / "vs.csv") + rows(sdtm / "lb.csv")
    assert vs_lb, "vital signs and labs mapped"
    # every quantity comes back as the server exported it (the text of the number, not a float)
    exported_values = {
        (f"Observation/{o['id']}", str(o["valueQuantity"]["value"]))
        for o in by_type["Observation"]
        if "valueQuantity" in o and o["status"] != "entered-in-error"  # skipped, by the rules
    }
    values = {(r.get("VSSRCID") or r["LBSRCID"], r.get("VSORRES") or r["LBORRES"]) for r in vs_lb}
    assert exported_values <= values
    by_patient = {r["USUBJID"] for r in vs_lb}
    assert len(by_patient) == len(PATIENTS)


def test_export_of_a_group_converts_its_members_only(pushed: str, tmp_path: Path) -> None:
    with FhirClient(pushed) as client:
        member = next(iter(client.search("Patient").limit(1)))["id"]
        group = client.create(
            {
                "resourceType": "Group",
                "type": "person",
                "actual": True,
                "member": [{"entity": {"reference": f"Patient/{member}"}}],
            }
        )
    out = tmp_path / "export"
    assert group.resource is not None
    invoke(
        "export", "--server", pushed, "--out", str(out), "--group", group.resource["id"], *FAST_POLL
    )
    by_type = exported(out)
    assert [p["id"] for p in by_type["Patient"]] == [member]
    sdtm = tmp_path / "sdtm"
    invoke("convert", str(out), "--to", "sdtm", "--study", "SYN01", "--out", str(sdtm))
    dm = rows(sdtm / "dm.csv")
    assert [r["DMSRCID"] for r in dm] == [f"Patient/{member}"]
    report = json.loads((sdtm / "mapping-report.json").read_text(encoding="utf-8"))
    assert report["totals"]["read"] == sum(len(v) for v in by_type.values())
