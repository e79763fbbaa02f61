"""``FhirClient``: the synchronous FHIR R4 REST client (one long-lived httpx.Client; the core decides).

with FhirClient("https://hapi.example.org/fhir", auth=BearerAuth(token)) as client:
    client.capabilities()                       # refuses anything but FHIR 4.0.x
    patient = client.read("Patient", "dm-001")
    for subject in client.search("ResearchSubject").where(study="ResearchStudy/s1"):
        ...
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import httpx

from adapter.bundles import (
    BundleResult,
    Issue,
    TransactionMode,
    UploadSummary,
    parse_issues,
)
from adapter.fhir_query import SearchParams, SearchValue

from ._auth import _OriginBoundAuth
from ._bundle import UploadPlan
from ._core import (
    DEFAULT_TIMEOUT,
    ClientCore,
    RequestSpec,
    RetryPolicy,
    RetryState,
    WriteResult,
    expect_resource,
    loads_json,
    retry_after_of,
    ssl_context,
    transaction_error,
    write_result,
)
from ._errors import FhirError, FhirHttpError, FhirTimeout
from ._limits import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_PAGES,
    BodyBuffer,
    attempt_deadline,
    default_transport,
)
from ._search import Search

if TYPE_CHECKING:
    from ._async import AsyncFhirClient

__all__ = ["FhirClient"]


def _loop_running() -> bool:
    """Whether an asyncio event loop runs in this thread (then ``asyncio.run`` cannot)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class FhirClient:
    """A synchronous FHIR R4 client over one long-lived ``httpx.Client``.

    Args:
        base_url: the FHIR base, e.g. ``http://localhost:8080/fhir`` (trailing slash optional).
        auth: ``BearerAuth``, ``BasicAuth``, ``SmartBackendAuth`` or any ``httpx.Auth``.
        timeout: seconds or an ``httpx.Timeout``.
        verify: True (system CAs), False, a path to a CA bundle, or an ``ssl.SSLContext``.
        headers: extra headers for every request.
        retry: the ``RetryPolicy`` (``RetryPolicy.none()`` disables retries).
        transport: an httpx transport (``httpx.MockTransport`` in tests, a proxy, ...).
        sleep: how to wait between retries (injectable so tests do not wait).
        max_pages: the page cap of every search (``PageLimitReached`` beyond it; default 10 000).
        max_body_bytes: the size cap of a response body (``ResponseTooLarge``; default 64 MiB).
        deadline: seconds one attempt may take, whole answer included (``FhirTimeout``; default
            300); ``timeout`` bounds each read, connect and write within it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        verify: bool | str | ssl.SSLContext = True,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self._core = ClientCore(
            base_url,
            retry=retry,
            max_pages=max_pages,
            max_body_bytes=max_body_bytes,
            deadline=deadline,
        )
        if isinstance(auth, _OriginBoundAuth):
            auth.bind(self._core.base_url)
        self._sleep = sleep
        self._capabilities: dict[str, Any] | None = None
        self._settings: dict[str, Any] = {
            "auth": auth,
            "timeout": timeout,
            "verify": verify,
            "headers": headers,
            "retry": self._core.retry,
            "max_pages": max_pages,
            "max_body_bytes": max_body_bytes,
            "deadline": deadline,
        }
        self._transport = transport
        tls = ssl_context(verify)
        self._http = httpx.Client(
            auth=auth,
            timeout=timeout,
            verify=tls,
            headers=dict(headers or {}),
            transport=transport if transport is not None else default_transport(tls),
            follow_redirects=False,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The normalised FHIR base (ending in ``/``)."""
        return str(self._core.base_url)

    @property
    def retry(self) -> RetryPolicy:
        return self._core.retry

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FhirClient({self._core.base_url.host!r})"

    # -- sending (the one place httpx exceptions are translated) ---------------------------------

    def _send(self, spec: RequestSpec) -> httpx.Response:
        state = RetryState(self._core.retry, spec, time.monotonic())
        while True:
            state.attempt += 1
            request = self._http.build_request(
                spec.method, spec.url, headers=list(spec.headers), content=spec.content
            )
            started = time.perf_counter()
            body = self._core.body_buffer(spec, time.monotonic())
            try:
                with attempt_deadline(body.deadline):
                    response = self._read(request, body)
            except httpx.RequestError as exc:
                passed = time.monotonic() >= body.deadline
                failure: FhirError = self._core.transport_error(exc, spec, deadline_passed=passed)
                failure.__cause__ = exc
                decision = state.decide(failure, None, time.monotonic())
                if isinstance(decision, FhirError):
                    raise decision from (exc if decision is failure else failure)
            except FhirTimeout as exc:  # the deadline, seen between two body chunks
                decision = state.decide(exc, None, time.monotonic())
                if isinstance(decision, FhirError):
                    if decision is exc:
                        raise
                    raise decision from exc
            else:
                elapsed_ms = (time.perf_counter() - started) * 1000
                self._core.log_response(spec, response.status_code, elapsed_ms, state.attempt)
                if self._core.is_success(response, spec):
                    return response
                failure = self._core.http_error(response, spec)
                decision = state.decide(failure, retry_after_of(response), time.monotonic())
                if isinstance(decision, FhirError):
                    raise decision from (None if decision is failure else failure)
            self._sleep(decision)

    def _read(self, request: httpx.Request, body: BodyBuffer) -> httpx.Response:
        """Send one request and read its whole answer under the body-size cap and the deadline."""
        streamed = self._http.send(request, stream=True)
        try:
            body.expect(streamed)
            for chunk in streamed.iter_bytes():
                body.add(chunk)
        finally:
            streamed.close()
        return body.response(streamed)

    def _request_json(self, spec: RequestSpec) -> Any:
        return loads_json(self._send(spec), spec)

    # -- reading ---------------------------------------------------------------------------------

    def capabilities(self, *, refresh: bool = False) -> dict[str, Any]:
        """The server's CapabilityStatement (``GET metadata``), cached.

        Raises:
            FhirVersionMismatch: the server announces a fhirVersion other than 4.0.x.
        """
        if self._capabilities is None or refresh:
            spec = self._core.capabilities()
            statement = expect_resource(self._request_json(spec), "CapabilityStatement", spec)
            self._core.check_fhir_version(statement)
            self._capabilities = statement
        return self._capabilities

    metadata = capabilities

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """``GET Type/id``.

        Raises:
            ResourceNotFound: no such resource (404); Gone: it was deleted (410).
        """
        spec = self._core.read(resource_type, resource_id)
        return expect_resource(self._request_json(spec), resource_type, spec)

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        """``GET Type/id/_history/vid``."""
        spec = self._core.vread(resource_type, resource_id, version_id)
        return expect_resource(self._request_json(spec), resource_type, spec)

    def search(
        self,
        resource_type: str | None = None,
        params: SearchParams | None = None,
        /,
        **kwargs: SearchValue | list[SearchValue],
    ) -> Search:
        """A lazy search; nothing is sent until it is iterated (see ``Search``)."""
        if resource_type is not None:
            self._core.check_type(resource_type)
        return Search(self, resource_type).where(params, **kwargs)

    # -- writing ---------------------------------------------------------------------------------

    def create(
        self, resource: Mapping[str, Any], *, if_none_exist: SearchParams | None = None
    ) -> WriteResult:
        """``POST Type`` (with ``If-None-Exist`` when given: a conditional create).

        A plain create is never retried (it is not idempotent); a conditional one is.
        """
        spec = self._core.create(resource, if_none_exist=if_none_exist)
        return write_result(self._send(spec), spec)

    def update(
        self,
        resource: Mapping[str, Any],
        *,
        condition: SearchParams | None = None,
        if_match: str | None = None,
    ) -> WriteResult:
        """``PUT Type/id``, or the conditional ``PUT Type?condition`` (e.g. ``{"identifier": "sys|val"}``)."""
        spec = self._core.update(resource, condition=condition, if_match=if_match)
        return write_result(self._send(spec), spec)

    def delete(self, resource_type: str, resource_id: str) -> None:
        """``DELETE Type/id`` (deleting what is already gone is not an error)."""
        self._send(self._core.delete(resource_type, resource_id))

    def transaction(self, bundle: Mapping[str, Any]) -> BundleResult:
        """POST a transaction Bundle; per-entry outcomes come back typed.

        Retried only when every entry is conditional or idempotent.

        Raises:
            TransactionFailed: the server rejected it (with its OperationOutcome) or an entry failed.
        """
        spec = self._core.bundle(bundle)
        try:
            body = self._request_json(spec)
        except FhirHttpError as exc:
            rejected = transaction_error(exc)
            if rejected is None:
                raise
            raise rejected from exc
        return self._core.bundle_result(body, bundle, spec, atomic=True)

    def batch(self, bundle: Mapping[str, Any]) -> BundleResult:
        """POST a batch Bundle; entries succeed or fail one by one (see ``BundleResult.failed``)."""
        spec = self._core.bundle(bundle)
        return self._core.bundle_result(self._request_json(spec), bundle, spec, atomic=False)

    def upload(
        self,
        resources: Iterable[Mapping[str, Any]],
        *,
        chunk_size: int = 200,
        mode: TransactionMode = "conditional-update",
        identifier_system: str | None = None,
        bundle_type: Literal["transaction", "batch"] = "transaction",
        progress: Callable[[int], None] | None = None,
        concurrency: int = 1,
    ) -> UploadSummary:
        """Write resources in transaction bundles of ``chunk_size``, in order; count what happened.

        Order matters: put referenced resources (ResearchStudy, Patient) before those that refer to
        them, or in the same chunk. ``progress`` is called with the number of resources sent so far.

        ``concurrency`` above 1: up to that many bundles in flight, in dependency waves, through an
        ``AsyncFhirClient`` with this client's settings (``AsyncFhirClient.upload`` says how; a
        ``transport`` other than ``httpx.MockTransport`` cannot be shared: ValueError). Ctrl-C
        (KeyboardInterrupt) gets a note saying which chunks were committed.

        The whole input is read and checked before the first request (a one-shot iterator is read
        into a list; a list, or an iterable that starts again, is read twice instead).

        Raises:
            UnwritableResources: resources that cannot be written in ``mode``, all listed; nothing sent.
            TransactionFailed: with ``chunk`` (its index) and ``completed`` (chunks committed before).
            TransactionResponseMismatch: the server's answer to a chunk does not match it (same fields).
            FhirError: any other failure, with a note (``__notes__``) saying what was committed.
        """
        if concurrency > 1 and _loop_running():
            logging.getLogger("trialfhir.client").warning(
                "upload: an event loop is running in this thread (a notebook?): the chunks go one "
                "at a time; AsyncFhirClient.upload(concurrency=%d) sends them concurrently",
                concurrency,
            )
            concurrency = 1
        plan = UploadPlan(
            resources,
            chunk_size=chunk_size,
            mode=mode,
            bundle_type=bundle_type,
            identifier_system=identifier_system,
            base_url=self.base_url,
            progress=progress,
            concurrency=concurrency,
        )
        if concurrency > 1:
            return self._upload_concurrently(plan)
        plan.check()
        try:
            for bundle in plan.bundles():
                try:
                    if bundle_type == "transaction":
                        result = self.transaction(bundle)
                    else:
                        result = self.batch(bundle)
                except FhirError as exc:
                    failure = plan.interrupted(exc)
                    if failure is exc:
                        raise
                    raise failure from exc
                plan.done(result)
        except KeyboardInterrupt as exc:  # Ctrl-C: said, and raised again
            current = plan.chunk
            unsettled = (
                {current: f"chunk {current + 1} may or may not have been committed (interrupted)"}
                if current >= 0 and current not in plan.committed_chunks
                else {}
            )
            exc.add_note(plan.report(unsettled, after_failure=False))
            raise
        return plan.summary

    def _async_twin(self) -> AsyncFhirClient:
        """An ``AsyncFhirClient`` with this client's settings (base, auth, TLS, timeouts, retry,
        limits), for concurrent sending."""
        from ._async import AsyncFhirClient

        transport = self._transport
        if transport is not None and not isinstance(transport, httpx.MockTransport):
            raise ValueError(
                "concurrency above 1 sends through an AsyncFhirClient, which cannot use this "
                f"client's transport ({type(transport).__name__}): use concurrency=1"
            )
        sleep = self._sleep

        async def wait(seconds: float) -> None:
            if sleep is time.sleep:
                await asyncio.sleep(seconds)
            else:
                sleep(seconds)  # an injected sleep (tests): called as given

        return AsyncFhirClient(self.base_url, transport=transport, sleep=wait, **self._settings)

    def _upload_concurrently(self, plan: UploadPlan) -> UploadSummary:
        """``upload`` with ``plan.concurrency`` > 1: the input checked first, then the waves sent
        by an ``AsyncFhirClient`` with this client's settings."""
        plan.check()
        twin = self._async_twin()

        async def run() -> UploadSummary:
            async with twin as client:
                return await client.upload((), plan=plan)

        try:
            return asyncio.run(run())
        except KeyboardInterrupt as exc:
            exc.add_note(plan.interruption or plan.report({}, after_failure=False))
            raise

    def validate(self, resource: Mapping[str, Any]) -> list[Issue]:
        """``POST Type/$validate``: the OperationOutcome's issues (empty or informational when valid)."""
        spec = self._core.validate(resource)
        body = self._request_json(spec)
        return parse_issues(expect_resource(body, "OperationOutcome", spec))
