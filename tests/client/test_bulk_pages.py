"""Bulk Data manifests given in pages (`link` with relation `next`): followed, polled like the status
URL when a page is not ready, put together into one manifest, bounded, never on another origin."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from bulkserver import BASE, BulkServer, ndjson, patients
from pytest_httpx import HTTPXMock

from adapter.client import (
    AsyncBulkExport,
    AsyncFhirClient,
    BulkExport,
    ExportRequest,
    FhirClient,
    InvalidManifest,
    InvalidResponse,
    RetryPolicy,
)
from adapter.client._bulk import ManifestPages, parse_manifest

from .conftest import SleepRecorder

PAGE2 = f"{BASE}/$export-manifest?_page=2"
OBSERVATIONS = ndjson(
    [{"resourceType": "Observation", "id": f"o{i}", "status": "final"} for i in range(3)]
)


class PagedServer(BulkServer):
    """A BulkServer whose manifest is two pages: the Patient file on the first, the Observation file
    on the second (which answers 202 `page2_pending` times first); `page2_link` is what page 2's next
    link says (None: the last page)."""

    page2_pending: int = 0
    page2_link: str | None = None
    page2_calls: int = 0

    def manifest(self) -> dict[str, Any]:
        document = super().manifest()
        document["output"] = [o for o in document["output"] if o["type"] == "Patient"]
        document["link"] = [{"relation": "next", "url": PAGE2}]
        return document

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) != PAGE2:
            return super().__call__(request)
        self.requests.append(request)
        self.page2_calls += 1
        if self.page2_calls <= self.page2_pending:
            return httpx.Response(202, headers={"Retry-After": "7"})
        page = {
            "transactionTime": "2026-11-30T08:00:00Z",
            "request": f"{BASE}/$export",
            "requiresAccessToken": self.requires_token,
            "output": [{"type": "Observation", "url": f"{BASE}/files/Observation.ndjson"}],
        }
        if self.page2_link is not None:
            page["link"] = [{"relation": "next", "url": self.page2_link}]
        return httpx.Response(200, json=page)


def paged_server() -> PagedServer:
    server = PagedServer.with_types(Patient=ndjson(patients(2)), Observation=OBSERVATIONS)
    assert isinstance(server, PagedServer)
    return server


def client(sleeps: SleepRecorder) -> FhirClient:
    return FhirClient(BASE, retry=RetryPolicy.none(), sleep=sleeps)


def test_a_paged_manifest_is_followed_and_its_files_put_together(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = paged_server()
    server.page2_pending = 1
    httpx_mock.add_callback(server, is_reusable=True)
    with client(sleeps) as fhir:
        result = BulkExport(fhir, tmp_path / "job", sleep=sleeps).run(ExportRequest())
    assert result.counts == {"Observation": 3, "Patient": 2}
    assert 7.0 in sleeps.calls  # page 2 was not ready: polled after its Retry-After
    assert (tmp_path / "job" / "Observation.000.ndjson").read_bytes() == OBSERVATIONS
    kept = json.loads((tmp_path / "job" / "manifest.json").read_text())
    assert "link" not in kept
    assert [o["type"] for o in kept["output"]] == ["Patient", "Observation"]


def test_the_async_runner_follows_the_pages_too(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    httpx_mock.add_callback(paged_server(), is_reusable=True)

    async def main() -> Any:
        async with AsyncFhirClient(BASE, retry=RetryPolicy.none(), sleep=sleeps.asleep) as fhir:
            return await AsyncBulkExport(fhir, tmp_path / "job", sleep=sleeps.asleep).run(
                ExportRequest()
            )

    assert asyncio.run(main()).counts == {"Observation": 3, "Patient": 2}


def test_a_next_link_back_to_a_page_already_read_is_refused(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = paged_server()
    server.page2_link = PAGE2
    httpx_mock.add_callback(server, is_reusable=True)
    with client(sleeps) as fhir, pytest.raises(InvalidManifest, match="a page already read"):
        BulkExport(fhir, tmp_path / "job", sleep=sleeps).run(ExportRequest())
    assert server.page2_calls == 1
    assert not (tmp_path / "job" / "manifest.json").exists()


def test_a_next_link_to_another_origin_is_not_followed(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    server = paged_server()
    server.page2_link = "http://elsewhere.test/manifest/3"
    httpx_mock.add_callback(server, is_reusable=True)
    with client(sleeps) as fhir, pytest.raises(InvalidResponse, match="next link is on"):
        BulkExport(fhir, tmp_path / "job", sleep=sleeps).run(ExportRequest())
    assert not any("elsewhere" in str(r.url) for r in httpx_mock.get_requests())


def test_more_pages_than_the_bound_are_refused(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    httpx_mock.add_callback(paged_server(), is_reusable=True)
    with client(sleeps) as fhir:
        runner = BulkExport(fhir, tmp_path / "job", sleep=sleeps)
        runner.max_manifest_pages = 1
        with pytest.raises(InvalidManifest, match="more than 1 manifest pages"):
            runner.run(ExportRequest())


def test_pages_that_disagree_are_not_one_export() -> None:
    first = {
        "transactionTime": "t1",
        "request": "r",
        "requiresAccessToken": True,
        "output": [],
        "link": [{"relation": "next", "url": PAGE2}],
    }
    pages = ManifestPages("status")
    assert pages.add(first) == PAGE2
    assert pages.add({"transactionTime": "t2", "requiresAccessToken": False, "output": {}}) is None
    with pytest.raises(InvalidManifest) as refused:
        pages.merged()
    assert refused.value.problems == [
        "page 2: transactionTime differs from page 1's",
        "page 2: requiresAccessToken differs from page 1's",
        "page 2: output: not an array",
    ]
    with pytest.raises(InvalidManifest, match="read alone"):
        parse_manifest(first)  # a page on its own would lose the other pages' files
