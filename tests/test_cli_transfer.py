"""`trialfhir push`, `pull` and `run`: exit codes per error class, nothing sent for bad input, nothing
written for a failed pull, and `run` without a server giving the study's report.

Server answers here are canned (pytest-httpx) for what a live server cannot show on demand; the live
push/pull/run through HAPI is in tests/integration/test_cli_hapi.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpx import HTTPXMock

from adapter.cli import main
from adapter.cli._common import (
    EXIT_AUTH,
    EXIT_BAD_INPUT,
    EXIT_FHIR_VERSION,
    EXIT_NOT_FOUND,
    EXIT_OUTPUT_REFUSED,
    EXIT_SERVER_REFUSED,
    MANIFEST,
)

FIXTURE = Path(__file__).resolve().parents[1] / "adapter" / "studies" / "dalakas1993"
BASE = "http://fhir.test/fhir"


def capability(version: str = "4.0.1") -> dict[str, object]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "fhirVersion": version,
        "kind": "instance",
        "format": ["json"],
        "date": "2026-11-26",
    }


def searchset(*resources: dict[str, object]) -> dict[str, object]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_push_of_bad_tables_sends_nothing_and_exits_3(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    bad = tmp_path / "trial"
    shutil.copytree(FIXTURE, bad)
    ex = (bad / "ex.csv").read_text(encoding="utf-8").splitlines()
    header = ex[0].split(",")
    cells = ex[1].split(",")
    cells[header.index("EXDOSE")] = "-1"
    ex[1] = ",".join(cells)
    (bad / "ex.csv").write_text("\n".join(ex) + "\n", encoding="utf-8")

    result = runner.invoke(main, ["push", str(bad), "--server", BASE])

    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "ex.csv, row 1, EXDOSE" in result.output
    assert httpx_mock.get_requests() == []


def test_push_to_a_fhir_3_server_exits_9(runner: CliRunner, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/metadata", json=capability("3.0.2"))
    result = runner.invoke(main, ["push", str(FIXTURE), "--server", BASE])
    assert result.exit_code == EXIT_FHIR_VERSION, result.output
    assert "3.0.2" in result.output
    assert all(r.method == "GET" for r in httpx_mock.get_requests())


def test_push_refused_with_401_exits_5_and_shows_the_outcome(
    runner: CliRunner, httpx_mock: HTTPXMock
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login", "diagnostics": "token expired"}],
    }
    httpx_mock.add_response(url=f"{BASE}/metadata", status_code=401, json=outcome)
    result = runner.invoke(main, ["push", str(FIXTURE), "--server", BASE, "--token", "t0k"])
    assert result.exit_code == EXIT_AUTH, result.output
    assert "token expired" in result.output
    assert "t0k" not in result.output


def test_push_whose_transaction_is_rejected_names_the_server_diagnostics(
    runner: CliRunner, httpx_mock: HTTPXMock
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "processing",
                "diagnostics": "HAPI-0539: Invalid reference",
            }
        ],
    }
    httpx_mock.add_response(url=f"{BASE}/metadata", json=capability())
    httpx_mock.add_response(method="POST", url=BASE, status_code=400, json=outcome)
    result = runner.invoke(main, ["push", str(FIXTURE), "--server", BASE, "--chunk-size", "1000"])
    assert result.exit_code in (EXIT_SERVER_REFUSED, 8), result.output
    assert "HAPI-0539: Invalid reference" in result.output


def test_pull_of_an_unknown_study_exits_6_and_writes_nothing(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(json=searchset())
    out = tmp_path / "pulled"
    result = runner.invoke(main, ["pull", "--server", BASE, "--study", "NOPE", "--out", str(out)])
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert not out.exists()
    (request,) = httpx_mock.get_requests()
    assert request.url.path.endswith("/ResearchStudy")
    assert request.url.params["identifier"].endswith("|NOPE")


def test_pull_refuses_a_non_empty_out_folder_before_asking_the_server(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    out = tmp_path / "pulled"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    result = runner.invoke(main, ["pull", "--server", BASE, "--study", "X", "--out", str(out)])
    assert result.exit_code == EXIT_OUTPUT_REFUSED
    assert "keep.txt" in result.output
    assert (out / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert httpx_mock.get_requests() == []


def test_one_auth_method_at_a_time(runner: CliRunner, httpx_mock: HTTPXMock) -> None:
    result = runner.invoke(
        main, ["push", str(FIXTURE), "--server", BASE, "--token", "a", "--basic", "u:p"]
    )
    assert result.exit_code == 2
    assert "one way to authenticate" in result.output
    assert httpx_mock.get_requests() == []


def test_run_without_a_server_writes_the_report_and_a_lossless_round_trip(
    runner: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = runner.invoke(main, ["run", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"Report: {out / 'report' / 'report.html'}" in result.output
    assert (out / MANIFEST).is_file()
    for csv in sorted(FIXTURE.glob("*.csv")):
        assert (out / "sdtm" / csv.name).read_bytes() == csv.read_bytes(), csv.name
    results = json.loads((out / "report" / "results.json").read_text(encoding="utf-8"))
    assert results["endpoints"]["E8"]["values"]["n_ivig_arm"] == 8
    assert results["endpoints"]["E8"]["values"]["n_placebo_arm"] == 7
    assert "<img" in (out / "report" / "report.html").read_text(encoding="utf-8")

    again = runner.invoke(main, ["run", "--out", str(out)])
    assert again.exit_code == EXIT_OUTPUT_REFUSED, again.output
    assert "--force" in again.output
    forced = runner.invoke(main, ["run", "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output


def test_run_refuses_a_foreign_non_empty_folder(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_bytes(b"precious")
    result = runner.invoke(main, ["run", "--out", str(out), "--force"])
    assert result.exit_code == EXIT_OUTPUT_REFUSED
    assert "thesis.docx" in result.output
    assert (out / "thesis.docx").read_bytes() == b"precious"


def test_server_errors_map_to_their_exit_codes() -> None:
    from adapter.cli._common import (
        EXIT_TRANSACTION,
        EXIT_UNEXPECTED,
        EXIT_UNREACHABLE,
        exit_code_for,
    )
    from adapter.client import FhirTimeout, RetriesExhausted, TransactionFailed
    from adapter.tables import TableError
    from adapter.transfer import StudyNotFound

    timeout = FhirTimeout("slow", method="GET", resource_type="Patient")
    assert exit_code_for(TableError([])) == EXIT_BAD_INPUT
    assert exit_code_for(StudyNotFound("x")) == EXIT_NOT_FOUND
    assert exit_code_for(TransactionFailed(400)) == EXIT_TRANSACTION
    assert exit_code_for(timeout) == EXIT_UNREACHABLE
    assert exit_code_for(RetriesExhausted(5, timeout)) == EXIT_UNREACHABLE
    assert exit_code_for(ValueError("a bug")) == EXIT_UNEXPECTED


def test_smart_options_build_a_backend_services_auth(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from adapter.cli._common import client_options
    from adapter.client import SmartBackendAuth

    key = ec.generate_private_key(ec.SECP384R1())
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    options = client_options(
        None, None, "trial-exporter", pem, "ES384", "system/*.read", 30.0, None
    )
    auth = options["auth"]
    assert isinstance(auth, SmartBackendAuth)
    assert (auth.client_id, auth.algorithm, auth.scope) == (
        "trial-exporter",
        "ES384",
        "system/*.read",
    )
    assert options["timeout"] == 30.0
