"""adapter.foreign: reading FHIR as others write it (Bulk Data folders, .ndjson.gz, logs, error files,
Bundles, single resources) and writing the tables and the report."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from adapter.foreign import ForeignOutputError, convert_foreign, read_foreign
from tests.foreign.conftest import BUNDLE_TEXT, ENTRIES


def bulk_folder(root: Path) -> Path:
    """A Bulk Data export as a client writes it: NDJSON per type (one gzipped), the client's log,
    an error/ OperationOutcome, a manifest, a line that is not JSON."""
    src = root / "export"
    (src / "error").mkdir(parents=True)
    patients = [e for e in ENTRIES if '"Patient"' in e[:40]]
    observations = [
        e.replace("urn:uuid:p1", "Patient/p1") for e in ENTRIES if '"Observation"' in e[:40]
    ]
    (src / "Patient.000.ndjson").write_text("\n".join(" ".join(p.split()) for p in patients) + "\n")
    with gzip.open(src / "Observation.000.ndjson.gz", "wt") as handle:
        handle.write("\n".join(" ".join(o.split()) for o in observations) + "\n{not json\n")
    (src / "log.ndjson").write_text(
        '{"exportId": "x", "eventId": "kickoff"}\n{"exportId": "x", "eventId": "done"}\n'
    )
    (src / "error" / "OperationOutcome.ndjson").write_text(
        json.dumps(
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "processing",
                        "diagnostics": "Observation/42 could not be exported",
                    }
                ],
            }
        )
        + "\n"
    )
    (src / "manifest.json").write_text(
        json.dumps({"transactionTime": "2024-01-01T00:00:00Z", "output": []})
    )
    return src


def test_a_bulk_export_folder_is_read_with_its_logs_and_errors_reported(tmp_path: Path) -> None:
    found = read_foreign(bulk_folder(tmp_path))
    types = sorted({r.resource["resourceType"] for r in found.resources})
    assert types == ["Observation", "Patient"]
    assert len(found.resources) == 2 + 12
    reasons = {p["where"]: p["reason"] for p in found.problems}
    assert reasons["Observation.000.ndjson.gz, line 13"] == "not JSON"
    assert reasons["log.ndjson"].startswith("2 lines are JSON but not FHIR resources")
    assert "manifest.json" not in reasons  # a Bulk Data manifest is what it is, not a problem
    assert found.not_data == [
        {"where": "manifest.json", "what": "a Bulk Data manifest (what the export holds): not data"}
    ]
    (message,) = found.messages
    assert (message["where"], message["severity"], message["code"]) == (
        "error/OperationOutcome.ndjson, line 1",
        "error",
        "processing",
    )
    assert message["message"] == "Observation/42 could not be exported"


def test_decimals_are_read_as_written(tmp_path: Path) -> None:
    src = bulk_folder(tmp_path)
    result = convert_foreign(src, tmp_path / "out", study="EHR1")
    with (tmp_path / "out" / "vs.csv").open(newline="") as handle:
        vs = {r["VSSRCID"]: r for r in csv.DictReader(handle)}
    assert vs["Observation/temp"]["VSORRES"] == "98.60"
    assert vs["Observation/weight"]["VSORRES"] == "165.0"
    assert not result.nothing_mapped


def test_convert_writes_every_table_and_both_reports(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "bundle.json").write_text(BUNDLE_TEXT)
    result = convert_foreign(src, tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        "ae.csv",
        "cm.csv",
        "dm.csv",
        "ex.csv",
        "lb.csv",
        "mapping-report.json",
        "mapping-report.md",
        "mh.csv",
        "pr.csv",
        "vs.csv",
    ]
    report = json.loads((tmp_path / "out" / "mapping-report.json").read_text())
    assert report["totals"] == {"read": 29, "mapped": 18, "skipped": 11, "rows": 16}
    for account in report["resource_types"].values():
        assert account["mapped"] + account["skipped"] == account["read"]
    assert "| Observation | 12 | 8 | 4 |" in (tmp_path / "out" / "mapping-report.md").read_text()
    first = (tmp_path / "out" / "dm.csv").read_text()
    assert first.splitlines()[0].startswith("STUDYID,DOMAIN,USUBJID,SUBJID")
    assert result.mapping.report.total_rows == 16
    # a second run into the same folder replaces its own files
    convert_foreign(src, tmp_path / "out")
    assert (tmp_path / "out" / "dm.csv").read_text() == first


def test_tables_do_not_depend_on_where_the_input_lay(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name / "deep").mkdir(parents=True)
        (tmp_path / name / "deep" / "bundle.json").write_text(BUNDLE_TEXT)
        convert_foreign(tmp_path / name, tmp_path / f"out-{name}")
    for table in ("dm.csv", "vs.csv", "lb.csv", "cm.csv", "ae.csv", "mh.csv", "pr.csv"):
        assert (tmp_path / "out-a" / table).read_bytes() == (
            tmp_path / "out-b" / table
        ).read_bytes()


def test_nothing_mapped_is_said(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "Encounter.ndjson").write_text(
        '{"resourceType": "Encounter", "id": "e", "status": "finished"}\n'
    )
    result = convert_foreign(src, tmp_path / "out", study="S")
    assert result.nothing_mapped
    assert (
        json.loads((tmp_path / "out" / "mapping-report.json").read_text())["resource_types"][
            "Encounter"
        ]["skipped_by_reason"]["no SDTM domain"]["count"]
        == 1
    )


@pytest.mark.parametrize("where", ["inside", "same", "parent"])
def test_the_output_must_not_overlap_the_input(tmp_path: Path, where: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "bundle.json").write_text(BUNDLE_TEXT)
    out = {"inside": src / "out", "same": src, "parent": tmp_path}[where]
    with pytest.raises(ForeignOutputError):
        convert_foreign(src, out)
    assert sorted(p.name for p in src.iterdir()) == ["bundle.json"]


def test_an_output_folder_with_other_files_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "bundle.json").write_text(BUNDLE_TEXT)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ForeignOutputError, match=r"notes\.txt"):
        convert_foreign(src, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_unreadable_files_are_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.ndjson.gz").write_bytes(b"this is not gzip")
    with gzip.open(src / "cut.ndjson.gz", "wb") as handle:
        handle.write(b'{"resourceType": "Patient", "id": "a"}\n' * 50)
    (src / "cut.ndjson.gz").write_bytes((src / "cut.ndjson.gz").read_bytes()[:-12])
    (src / "array.json").write_text("[1, 2]")
    (src / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "ok"}\n')
    found = read_foreign(src)
    reasons = {p["where"]: p["reason"] for p in found.problems}
    assert reasons["broken.ndjson.gz"].startswith("cannot be read")
    assert reasons["cut.ndjson.gz"].startswith("cannot be read after line ")
    assert reasons["array.json"].startswith("JSON but not a FHIR resource")
    assert ("Patient", "ok") in {
        (r.resource["resourceType"], r.resource["id"]) for r in found.resources
    }


def test_a_searchset_outcome_is_a_server_message(tmp_path: Path) -> None:
    src = tmp_path / "page.json"
    src.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [
                    {
                        "resource": {"resourceType": "Patient", "id": "a"},
                        "search": {"mode": "match"},
                    },
                    {
                        "resource": {
                            "resourceType": "OperationOutcome",
                            "issue": [
                                {
                                    "severity": "warning",
                                    "code": "too-costly",
                                    "diagnostics": "results truncated",
                                }
                            ],
                        },
                        "search": {"mode": "outcome"},
                    },
                ],
            }
        )
    )
    found = read_foreign(src)
    assert [r.resource["resourceType"] for r in found.resources] == ["Bundle", "Patient"]
    (message,) = found.messages
    assert (message["where"], message["code"], message["message"]) == (
        "page.json, entry 1",
        "too-costly",
        "results truncated",
    )


def test_the_tables_are_trial_tables_and_round_trip_through_the_own_profile(
    tmp_path: Path,
) -> None:
    """What the profile-free path writes has every variable the trial-export contract requires (read
    back and checked by adapter.tables), and maps SDTM -> FHIR -> SDTM byte for byte in the adapter's
    own profile, --SRCID included (LB, AE, MH as well as the older domains)."""
    from adapter.tables import read_trial, write_trial
    from mappings.trial import fhir_to_trial, trial_to_fhir

    src = tmp_path / "bundle.json"
    src.write_text(BUNDLE_TEXT)
    convert_foreign(src, tmp_path / "out", study="STUDY1")
    trial = read_trial(tmp_path / "out")
    assert sum(len(t.rows) for t in trial.values()) > 0
    write_trial(fhir_to_trial(trial_to_fhir(trial)), tmp_path / "back")
    for path in sorted((tmp_path / "out").glob("*.csv")):
        assert (tmp_path / "back" / path.name).read_bytes() == path.read_bytes(), path.name
