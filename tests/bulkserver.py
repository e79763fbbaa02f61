"""A scripted Bulk Data server for tests: one pytest-httpx callback that answers the kick-off, the
status URL (202s with Retry-After and X-Progress, then the manifest) and the files (whole, cut off
mid-file, or the rest of one after a Range request), and records every request with its headers.

    server = BulkServer(files={"Patient": [patient("a")]}, pending=2)
    httpx_mock.add_callback(server, is_reusable=True)
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

BASE = "http://fhir.test/fhir"
STATUS = f"{BASE}/$export-poll-status?_jobId=job-1"


def ndjson(resources: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in resources)


def patients(n: int) -> list[dict[str, Any]]:
    return [{"resourceType": "Patient", "id": f"p{i}", "gender": "female"} for i in range(n)]


def outcome(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }


class CutStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that stops after ``at`` bytes as if the peer closed the connection."""

    def __init__(self, data: bytes, at: int) -> None:
        self.data = data
        self.at = at

    def __iter__(self) -> Iterator[bytes]:
        yield self.data[: self.at]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data[: self.at]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


@dataclass
class BulkServer:
    """The script. ``files``: url -> (type, bytes); ``errors``: url -> bytes of an error file;
    ``pending``: how many 202s before the manifest; ``cut``: url -> byte offset where the first
    answer for it stops; ``ranges``: answer Range requests with 206; ``gzipped``: urls sent with
    Content-Encoding gzip."""

    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    errors: dict[str, bytes] = field(default_factory=dict)
    pending: int = 0
    retry_after: str | None = "3"
    progress: str | None = "42% done"
    requires_token: bool = True
    cut: dict[str, int] = field(default_factory=dict)
    ranges: bool = True
    gzipped: set[str] = field(default_factory=set)
    etag: str = '"v1"'
    status_url: str = STATUS
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    polls: int = 0

    @classmethod
    def with_types(cls, base: str = BASE, **types: bytes) -> BulkServer:
        files = {f"{base}/files/{name}.ndjson": (name, data) for name, data in types.items()}
        return cls(files=files)

    def manifest(self) -> dict[str, Any]:
        document = {
            "transactionTime": "2026-11-30T08:00:00Z",
            "request": f"{BASE}/$export",
            "requiresAccessToken": self.requires_token,
            "output": [{"type": rtype, "url": url} for url, (rtype, _) in self.files.items()],
            "error": [{"type": "OperationOutcome", "url": url} for url in self.errors],
        }
        document.update(self.manifest_extra)
        return document

    def of(self, method: str, needle: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and needle in str(r.url)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        if url == f"{BASE}/metadata":
            return httpx.Response(
                200, json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
            )
        if "$export-poll-status" in url or url == self.status_url:
            if request.method == "DELETE":
                return httpx.Response(202)
            self.polls += 1
            if self.polls <= self.pending:
                headers = {}
                if self.retry_after is not None:
                    headers["Retry-After"] = self.retry_after
                if self.progress is not None:
                    headers["X-Progress"] = self.progress
                return httpx.Response(202, headers=headers)
            return httpx.Response(200, json=self.manifest())
        if url.split("?")[0].endswith("$export"):
            return httpx.Response(202, headers={"Content-Location": self.status_url})
        if url in self.files or url in self.errors:
            data = self.files[url][1] if url in self.files else self.errors[url]
            return self._file(request, url, data)
        return httpx.Response(404, json=outcome("not routed"))

    def _file(self, request: httpx.Request, url: str, data: bytes) -> httpx.Response:
        headers = {
            "Content-Type": "application/fhir+ndjson",
            "ETag": self.etag,
            "Content-Length": str(len(data)),
        }
        wanted = request.headers.get("Range", "")
        if wanted.startswith("bytes=") and self.ranges:
            start = int(wanted[6:].rstrip("-"))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            headers["Content-Length"] = str(len(data) - start)
            return httpx.Response(206, headers=headers, content=data[start:])
        if url in self.gzipped:
            packed = gzip.compress(data)
            headers.update({"Content-Encoding": "gzip", "Content-Length": str(len(packed))})
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(packed))
        if url in self.cut:
            at = self.cut.pop(url)
            return httpx.Response(200, headers=headers, stream=CutStream(data, at))
        return httpx.Response(200, headers=headers, content=data)
