"""``AsyncFhirClient``: the asyncio FHIR R4 REST client (one long-lived httpx.AsyncClient; the core decides).

    async with AsyncFhirClient("https://hapi.example.org/fhir") as client:
        await client.capabilities()
        async for subject in client.search("ResearchSubject").where(study="ResearchStudy/s1"):
            ...

Same API as ``FhirClient`` with ``await``; searches are ``AsyncSearch`` (``async for``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal

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
    deadline_timeout,
)
from ._search import AsyncSearch

__all__ = ["AsyncFhirClient"]


class AsyncFhirClient:
    """An asyncio FHIR R4 client over one long-lived ``httpx.AsyncClient``.

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
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        self._http = httpx.AsyncClient(
            auth=auth,
            timeout=timeout,
            verify=ssl_context(verify),
            headers=dict(headers or {}),
            transport=transport,
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

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFhirClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncFhirClient({self._core.base_url.host!r})"

    # -- sending (the one place httpx exceptions are translated) ---------------------------------

    async def _send(self, spec: RequestSpec) -> httpx.Response:
        state = RetryState(self._core.retry, spec, time.monotonic())
        while True:
            state.attempt += 1
            request = self._http.build_request(
                spec.method, spec.url, headers=list(spec.headers), content=spec.content
            )
            started = time.perf_counter()
            body = self._core.body_buffer(spec, time.monotonic())
            try:
                async with asyncio.timeout(self._core.deadline):
                    response = await self._read(request, body)
            except httpx.RequestError as exc:
                passed = time.monotonic() >= body.deadline
                failure: FhirError = self._core.transport_error(exc, spec, deadline_passed=passed)
                failure.__cause__ = exc
                decision = state.decide(failure, None, time.monotonic())
                if isinstance(decision, FhirError):
                    raise decision from (exc if decision is failure else failure)
            except (FhirTimeout, TimeoutError) as exc:  # the attempt's deadline passed
                failure = (
                    exc
                    if isinstance(exc, FhirTimeout)
                    else deadline_timeout(spec.method, spec.resource_type, self._core.deadline)
                )
                decision = state.decide(failure, None, time.monotonic())
                if isinstance(decision, FhirError):
                    raise decision from (None if decision is failure else failure)
            else:
                elapsed_ms = (time.perf_counter() - started) * 1000
                self._core.log_response(spec, response.status_code, elapsed_ms, state.attempt)
                if self._core.is_success(response, spec):
                    return response
                failure = self._core.http_error(response, spec)
                decision = state.decide(failure, retry_after_of(response), time.monotonic())
                if isinstance(decision, FhirError):
                    raise decision from (None if decision is failure else failure)
            await self._sleep(decision)

    async def _read(self, request: httpx.Request, body: BodyBuffer) -> httpx.Response:
        """Send one request and read its whole answer under the body-size cap (the caller bounds
        the time)."""
        streamed = await self._http.send(request, stream=True)
        try:
            body.expect(streamed)
            async for chunk in streamed.aiter_bytes():
                body.add(chunk)
        finally:
            await streamed.aclose()
        return body.response(streamed)

    async def _request_json(self, spec: RequestSpec) -> Any:
        return loads_json(await self._send(spec), spec)

    # -- reading ---------------------------------------------------------------------------------

    async def capabilities(self, *, refresh: bool = False) -> dict[str, Any]:
        """The server's CapabilityStatement (``GET metadata``), cached.

        Raises:
            FhirVersionMismatch: the server announces a fhirVersion other than 4.0.x.
        """
        if self._capabilities is None or refresh:
            spec = self._core.capabilities()
            statement = expect_resource(await self._request_json(spec), "CapabilityStatement", spec)
            self._core.check_fhir_version(statement)
            self._capabilities = statement
        return self._capabilities

    metadata = capabilities

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """``GET Type/id``.

        Raises:
            ResourceNotFound: no such resource (404); Gone: it was deleted (410).
        """
        spec = self._core.read(resource_type, resource_id)
        return expect_resource(await self._request_json(spec), resource_type, spec)

    async def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        """``GET Type/id/_history/vid``."""
        spec = self._core.vread(resource_type, resource_id, version_id)
        return expect_resource(await self._request_json(spec), resource_type, spec)

    def search(
        self,
        resource_type: str | None = None,
        params: SearchParams | None = None,
        /,
        **kwargs: SearchValue | list[SearchValue],
    ) -> AsyncSearch:
        """A lazy search; nothing is sent until it is iterated with ``async for`` (see ``AsyncSearch``)."""
        if resource_type is not None:
            self._core.check_type(resource_type)
        return AsyncSearch(self, resource_type).where(params, **kwargs)

    # -- writing ---------------------------------------------------------------------------------

    async def create(
        self, resource: Mapping[str, Any], *, if_none_exist: SearchParams | None = None
    ) -> WriteResult:
        """``POST Type`` (with ``If-None-Exist`` when given: a conditional create).

        A plain create is never retried (it is not idempotent); a conditional one is.
        """
        spec = self._core.create(resource, if_none_exist=if_none_exist)
        return write_result(await self._send(spec), spec)

    async def update(
        self,
        resource: Mapping[str, Any],
        *,
        condition: SearchParams | None = None,
        if_match: str | None = None,
    ) -> WriteResult:
        """``PUT Type/id``, or the conditional ``PUT Type?condition`` (e.g. ``{"identifier": "sys|val"}``)."""
        spec = self._core.update(resource, condition=condition, if_match=if_match)
        return write_result(await self._send(spec), spec)

    async def delete(self, resource_type: str, resource_id: str) -> None:
        """``DELETE Type/id`` (deleting what is already gone is not an error)."""
        await self._send(self._core.delete(resource_type, resource_id))

    async def transaction(self, bundle: Mapping[str, Any]) -> BundleResult:
        """POST a transaction Bundle; per-entry outcomes come back typed.

        Retried only when every entry is conditional or idempotent.

        Raises:
            TransactionFailed: the server rejected it (with its OperationOutcome) or an entry failed.
        """
        spec = self._core.bundle(bundle)
        try:
            body = await self._request_json(spec)
        except FhirHttpError as exc:
            rejected = transaction_error(exc)
            if rejected is None:
                raise
            raise rejected from exc
        return self._core.bundle_result(body, bundle, spec, atomic=True)

    async def batch(self, bundle: Mapping[str, Any]) -> BundleResult:
        """POST a batch Bundle; entries succeed or fail one by one (see ``BundleResult.failed``)."""
        spec = self._core.bundle(bundle)
        return self._core.bundle_result(await self._request_json(spec), bundle, spec, atomic=False)

    async def upload(
        self,
        resources: Iterable[Mapping[str, Any]],
        *,
        chunk_size: int = 200,
        mode: TransactionMode = "conditional-update",
        identifier_system: str | None = None,
        bundle_type: Literal["transaction", "batch"] = "transaction",
        progress: Callable[[int], None] | None = None,
        concurrency: int = 1,
        plan: UploadPlan | None = None,
    ) -> UploadSummary:
        """Write resources in transaction bundles of ``chunk_size``, in order; count what happened.

        Order matters: put referenced resources (ResearchStudy, Patient) before those that refer to
        them, or in the same chunk. ``progress`` is called with the number of resources sent so far.

        ``concurrency`` above 1: up to that many bundles in flight, in dependency waves
        (``dependency_waves``: a chunk waits for every earlier chunk holding what it refers to, or
        writing the same resource, to commit; a wave starts when the one before it has committed
        whole). When a chunk fails, the chunks in flight are let finish, no other is started, and
        the error says which chunks were committed and which were not. The input is held in memory.

        The whole input is read and checked before the first request (a one-shot iterator is read
        into a list; a list, or an iterable that starts again, is read twice instead).
        ``plan``: an ``UploadPlan`` made by the caller (then ``resources`` and the other options are
        the plan's), to read what was committed after a cancellation (``plan.interruption``).

        Raises:
            UnwritableResources: resources that cannot be written in ``mode``, all listed; nothing sent.
            TransactionFailed: with ``chunk`` (its index) and ``completed`` (chunks committed before).
            TransactionResponseMismatch: the server's answer to a chunk does not match it (same fields).
            FhirError: any other failure, with a note (``__notes__``) saying what was committed.
        """
        if plan is None:
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
        if plan.total is None:
            plan.check()
        if plan.concurrency > 1:
            for wave in plan.waves:
                await self._send_wave(plan, wave)
            return plan.summary
        for bundle in plan.bundles():
            try:
                if plan.bundle_type == "transaction":
                    result = await self.transaction(bundle)
                else:
                    result = await self.batch(bundle)
            except FhirError as exc:
                failure = plan.interrupted(exc)
                if failure is exc:
                    raise
                raise failure from exc
            plan.done(result)
        return plan.summary

    async def _send_wave(self, plan: UploadPlan, wave: list[int]) -> None:
        """Send the chunks of one wave, at most ``plan.concurrency`` at a time; on a failure, let
        those in flight finish, start no other, and raise the error saying what became of each.
        Cancelled (Ctrl-C): ``plan.interruption`` says what was committed, what was in flight."""
        pending = iter(wave)
        failures: dict[int, BaseException] = {}
        in_flight: set[int] = set()

        halted: list[bool] = []

        async def sender() -> None:
            for chunk in pending:
                if failures or halted:
                    return
                in_flight.add(chunk)
                try:
                    bundle = plan.chunk_bundle(chunk)
                    if plan.bundle_type == "transaction":
                        result = await self.transaction(bundle)
                    else:
                        result = await self.batch(bundle)
                except Exception as exc:  # raised again below, with what became of every chunk
                    in_flight.discard(chunk)
                    failures[chunk] = exc
                    return
                in_flight.discard(chunk)
                try:
                    plan.done(result, chunk=chunk)
                except BaseException:
                    halted.append(True)  # the others start nothing more
                    raise

        senders = (sender() for _ in range(min(plan.concurrency, len(wave))))
        try:
            # every sender runs to its end: an error of one (a progress callback's) stops none in flight
            ended = await asyncio.gather(*senders, return_exceptions=True)
        except (asyncio.CancelledError, KeyboardInterrupt):  # Ctrl-C: said, and raised again
            unknown = "may or may not have been committed (interrupted while in flight)"
            plan.interruption = plan.report(
                {
                    **{c: plan.became(c, e) for c, e in failures.items()},
                    **{c: f"chunk {c + 1} {unknown}" for c in in_flight},
                },
                after_failure=False,
            )
            raise
        raised = [e for e in ended if isinstance(e, BaseException)]
        if raised:  # not a chunk's failure: raised as it is, with what became of the chunks
            raised[0].add_note(plan.report({c: plan.became(c, e) for c, e in failures.items()}))
            raise raised[0]
        if failures:
            failure = plan.stopped(failures)
            cause = failures[min(failures)]
            if failure is cause:
                raise failure
            raise failure from cause

    async def validate(self, resource: Mapping[str, Any]) -> list[Issue]:
        """``POST Type/$validate``: the OperationOutcome's issues (empty or informational when valid)."""
        spec = self._core.validate(resource)
        body = await self._request_json(spec)
        return parse_issues(expect_resource(body, "OperationOutcome", spec))
