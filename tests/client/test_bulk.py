"""Bulk Data $export: the kick-off, polling (Retry-After, X-Progress, its own bound), the manifest,
downloads (the token only where it belongs, cut off and resumed, gzip, the disk limit), error files,
resuming and cancelling a job; sync and async, against a scripted server (tests/bulkserver.py) and a
real socket that hangs up mid-file (tests/faultserver.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from bulkserver import BASE, STATUS, BulkServer, ndjson, outcome, patients
from faultserver import FaultHandler, FaultServer, json_body
from pytest_httpx import HTTPXMock

from adapter.client import (
    AsyncBulkExport,
    AsyncFhirClient,
    BearerAuth,
    BulkExport,
    ExportEvents,
    ExportFolderInUse,
    ExportRequest,
    ExportTimedOut,
    ExportTooLarge,
    FhirClient,
    FhirTransportError,
    InvalidExportFile,
    InvalidManifest,
    InvalidResponse,
    RetryPolicy,
    ServerError,
    TokenHostRefused,
)
from adapter.client._bulk import PollClock, kickoff_spec, parse_manifest
from adapter.client._core import ClientCore

from .conftest import SleepRecorder

NO_RETRY = RetryPolicy.none()
FAST = RetryPolicy(max_attempts=3, backoff_base=0.0, random=lambda: 0.0)


class Recorder(ExportEvents):
    def __init__(self) -> None:
        self.progress: list[str | None] = []
        self.names: list[str] = []

    def pending(self, progress: str | None, wait: float) -> None:
        self.progress.append(progress)

    def downloaded(self, name: str, resources: int) -> None:
        self.names.append(name)


def sync_client(sleeps: SleepRecorder, **options: Any) -> FhirClient:
    options.setdefault("retry", NO_RETRY)
    return FhirClient(BASE, sleep=sleeps, **options)


# -- the request ------------------------------------------------------------------------------------


def test_kickoff_urls_for_each_level_carry_the_parameters() -> None:
    core = ClientCore(BASE)
    system = kickoff_spec(
        core, ExportRequest(types=("Patient", "Observation"), since="2026-01-01T00:00:00Z")
    )
    assert system.url.path == "/fhir/$export"
    assert system.url.params.get_list("_type") == ["Patient,Observation"]
    assert system.url.params["_since"] == "2026-01-01T00:00:00Z"
    assert system.url.params["_outputFormat"] == "application/fhir+ndjson"
    assert ("Prefer", "respond-async") in system.headers
    patient = kickoff_spec(core, ExportRequest(level="patient"))
    assert patient.url.path == "/fhir/Patient/$export"
    group = kickoff_spec(
        core,
        ExportRequest(
            level="group",
            group_id="g1",
            type_filters=("Observation?code=8480-6", "Observation?code=8462-4"),
        ),
    )
    assert group.url.path == "/fhir/Group/g1/$export"
    assert group.url.params.get_list("_typeFilter") == [
        "Observation?code=8480-6",
        "Observation?code=8462-4",
    ]


def test_a_bad_request_lists_every_problem() -> None:
    problems = ExportRequest(
        level="group",
        types=("patient", "Observation"),
        since="yesterday",
        type_filters=("Condition?code=x", "nonsense"),
    ).problems()
    assert len(problems) == 5
    assert any("group" in p for p in problems)
    assert any("'patient'" in p for p in problems)
    assert any("yesterday" in p for p in problems)
    assert any("not among the types" in p for p in problems)
    assert any("'nonsense'" in p for p in problems)
    with pytest.raises(ValueError, match="yesterday"):
        ExportRequest(since="yesterday").check()


# -- polling ----------------------------------------------------------------------------------------


def test_polling_honours_retry_after_and_shows_x_progress(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(Patient=ndjson(patients(3)))
    server.pending, server.retry_after = 2, "7"
    httpx_mock.add_callback(server, is_reusable=True)
    events = Recorder()
    with sync_client(sleeps) as client:
        result = BulkExport(client, tmp_path / "job", events=events, sleep=sleeps).run(
            ExportRequest()
        )
    assert sleeps.calls == [7.0, 7.0]
    assert events.progress == ["42% done", "42% done"]
    assert events.names == ["Patient.000.ndjson"]
    assert result.counts == {"Patient": 3}
    assert (tmp_path / "job" / "Patient.000.ndjson").read_bytes() == ndjson(patients(3))
    assert len(server.of("GET", "$export?")) == 1


def test_retry_after_is_capped_by_the_poll_interval_and_grows_without_it() -> None:
    clock = PollClock(max_wait=100, started=0, max_interval=5)
    assert clock.next_wait(120) == 5
    free = PollClock(max_wait=100, started=0)
    assert [free.next_wait(None) for _ in range(3)] == [1.0, 1.5, 2.25]


def test_polling_stops_at_max_wait_and_keeps_the_job(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(Patient=ndjson(patients(1)))
    server.pending, server.retry_after = 10_000, "30"
    httpx_mock.add_callback(server, is_reusable=True)
    now = [0.0]

    def sleep(seconds: float) -> None:
        sleeps(seconds)
        now[0] += seconds

    with sync_client(sleeps) as client:
        runner = BulkExport(
            client, tmp_path / "job", max_wait=100, sleep=sleep, clock=lambda: now[0]
        )
        with pytest.raises(ExportTimedOut, match="100 s"):
            runner.run(ExportRequest())
    assert sum(sleeps.calls) == 100  # the last pause cut to the time left
    assert 3 <= server.polls <= 6
    job = json.loads((tmp_path / "job" / "job.json").read_text())
    assert job["status_url"] == STATUS


def test_a_failed_job_raises_the_servers_outcome(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/$export?_outputFormat=application%2Ffhir%2Bndjson",
        status_code=202,
        headers={"Content-Location": STATUS},
    )
    httpx_mock.add_response(url=STATUS, status_code=500, json=outcome("the export broke"))
    with sync_client(sleeps) as client, pytest.raises(ServerError, match="the export broke"):
        BulkExport(client, tmp_path / "job", sleep=sleeps).run(ExportRequest())


def test_a_status_url_on_another_origin_is_refused(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    httpx_mock.add_response(
        status_code=202, headers={"Content-Location": "https://elsewhere.test/status/1"}
    )
    with (
        sync_client(sleeps, auth=BearerAuth("secret")) as client,
        pytest.raises(InvalidResponse, match=r"elsewhere\.test"),
    ):
        BulkExport(client, tmp_path / "job").run(ExportRequest())
    assert not (tmp_path / "job" / "job.json").exists()


# -- the manifest and its files -------------------------------------------------------------------


def test_the_manifests_error_files_are_read_as_operation_outcomes(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(Patient=ndjson(patients(2)))
    server.errors[f"{BASE}/files/errors.ndjson"] = ndjson(
        [outcome("Observation/o1 could not be read"), outcome("the export ran out of time")]
    )
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps) as client:
        result = BulkExport(client, tmp_path / "job").run(ExportRequest())
    assert [issue.text for issue in result.issues] == [
        "Observation/o1 could not be read",
        "the export ran out of time",
    ]
    assert (tmp_path / "job" / "error" / "OperationOutcome.000.ndjson").is_file()
    assert result.counts == {"Patient": 2}


def test_deleted_files_are_kept_apart_and_a_paged_manifest_is_refused(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    deletion = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "Patient/p9"}}],
    }
    server = BulkServer.with_types(Patient=ndjson(patients(1)))
    server.manifest_extra = {"deleted": [{"type": "Bundle", "url": f"{BASE}/files/gone"}]}
    server.files[f"{BASE}/files/gone"] = ("Bundle", ndjson([deletion]))
    server.manifest_extra["output"] = [{"type": "Patient", "url": f"{BASE}/files/Patient.ndjson"}]
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps) as client:
        result = BulkExport(client, tmp_path / "job").run(ExportRequest(since="2026-11-01"))
    assert result.counts == {"Patient": 1}
    assert (tmp_path / "job" / "deleted" / "Bundle.000.ndjson").read_bytes() == ndjson([deletion])
    paged = dict(server.manifest(), link=[{"relation": "next", "url": f"{BASE}/manifest/2"}])
    with pytest.raises(InvalidManifest, match="read alone"):
        parse_manifest(paged)


def test_an_invalid_manifest_lists_its_problems(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(Patient=ndjson(patients(1)))
    server.manifest_extra = {
        "requiresAccessToken": "yes",
        "output": [{"type": "Patient", "url": "ftp://x/y"}, {"type": "bad type", "url": BASE}],
    }
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps) as client, pytest.raises(InvalidManifest) as caught:
        BulkExport(client, tmp_path / "job").run(ExportRequest())
    assert len(caught.value.problems) == 3


def test_a_file_whose_lines_are_not_its_type_is_refused(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    bad = ndjson(patients(1)) + b'{"resourceType": "Observation"}\n{"cut off'
    server = BulkServer.with_types(Patient=bad)
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps) as client, pytest.raises(InvalidExportFile) as caught:
        BulkExport(client, tmp_path / "job").run(ExportRequest())
    assert caught.value.problems == [
        "line 2: a Observation in a file of Patient",
        "line 3: not JSON (cut off, or not NDJSON)",
    ]
    assert not (tmp_path / "job" / "Patient.000.ndjson").exists()


def test_files_of_one_type_are_numbered_and_gzip_is_decoded(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    first, second = ndjson(patients(2)), ndjson(patients(5)[2:])
    server = BulkServer(
        files={f"{BASE}/f/1": ("Patient", first), f"{BASE}/f/2": ("Patient", second)},
        gzipped={f"{BASE}/f/2"},
    )
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps) as client:
        result = BulkExport(client, tmp_path / "job").run(ExportRequest())
    assert (tmp_path / "job" / "Patient.000.ndjson").read_bytes() == first
    assert (tmp_path / "job" / "Patient.001.ndjson").read_bytes() == second
    assert result.counts == {"Patient": 5}


def test_the_disk_limit_stops_the_downloads(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(Patient=ndjson(patients(50)))
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps) as client, pytest.raises(ExportTooLarge):
        BulkExport(client, tmp_path / "job", max_bytes=1000).run(ExportRequest())


# -- the access token -------------------------------------------------------------------------------


def test_files_on_another_origin_needing_the_token_are_refused_unless_allowed(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(base="https://files.test/export", Patient=ndjson(patients(1)))
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps, auth=BearerAuth("secret")) as client:
        with pytest.raises(TokenHostRefused, match=r"https://files\.test:443"):
            BulkExport(client, tmp_path / "job").run(ExportRequest())
        assert not server.of("GET", "files.test")
        BulkExport(client, tmp_path / "job", allow_token_hosts=("https://files.test",)).run(
            ExportRequest()
        )
    (download,) = server.of("GET", "files.test")
    assert download.headers["Authorization"] == "Bearer secret"


def test_files_on_another_origin_go_without_any_token(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(base="https://files.test/export", Patient=ndjson(patients(1)))
    server.requires_token = False
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps, auth=BearerAuth("secret")) as client:
        result = BulkExport(client, tmp_path / "job").run(ExportRequest())
    assert result.counts == {"Patient": 1}
    (download,) = server.of("GET", "files.test")
    assert "Authorization" not in download.headers
    assert server.of("GET", "$export")[0].headers["Authorization"] == "Bearer secret"


def test_requires_access_token_false_sends_no_token_even_to_the_server(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(Patient=ndjson(patients(1)))
    server.requires_token = False
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps, auth=BearerAuth("secret")) as client:
        BulkExport(client, tmp_path / "job").run(ExportRequest())
    (download,) = server.of("GET", "/files/")
    assert "Authorization" not in download.headers
    assert server.of("GET", "$export-poll-status")[0].headers["Authorization"] == "Bearer secret"


def test_a_token_given_as_an_extra_header_is_not_sent_with_the_files_either(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(base="https://files.test/export", Patient=ndjson(patients(1)))
    server.requires_token = False
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps, headers={"Authorization": "Bearer in-a-header"}) as client:
        BulkExport(client, tmp_path / "job").run(ExportRequest())
    (download,) = server.of("GET", "files.test")
    assert "Authorization" not in download.headers


def test_requires_access_token_true_sends_it_to_the_server(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(Patient=ndjson(patients(1)))
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps, auth=BearerAuth("secret")) as client:
        BulkExport(client, tmp_path / "job").run(ExportRequest())
    (download,) = server.of("GET", "/files/")
    assert download.headers["Authorization"] == "Bearer secret"


# -- cut off, resumed, cancelled --------------------------------------------------------------------


def test_a_download_cut_off_mid_file_is_resumed_with_a_range_request(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    data = ndjson(patients(40))
    server = BulkServer.with_types(Patient=data)
    url = next(iter(server.files))
    server.cut[url] = 1000  # mid-line
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps, retry=FAST) as client:
        result = BulkExport(client, tmp_path / "job", sleep=sleeps).run(ExportRequest())
    first, again = server.of("GET", "/files/")
    assert "Range" not in first.headers
    assert again.headers["Range"] == "bytes=1000-"
    assert again.headers["If-Range"] == '"v1"'
    assert again.headers["Accept-Encoding"] == "identity"
    assert (tmp_path / "job" / "Patient.000.ndjson").read_bytes() == data
    assert result.counts == {"Patient": 40}


def test_a_server_ignoring_range_gets_the_file_again_from_the_start(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    data = ndjson(patients(40))
    server = BulkServer.with_types(Patient=data)
    server.ranges = False
    server.cut[next(iter(server.files))] = 1000
    httpx_mock.add_callback(server, is_reusable=True)
    with sync_client(sleeps, retry=FAST) as client:
        BulkExport(client, tmp_path / "job", sleep=sleeps).run(ExportRequest())
    assert (tmp_path / "job" / "Patient.000.ndjson").read_bytes() == data


def test_a_rerun_resumes_the_kept_job_and_the_cut_off_file(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    data = ndjson(patients(40))
    server = BulkServer.with_types(Patient=data, Observation=b"")
    server.cut[f"{BASE}/files/Patient.ndjson"] = 700
    httpx_mock.add_callback(server, is_reusable=True)
    folder = tmp_path / "job"
    with sync_client(sleeps) as client:
        with pytest.raises(FhirTransportError, match="RemoteProtocolError"):
            BulkExport(client, folder, concurrency=1).run(ExportRequest())
        assert (folder / "Patient.000.ndjson.part").stat().st_size == 700
        assert folder.stat().st_mode & 0o077 == 0  # the job folder is this user's only
        result = BulkExport(client, folder).run(ExportRequest())
    assert result.resumed
    assert len(server.of("GET", "$export?")) == 1  # one job, never a second kick-off
    assert server.of("GET", "/files/Patient")[-1].headers["Range"] == "bytes=700-"
    assert (folder / "Patient.000.ndjson").read_bytes() == data
    assert not list(folder.glob("*.part*"))


def test_a_folder_holding_another_job_is_refused(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(Patient=ndjson(patients(1)))
    server.pending = 1000
    server.retry_after = "1"
    httpx_mock.add_callback(server, is_reusable=True)
    folder = tmp_path / "job"
    with sync_client(sleeps) as client:
        with pytest.raises(ExportTimedOut):
            BulkExport(client, folder, max_wait=0.001, sleep=sleeps).run(ExportRequest())
        with pytest.raises(ExportFolderInUse, match="another export"):
            BulkExport(client, folder).run(ExportRequest(types=("Observation",)))
    (folder / "stray.txt").unlink(missing_ok=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with sync_client(sleeps) as client, pytest.raises(ExportFolderInUse, match="no export job"):
        BulkExport(client, other).run(ExportRequest())
    assert (other / "notes.txt").read_text() == "mine"


def test_a_changed_manifest_clears_the_files_of_the_old_one(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(Patient=ndjson(patients(2)))
    httpx_mock.add_callback(server, is_reusable=True)
    folder = tmp_path / "job"
    with sync_client(sleeps) as client:
        BulkExport(client, folder).run(ExportRequest())
        server.files = {f"{BASE}/files/Observation.ndjson": ("Observation", b"")}
        server.manifest_extra = {"transactionTime": "2026-12-01T00:00:00Z"}
        result = BulkExport(client, folder).run(ExportRequest())
    assert not (folder / "Patient.000.ndjson").exists()
    assert (folder / "Observation.000.ndjson").exists()
    assert result.counts == {"Observation": 0}


def test_cancel_deletes_the_status_url_and_the_job_folder(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = BulkServer.with_types(Patient=ndjson(patients(1)))
    server.pending = 1000
    httpx_mock.add_callback(server, is_reusable=True)
    folder = tmp_path / "job"
    with sync_client(sleeps) as client:
        runner = BulkExport(client, folder, max_wait=0.001, sleep=sleeps)
        with pytest.raises(ExportTimedOut):
            runner.run(ExportRequest())
        job = runner.cancel()
        assert job is not None and job.status_url == STATUS
        assert runner.cancel() is None
    (delete,) = server.of("DELETE", "$export-poll-status")
    assert str(delete.url) == STATUS
    assert not folder.exists()


# -- async ------------------------------------------------------------------------------------------


def test_the_async_runner_polls_downloads_and_resumes_the_same_way(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    data = ndjson(patients(30))
    server = BulkServer.with_types(Patient=data)
    server.pending, server.retry_after = 1, "4"
    server.errors[f"{BASE}/files/errors.ndjson"] = ndjson([outcome("one type failed")])
    server.cut[f"{BASE}/files/Patient.ndjson"] = 500
    httpx_mock.add_callback(server, is_reusable=True)

    async def main() -> Any:
        async with AsyncFhirClient(BASE, retry=FAST, sleep=sleeps.asleep) as client:
            return await AsyncBulkExport(client, tmp_path / "job", sleep=sleeps.asleep).run(
                ExportRequest()
            )

    result = asyncio.run(main())
    assert 4.0 in sleeps.calls
    assert result.counts == {"Patient": 30}
    assert [i.text for i in result.issues] == ["one type failed"]
    assert (tmp_path / "job" / "Patient.000.ndjson").read_bytes() == data
    assert server.of("GET", "/files/Patient")[-1].headers["Range"] == "bytes=500-"


# -- a real socket that hangs up mid-file -----------------------------------------------------------


def test_a_connection_closed_mid_file_is_resumed_over_a_real_socket(tmp_path: Path) -> None:
    data = ndjson(patients(200))
    seen: list[str | None] = []
    lock = threading.Lock()

    def file(handler: FaultHandler) -> None:
        wanted = handler.headers.get("Range")
        with lock:
            seen.append(wanted)
        if wanted is None:  # announce it all, send a third, hang up
            handler.send_response(200)
            handler.send_header("Content-Type", "application/fhir+ndjson")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("ETag", '"f1"')
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 3])
            handler.wfile.flush()
            handler.close_connection = True
            return
        start = int(wanted.removeprefix("bytes=").rstrip("-"))
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.send_header("Content-Length", str(len(data) - start))
        handler.end_headers()
        handler.wfile.write(data[start:])

    with FaultServer(lifetime=20) as server:
        status = f"{server.base}/status/1"

        def kickoff(handler: FaultHandler) -> None:
            handler.send_response(202)
            handler.send_header("Content-Location", status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        manifest = {
            "transactionTime": "2026-11-30T08:00:00Z",
            "request": f"{server.base}/$export",
            "requiresAccessToken": False,
            "output": [{"type": "Patient", "url": f"{server.base}/files/p"}],
            "error": [],
        }
        server.route("GET", "/fhir/$export", kickoff)
        server.route("GET", "/fhir/status/1", json_body(manifest))
        server.route("GET", "/fhir/files/p", file)
        with FhirClient(server.base, retry=FAST, sleep=lambda s: None) as client:
            result = BulkExport(client, tmp_path / "job", idle_timeout=5).run(ExportRequest())
    assert seen == [None, f"bytes={len(data) // 3}-"]
    assert (tmp_path / "job" / "Patient.000.ndjson").read_bytes() == data
    assert result.counts == {"Patient": 200}
