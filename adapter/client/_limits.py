"""The client's bounds on what a server can make it do: body size, time per attempt, JSON depth, pages.

A server that lies or breaks must never hold the client forever or fill its memory:

- ``max_body_bytes``: a response body is read as a stream and refused (``ResponseTooLarge``) once it
  passes the cap (a ``Content-Length`` over it is refused before reading); the cap counts decoded
  bytes, so a gzip bomb is stopped too.
- ``deadline``: one attempt (connect, send, headers and the whole body) must end within this many
  seconds, however slowly the server drips its bytes (``--timeout`` is per read). The sync client
  bounds every socket read by the time left (a wrapped httpcore network backend, reading the
  attempt's deadline from a context variable) and checks between body chunks; the async client runs
  the attempt under ``asyncio.timeout``. Passing it is a ``FhirTimeout`` (retried like any timeout,
  within the ``RetryPolicy``).
- JSON depth: bodies are parsed by ``adapter.fhir_json``, whose one depth guard refuses JSON nested
  deeper than ``fhir_json.MAX_DEPTH`` (254) levels (``InvalidResponse`` here).
- ``max_pages`` (in ``_search``): a search with more pages is an error, never a quiet stop.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from ._errors import FhirTimeout, ResponseTooLarge

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_PAGES",
    "BodyBuffer",
    "attempt_deadline",
    "deadline_timeout",
    "default_transport",
]

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""64 MiB: a searchset page of 500 large Observations is well under 5 MiB."""

DEFAULT_DEADLINE = 300.0
"""Seconds for one attempt, whole answer included (a 500-entry HAPI transaction takes under a minute)."""

DEFAULT_MAX_PAGES = 10_000
"""Pages per search: 5 million resources at ``_count=500``."""

_DEADLINE: ContextVar[float | None] = ContextVar("trialfhir_client_deadline", default=None)


@contextlib.contextmanager
def attempt_deadline(deadline: float) -> Iterator[None]:
    """Bound every socket operation of the sync client inside the block by ``deadline`` (monotonic)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None) -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise httpcore.ReadTimeout("the attempt's deadline has passed")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read and write waits at most until the attempt's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend with every stream bounded by the attempt's deadline."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _bounded(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._backend.connect_unix_socket(path, _bounded(timeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def default_transport(verify: bool | ssl.SSLContext) -> httpx.HTTPTransport:
    """httpx's own HTTP transport, its socket reads bounded by the attempt's deadline.

    httpx offers no public hook for the network backend, so it is swapped on the transport's pool;
    should a later httpx lay its pool out otherwise, the transport is used as is and the deadline is
    still checked between body chunks (a test drips headers to keep this honest)."""
    transport = httpx.HTTPTransport(verify=verify)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return transport


def deadline_timeout(method: str, resource_type: str | None, seconds: float) -> FhirTimeout:
    """The error for an attempt that did not end within its deadline."""
    return FhirTimeout(
        f"{method} {resource_type or 'server'}: no complete answer within the {seconds:g} s "
        "deadline of one attempt (the server is too slow or drips its answer)",
        method=method,
        resource_type=resource_type,
    )


class BodyBuffer:
    """The body of one response, read chunk by chunk under the size cap and the attempt's deadline."""

    def __init__(
        self, method: str, resource_type: str | None, limit: int, deadline: float, seconds: float
    ) -> None:
        self.method = method
        self.resource_type = resource_type
        self.limit = limit
        self.deadline = deadline
        self.seconds = seconds
        self.chunks: list[bytes] = []
        self.size = 0

    def expect(self, response: httpx.Response) -> None:
        """Refuse at once a body whose announced length is over the cap."""
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.limit:
            raise ResponseTooLarge(self.method, self.resource_type, self.limit)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise ResponseTooLarge(self.method, self.resource_type, self.limit)
        self.chunks.append(chunk)
        if time.monotonic() > self.deadline:
            raise deadline_timeout(self.method, self.resource_type, self.seconds)

    def response(self, streamed: httpx.Response) -> httpx.Response:
        """A complete response holding the (decoded) body read so far, for the rest of the client."""
        headers = [
            (name, value)
            for name, value in streamed.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            streamed.status_code,
            headers=headers,
            content=b"".join(self.chunks),
            request=streamed.request,
            extensions={"reason_phrase": streamed.reason_phrase.encode("ascii", "replace")},
        )
