"""HAPI's Bulk Data `$import` on the project's test server (issue 11, item 2): NDJSON files served over
HTTP are loaded by a batch2 job, with their ids; a second import of the same files writes no new
version. The files come from a throwaway HTTP server on 127.0.0.1 that lives for one test."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.hapi

FHIR_JSON = "application/fhir+json"
IMPORT_WAIT_SECONDS = 600.0
"""Upper bound on one import job (batch2 advances every 2 s on the test server)."""

PATIENTS: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": f"import-{n}",
        "identifier": [{"system": "urn:trialfhir:test-import", "value": f"P{n}"}],
        "gender": "female" if n % 2 else "male",
        "birthDate": f"19{50 + n}-0{1 + n % 9}-1{n % 10}",
    }
    for n in range(1, 8)
]
ORGANIZATIONS: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": f"import-org-{n}", "name": f"Site {n}"}
    for n in range(1, 4)
]


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[str]:
    """The NDJSON files, served at http://127.0.0.1:PORT/ while the test runs."""
    for name, resources in (("Patient", PATIENTS), ("Organization", ORGANIZATIONS)):
        text = "".join(json.dumps(resource) + "\n" for resource in resources)
        (tmp_path / f"{name}.ndjson").write_text(text, encoding="utf-8")

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {".ndjson": "application/fhir+ndjson"}  # noqa: RUF012

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def run_import(base_url: str, files: str) -> httpx.Response:
    """Kick off `$import` of Patient.ndjson and Organization.ndjson; poll until the job ends."""
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "inputFormat", "valueCode": "application/fhir+ndjson"},
            {"name": "inputSource", "valueUri": files},
            {"name": "storageDetail", "part": [{"name": "type", "valueCode": "https"}]},
            *(
                {
                    "name": "input",
                    "part": [
                        {"name": "type", "valueCode": name},
                        {"name": "url", "valueUri": f"{files}/{name}.ndjson"},
                    ],
                }
                for name in ("Organization", "Patient")
            ),
        ],
    }
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "Prefer": "respond-async"}
    with httpx.Client(timeout=120.0) as http_client:
        kick_off = http_client.post(f"{base_url}/$import", json=parameters, headers=headers)
        assert kick_off.status_code == 202, kick_off.text
        status_url = kick_off.headers["Content-Location"]
        assert "$import-poll-status" in status_url
        deadline = time.monotonic() + IMPORT_WAIT_SECONDS
        while time.monotonic() < deadline:
            status = http_client.get(status_url, headers={"Accept": FHIR_JSON})
            if status.status_code != 202:
                return status
            time.sleep(1.0)
    pytest.fail(f"$import did not finish within {IMPORT_WAIT_SECONDS:.0f} s")


def test_import_loads_ndjson_files_with_their_ids_and_twice_writes_no_new_version(
    hapi_clean_base_url: str, file_server: str
) -> None:
    first = run_import(hapi_clean_base_url, file_server)
    assert first.status_code == 200, first.text
    with httpx.Client(base_url=hapi_clean_base_url + "/", timeout=60.0) as http_client:
        for resource in [*PATIENTS, *ORGANIZATIONS]:
            read = http_client.get(f"{resource['resourceType']}/{resource['id']}")
            assert read.status_code == 200, resource["id"]
            stored = read.json()
            for key, value in resource.items():
                if key != "id":
                    assert stored[key] == value, (resource["id"], key)
            assert stored["meta"]["versionId"] == "1"
        second = run_import(hapi_clean_base_url, file_server)
        assert second.status_code == 200, second.text
        again = http_client.get(f"Patient/{PATIENTS[0]['id']}").json()
        assert again["meta"]["versionId"] == "1"
        total = http_client.get("Patient", params={"_summary": "count"}).json()["total"]
        assert total == len(PATIENTS)
