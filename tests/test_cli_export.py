"""`trialfhir export` against a scripted Bulk Data server (tests/bulkserver.py): the output folder's
layout, Ctrl-C and resuming, --cancel, the exit codes of what goes wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from bulkserver import BASE, STATUS, BulkServer, ndjson, outcome, patients
from click.testing import CliRunner
from pytest_httpx import HTTPXMock

from adapter.cli import main
from adapter.cli.export_cmd import job_folder
from adapter.fhir_files import read_resources

OBSERVATIONS = [
    {"resourceType": "Observation", "id": f"o{i}", "status": "final", "code": {"text": "x"}}
    for i in range(4)
]


def export(out: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        main, ["export", "--server", BASE, "--out", str(out), *extra], catch_exceptions=False
    )


def two_types() -> BulkServer:
    server = BulkServer.with_types(Patient=ndjson(patients(3)), Observation=ndjson(OBSERVATIONS))
    server.retry_after = "0"
    return server


def test_export_writes_the_documented_layout(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    server = two_types()
    server.errors[f"{BASE}/files/err.ndjson"] = ndjson([outcome("Group member g7 not found")])
    httpx_mock.add_callback(server, is_reusable=True)
    out = tmp_path / "export"
    result = export(out, "--type", "Patient,Observation")
    assert result.exit_code == 0, result.output
    assert "exported 7 resources in 2 files" in result.stdout
    assert "Group member g7 not found" in result.stderr
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert names == [
        ".trialfhir-manifest.json",
        "Observation.000.ndjson",
        "Patient.000.ndjson",
        "error",
        "error/OperationOutcome.000.ndjson",
        "export.json",
        "manifest.json",
    ]
    written = json.loads((out / ".trialfhir-manifest.json").read_text())
    assert written["written_by"] == "trialfhir export"
    assert len(written["files"]) == 5
    job = json.loads((out / "export.json").read_text())
    assert job["status_url"] == STATUS
    assert job["request"]["types"] == ["Patient", "Observation"]
    assert json.loads((out / "manifest.json").read_text())["transactionTime"]
    assert sorted(r["id"] for r in read_resources(out)) == sorted(
        [f"p{i}" for i in range(3)] + [f"o{i}" for i in range(4)]
    )
    assert not job_folder(out).exists()
    kickoff = server.of("GET", "$export?")[0]
    assert kickoff.url.params["_type"] == "Patient,Observation"


def test_ctrl_c_keeps_the_job_and_the_same_command_resumes_it(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    server = two_types()
    interrupted = [False]

    def answer(request: httpx.Request) -> httpx.Response:
        if "poll-status" in str(request.url) and not interrupted[0]:
            interrupted[0] = True
            raise KeyboardInterrupt
        return server(request)

    httpx_mock.add_callback(answer, is_reusable=True)
    out = tmp_path / "export"
    first = export(out)
    assert first.exit_code == 130
    assert "run the same command again to resume it" in first.stderr
    assert (job_folder(out) / "job.json").is_file()
    assert not out.exists()
    second = export(out)
    assert second.exit_code == 0, second.output
    assert "(resumed)" in second.stdout
    assert len(server.of("GET", "$export?")) == 1
    assert (out / "Patient.000.ndjson").read_bytes() == ndjson(patients(3))


def test_cancel_deletes_the_kept_job(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    server = two_types()
    server.pending, server.retry_after = 10_000, "1"
    httpx_mock.add_callback(server, is_reusable=True)
    out = tmp_path / "export"
    stopped = export(out, "--max-wait", "0.5", "--max-poll-interval", "0.1")
    assert stopped.exit_code == 7, stopped.output
    assert "did not complete within 0.5 s" in stopped.stderr
    assert "export job is kept" in stopped.stderr
    cancelled = export(out, "--cancel")
    assert cancelled.exit_code == 0, cancelled.output
    (delete,) = server.of("DELETE", "poll-status")
    assert str(delete.url) == STATUS
    assert not job_folder(out).exists()
    again = export(out, "--cancel")
    assert again.exit_code == 2
    assert "no export job is kept" in again.stderr


def test_another_export_into_a_folder_with_a_kept_job_is_refused(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    server = two_types()
    server.pending = 10_000
    httpx_mock.add_callback(server, is_reusable=True)
    out = tmp_path / "export"
    assert export(out, "--max-wait", "0.2", "--max-poll-interval", "0.1").exit_code == 7
    other = export(out, "--type", "Observation")
    assert other.exit_code == 11
    assert "another export" in other.stderr
    assert len(server.of("GET", "$export?")) == 1


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--group", "g1", "--patient"], "not both"),
        (["--since", "last week"], "since 'last week'"),
        (["--type", "Patient", "--type-filter", "Observation?code=1"], "not among the types"),
        (["--allow-token-host", "files.example.org"], "--allow-token-host"),
    ],
)
def test_usage_errors_exit_2_before_any_request(
    httpx_mock: HTTPXMock, tmp_path: Path, options: list[str], said: str
) -> None:
    result = export(tmp_path / "export", *options)
    assert result.exit_code == 2
    assert said in result.stderr
    assert httpx_mock.get_requests() == []


def test_an_output_folder_with_foreign_files_is_refused_before_kick_off(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = export(out)
    assert result.exit_code == 11
    assert "notes.txt" in result.stderr
    assert httpx_mock.get_requests() == []


def test_an_invalid_manifest_exits_10_and_keeps_the_job(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    server = two_types()
    server.manifest_extra = {"output": "all of it"}
    httpx_mock.add_callback(server, is_reusable=True)
    out = tmp_path / "export"
    result = export(out)
    assert result.exit_code == 10
    assert "output: not an array" in result.stderr
    assert "export job is kept" in result.stderr
    assert not out.exists()


def test_a_failed_job_exits_with_the_servers_outcome(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
    )
    httpx_mock.add_response(
        url=f"{BASE}/$export?_outputFormat=application%2Ffhir%2Bndjson",
        status_code=202,
        headers={"Content-Location": STATUS},
    )
    httpx_mock.add_response(url=STATUS, status_code=500, json=outcome("the export job failed"))
    result = export(tmp_path / "export")
    assert result.exit_code == 7
    assert "the export job failed" in result.stderr
