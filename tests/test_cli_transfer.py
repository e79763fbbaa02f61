"""`trialfhir push`, `pull` and `run`: exit codes per error class, nothing sent for bad input, nothing
written for a failed pull, and `run` without a server giving the study's report.

Server answers here are canned (pytest-httpx) for what a live server cannot show on demand; the live
push/pull/run through HAPI is in tests/integration/test_cli_hapi.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from faultserver import (
    Behaviour,
    FaultHandler,
    FaultServer,
    deep_json,
    drip,
    endless_next,
    huge_body,
    json_body,
    looping_next,
    raw_body,
    transaction_answer,
)
from pytest_httpx import HTTPXMock

from adapter.cli import main
from adapter.cli._common import (
    EXIT_AUTH,
    EXIT_BAD_INPUT,
    EXIT_FHIR_VERSION,
    EXIT_NOT_FOUND,
    EXIT_OUTPUT_REFUSED,
    EXIT_SERVER_ANSWER,
    EXIT_SERVER_REFUSED,
    EXIT_TRANSACTION,
    EXIT_UNREACHABLE,
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


# -- a broken or lying server on loopback (tests/faultserver.py) ------------------------------------


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(lifetime=60) as running:
        running.route("GET", "/fhir/metadata", json_body(capability()))
        yield running


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without waiting between attempts (the attempts themselves stay as the policy says)."""
    from adapter.client import RetryPolicy

    monkeypatch.setattr(RetryPolicy, "backoff", lambda self, retry_number: 0.0)


def pull_args(server: FaultServer, out: Path, *extra: str) -> list[str]:
    return ["pull", "--server", server.base, "--study", "DALAKAS1993", "--out", str(out), *extra]


def test_pull_of_an_endless_next_chain_exits_10_at_the_page_cap(
    runner: CliRunner, tmp_path: Path, server: FaultServer
) -> None:
    server.route("GET", "/fhir/ResearchStudy", endless_next(server.base))
    server.route("GET", "/fhir", endless_next(server.base))
    out = tmp_path / "pulled"
    result = runner.invoke(main, pull_args(server, out, "--max-pages", "3"))
    assert result.exit_code == EXIT_SERVER_ANSWER, result.output
    assert "more than 3 pages" in result.output
    assert "--max-pages" in result.output
    assert not out.exists()
    assert len(server.requests) == 3


def test_pull_of_a_looping_next_chain_exits_10(
    runner: CliRunner, tmp_path: Path, server: FaultServer
) -> None:
    server.route("GET", "/fhir/ResearchStudy", looping_next(server.base))
    server.route("GET", "/fhir", looping_next(server.base))
    out = tmp_path / "pulled"
    result = runner.invoke(main, pull_args(server, out))
    assert result.exit_code == EXIT_SERVER_ANSWER, result.output
    assert "repeats the link of page" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("behaviour", "said"),
    [
        (raw_body(b"<html>maintenance</html>"), "not JSON"),
        (raw_body(b'{"resourceType":"Bundle","entry":{"resource":{}}}'), "not a list"),
        (deep_json(100_000), "nested deeper than 254"),
        (deep_json(100_000, with_decimal=True), "nested deeper than 254"),
        (huge_body(8 * 1024 * 1024), "larger than 4194304 bytes"),
    ],
    ids=["not-json", "entry-not-a-list", "deep", "deep-with-decimal", "huge"],
)
def test_pull_of_a_refused_answer_exits_10_and_writes_nothing(
    runner: CliRunner, tmp_path: Path, server: FaultServer, behaviour: Behaviour, said: str
) -> None:
    server.route("GET", "/fhir/ResearchStudy", behaviour)
    out = tmp_path / "pulled"
    result = runner.invoke(main, pull_args(server, out, "--max-body-mb", "4"))
    assert result.exit_code == EXIT_SERVER_ANSWER, result.output
    assert said in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_pull_from_a_dripping_server_gives_up_at_the_deadline_after_the_retries(
    runner: CliRunner, tmp_path: Path, server: FaultServer, no_backoff: None
) -> None:
    server.route("GET", "/fhir/ResearchStudy", drip(b"{}" * 50, interval=0.1))
    out = tmp_path / "pulled"
    result = runner.invoke(main, pull_args(server, out, "--deadline", "0.5"))
    assert result.exit_code == EXIT_UNREACHABLE, result.output
    assert "gave up after 5 attempt(s)" in result.output
    assert "deadline" in result.output
    assert len(server.requests) == 5  # the default RetryPolicy, and not one more
    assert not out.exists()


def fhir_folder(tmp_path: Path) -> Path:
    """The fixture trial as an NDJSON folder (what `convert` writes)."""
    from adapter.fhir_files import write_ndjson
    from adapter.sources import detect

    folder = tmp_path / "fhir"
    write_ndjson(detect(FIXTURE).resources(), folder)
    return folder


def test_push_of_a_fhir_folder_with_a_bad_last_line_sends_nothing(
    runner: CliRunner, tmp_path: Path, server: FaultServer
) -> None:
    folder = fhir_folder(tmp_path)
    last = sorted(folder.glob("*.ndjson"))[-1]
    with last.open("ab") as handle:
        handle.write(b'{"resourceType": "Observation", "status": \n')
    server.route("POST", "/fhir", transaction_answer())
    result = runner.invoke(main, ["push", str(folder), "--server", server.base])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert f"{last}, line" in result.output
    assert [r.method for r in server.requests] == []  # FHIR files are checked before connecting


def test_push_of_resources_without_the_adapters_identifiers_creates_them_and_says_so(
    runner: CliRunner, tmp_path: Path, server: FaultServer
) -> None:
    """Resources of others never go the conditional path (it needs the adapter's identifiers): they
    are created, and the summary says which path each took (tests/test_cli_push_foreign.py)."""
    folder = tmp_path / "fhir"
    folder.mkdir()
    lines = [
        {"resourceType": "Patient", "id": "a", "identifier": [{"system": "urn:s", "value": "1"}]},
        {"resourceType": "Patient", "id": "b"},
        {"resourceType": "Observation", "id": "c", "status": "final"},
    ]
    (folder / "mixed.ndjson").write_text("".join(json.dumps(r) + "\n" for r in lines))
    server.route("POST", "/fhir", transaction_answer())
    result = runner.invoke(main, ["push", str(folder), "--server", server.base])
    assert result.exit_code == 0, result.output
    assert "paths: 3 created, ids assigned by the server" in result.output
    sent = json.loads(next(r for r in server.requests if r.method == "POST").body)
    assert [e["request"] for e in sent["entry"]] == [
        {"method": "POST", "url": "Patient"},
        {"method": "POST", "url": "Patient"},
        {"method": "POST", "url": "Observation"},
    ]


def answers_by_call(*behaviours: Behaviour) -> Behaviour:
    """The first call gets the first behaviour, and so on; the last one answers every later call."""
    calls: list[int] = []

    def answer(handler: FaultHandler) -> None:
        calls.append(1)
        behaviours[min(len(calls), len(behaviours)) - 1](handler)

    return answer


def test_push_with_a_short_transaction_answer_exits_10_naming_the_committed_chunks(
    runner: CliRunner, server: FaultServer
) -> None:
    server.route(
        "POST",
        "/fhir",
        answers_by_call(transaction_answer(), transaction_answer(lambda entries: entries[:-48])),
    )
    result = runner.invoke(
        main, ["push", str(FIXTURE), "--server", server.base, "--chunk-size", "300"]
    )
    assert result.exit_code == EXIT_SERVER_ANSWER, result.output
    assert "the server's answer of chunk 2 does not match the request" in result.output
    assert "252 entries answer the 300 sent" in result.output
    assert "Chunk 1 (300 of 759 resources) was committed before it" in result.output
    assert "Re-running the same upload completes it" in result.output
    assert "pushed" not in result.output
    assert len([r for r in server.requests if r.method == "POST"]) == 2


def test_push_whose_second_transaction_is_rejected_exits_8_naming_the_committed_chunk(
    runner: CliRunner, server: FaultServer
) -> None:
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": "HAPI-1094"}],
    }
    server.route(
        "POST", "/fhir", answers_by_call(transaction_answer(), json_body(refusal, status=400))
    )
    result = runner.invoke(
        main, ["push", str(FIXTURE), "--server", server.base, "--chunk-size", "500"]
    )
    assert result.exit_code == EXIT_TRANSACTION, result.output
    assert "transaction failed in chunk 2 (HTTP 400): HAPI-1094" in result.output
    assert "Chunk 1 (500 of 759 resources) was committed before it" in result.output
    assert "chunk 2 was rolled back" in result.output


def test_push_that_times_out_half_way_says_what_was_committed(
    runner: CliRunner, server: FaultServer, no_backoff: None
) -> None:
    server.route(
        "POST", "/fhir", answers_by_call(transaction_answer(), drip(b"{}" * 50, interval=0.1))
    )
    result = runner.invoke(
        main,
        ["push", str(FIXTURE), "--server", server.base, "--chunk-size", "500", "--deadline", "2"],
    )
    assert result.exit_code == EXIT_UNREACHABLE, result.output
    assert "Chunk 1 (500 of 759 resources) was committed before it" in result.output
    assert "chunk 2 may or may not have been committed" in result.output


def test_refused_answers_map_to_exit_10() -> None:
    from adapter.cli._common import exit_code_for
    from adapter.client import (
        InvalidResponse,
        PageLimitReached,
        PagingLoop,
        ResponseTooLarge,
        TransactionResponseMismatch,
        UnsafeNextLink,
        UnwritableResources,
    )

    refused = [
        InvalidResponse("x"),
        UnsafeNextLink("http://a:1", "http://b:2"),
        PagingLoop(3, 1),
        PageLimitReached(10, "Patient"),
        ResponseTooLarge("GET", "Patient", 10),
        TransactionResponseMismatch(["1 entries answer the 2 sent"]),
    ]
    assert [exit_code_for(exc) for exc in refused] == [EXIT_SERVER_ANSWER] * len(refused)
    assert exit_code_for(UnwritableResources(["resource 0: no resourceType"], "update")) == 3


def test_pull_of_a_study_without_an_id_exits_10(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(json=searchset({"resourceType": "ResearchStudy", "status": "active"}))
    out = tmp_path / "pulled"
    result = runner.invoke(main, ["pull", "--server", BASE, "--study", "X", "--out", str(out)])
    assert result.exit_code == EXIT_SERVER_ANSWER, result.output
    assert "the server sent a ResearchStudy without an id" in result.output
    assert not out.exists()


def test_pull_whose_study_search_answers_another_type_exits_10(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(json=searchset({"resourceType": "Patient", "id": "p1"}))
    out = tmp_path / "pulled"
    result = runner.invoke(main, ["pull", "--server", BASE, "--study", "X", "--out", str(out)])
    assert result.exit_code == EXIT_SERVER_ANSWER, result.output
    assert "answered a ResearchStudy search with a Patient" in result.output
    assert not out.exists()


def test_push_with_concurrency_names_the_failed_chunk_and_counts_only_what_was_committed(
    runner: CliRunner, server: FaultServer
) -> None:
    from adapter.sources import detect

    trial = list(detect(FIXTURE).resources())
    target = f"{server.base}/{trial[200]['resourceType']}/{trial[200]['id']}"  # chunk 5's first
    committed: list[int] = []
    commit = transaction_answer()

    def answer(handler: FaultHandler) -> None:
        sent = json.loads(handler.seen.body)
        if sent["entry"][0]["fullUrl"] == target:
            json_body({"resourceType": "OperationOutcome", "issue": []}, status=400)(handler)
            return
        committed.append(len(sent["entry"]))  # before the answer: counted when the client reads it
        commit(handler)

    server.route("POST", "/fhir", answer)
    result = runner.invoke(
        main,
        ["push", str(FIXTURE), "--server", server.base, "--chunk-size", "50", "--concurrency", "3"],
    )
    assert result.exit_code == EXIT_TRANSACTION, result.output
    assert "transaction failed in chunk 5 (HTTP 400)" in result.output
    assert "chunk 5 was rolled back" in result.output
    assert f"({sum(committed)} of 759 resources)" in result.output
    assert "pushed" not in result.output


def test_push_interrupted_says_what_was_committed_and_exits_130(
    runner: CliRunner, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapter.transfer

    def interrupted(*args: object, **kwargs: object) -> None:
        stop = KeyboardInterrupt()
        stop.add_note("Chunks 1-3 (150 of 759 resources) were committed; chunk 4 may or may not")
        raise stop

    monkeypatch.setattr(adapter.transfer, "push", interrupted)
    result = runner.invoke(main, ["push", str(FIXTURE), "--server", server.base])
    assert result.exit_code == 130, result.output
    assert "push interrupted" in result.output
    assert "Chunks 1-3 (150 of 759 resources) were committed" in result.output


def test_push_concurrency_below_1_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["push", str(FIXTURE), "--server", BASE, "--concurrency", "0"])
    assert result.exit_code == 2, result.output
    assert "--concurrency" in result.output
