"""The client's shared core: everything that is not I/O.

Builds requests (base-URL normalisation, percent-encoded FHIR query strings, headers), turns responses
into results or exceptions through the status table, checks paging links against the server's origin,
checks the CapabilityStatement's FHIR version, and decides retries (``RetryPolicy``, Retry-After,
exponential backoff with full jitter). ``FhirClient`` and ``AsyncFhirClient`` only send what this builds.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapter import fhir_json
from adapter.bundles import BundleResult, bundle_is_idempotent
from adapter.fhir_query import SearchParams, encode_query, search_pairs

from ._bundle import parse_bundle_response
from ._errors import (
    FhirError,
    FhirHttpError,
    FhirTimeout,
    FhirTransportError,
    FhirVersionMismatch,
    InvalidResponse,
    RetriesExhausted,
    TransactionFailed,
    UnsafeNextLink,
    error_class_for_status,
)
from ._limits import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_PAGES,
    BodyBuffer,
    deadline_timeout,
)

logger = logging.getLogger("trialfhir.client")

FHIR_JSON = "application/fhir+json"
RESOURCE_TYPE_RE = re.compile(r"[A-Z][A-Za-z]{1,63}")
RESOURCE_ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")

# --------------------------------------------------------------------------------------------------
# URLs and query strings


def normalise_base_url(base_url: str | httpx.URL) -> httpx.URL:
    """The FHIR base as an absolute http(s) URL ending in one ``/``, without query or fragment."""
    url = httpx.URL(str(base_url).strip())
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("the FHIR base URL must be an absolute http(s) URL")
    if url.query or url.fragment:
        raise ValueError("the FHIR base URL must not carry a query or a fragment")
    path = url.raw_path.decode("ascii").rstrip("/") + "/"
    return url.copy_with(path=path)


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.host.lower(), port)


def origin_text(url: httpx.URL) -> str:
    """``scheme://host:port`` of a URL (no path, no query: safe to log)."""
    scheme, host, port = origin_of(url)
    return f"{scheme}://{host}:{port}"


# --------------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request to send: what the core decided, before the I/O layer builds the httpx.Request.

    ``idempotent`` says whether repeating it is safe (drives retries); ``resource_type`` and
    ``interaction`` are what logs and errors may show.
    """

    method: str
    url: httpx.URL
    resource_type: str | None
    interaction: str
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None
    idempotent: bool = True
    ok_statuses: frozenset[int] = frozenset()


def dumps(resource: Any) -> bytes:
    """Serialise a FHIR JSON value; a `Decimal` is written exactly as its text (`74.50`)."""
    return fhir_json.dumps(resource)


def loads_json(response: httpx.Response, spec: RequestSpec) -> Any:
    """Parse a response body as JSON, or raise InvalidResponse (without echoing the body). The codec's
    one depth guard (`fhir_json.check_depth`) refuses JSON nested deeper than `fhir_json.MAX_DEPTH`
    levels, and NaN/Infinity, before any parser can recurse on it."""
    where = f"{spec.method} {spec.resource_type or 'server'}: HTTP {response.status_code}"
    try:
        return fhir_json.loads(response.content)
    except fhir_json.JSONTooDeep as exc:
        raise InvalidResponse(
            f"{where} with JSON nested deeper than {fhir_json.MAX_DEPTH} levels"
        ) from exc
    except fhir_json.JSONNotANumber as exc:
        raise InvalidResponse(f"{where} with a number JSON does not allow ({exc.msg})") from exc
    except fhir_json.JSONDecodeErrors as exc:
        raise InvalidResponse(
            f"{where} with a body that is not JSON "
            f"({response.headers.get('content-type', 'no content-type')})"
        ) from exc


def loads_optional(response: httpx.Response, spec: RequestSpec) -> Any:
    """The JSON body of a response whose body is optional (an error's OperationOutcome, a write's
    echo): None when there is none or it cannot be read."""
    if not response.content:
        return None
    try:
        return loads_json(response, spec)
    except InvalidResponse:
        return None


def expect_resource(body: Any, resource_type: str | None, spec: RequestSpec) -> dict[str, Any]:
    """Check that a JSON body is a resource of the given type (any type when None)."""
    if not isinstance(body, dict) or "resourceType" not in body:
        raise InvalidResponse(
            f"{spec.method} {spec.resource_type or 'server'}: not a FHIR resource"
        )
    if resource_type is not None and body["resourceType"] != resource_type:
        raise InvalidResponse(
            f"{spec.method} {spec.resource_type or 'server'}: expected {resource_type}, "
            f"got {body['resourceType']}"
        )
    return body


class ClientCore:
    """Request building and response interpretation shared by the sync and async clients (no I/O)."""

    def __init__(
        self,
        base_url: str | httpx.URL,
        *,
        retry: RetryPolicy | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        if max_pages < 1 or max_body_bytes < 1 or not deadline > 0:
            raise ValueError("max_pages, max_body_bytes and deadline must be positive")
        self.base_url = normalise_base_url(base_url)
        self.origin = origin_of(self.base_url)
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_pages = max_pages
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline

    def body_buffer(self, spec: RequestSpec, started: float) -> BodyBuffer:
        """The buffer one attempt reads its answer into (``started``: time.monotonic() at its start)."""
        return BodyBuffer(
            spec.method,
            spec.resource_type,
            self.max_body_bytes,
            started + self.deadline,
            self.deadline,
        )

    # -- URLs ------------------------------------------------------------------------------------

    def url(self, *segments: str, query: str = "") -> httpx.URL:
        """``base/segment/segment?query`` (segments already validated)."""
        path = "/".join(segments)
        return httpx.URL(str(self.base_url) + path + (f"?{query}" if query else ""))

    @staticmethod
    def check_type(resource_type: str) -> str:
        if not RESOURCE_TYPE_RE.fullmatch(resource_type):
            raise ValueError(f"not a FHIR resource type: {resource_type!r}")
        return resource_type

    @staticmethod
    def check_id(resource_id: str) -> str:
        if not RESOURCE_ID_RE.fullmatch(resource_id):
            raise ValueError("not a valid FHIR resource id (1-64 of A-Z a-z 0-9 - .)")
        return resource_id

    def resolve_link(self, link: str) -> httpx.URL:
        """A Bundle link as an absolute URL, unchanged otherwise; refuse any other origin.

        Absolute links are used exactly as given; relative ones are resolved against the base URL.
        """
        try:
            url = httpx.URL(link)
        except httpx.InvalidURL as exc:
            raise InvalidResponse("the server sent a paging link that is not a URL") from exc
        if not url.is_absolute_url:
            url = self.base_url.join(link)
        if origin_of(url) != self.origin:
            raise UnsafeNextLink(origin_text(url), origin_text(self.base_url))
        return url

    # -- request specs ---------------------------------------------------------------------------

    def headers_for(
        self, *, body: bool, extra: Mapping[str, str] | None = None
    ) -> tuple[tuple[str, str], ...]:
        headers = [("Accept", FHIR_JSON)]
        if body:
            headers.append(("Content-Type", f"{FHIR_JSON}; charset=utf-8"))
        if extra:
            headers.extend(extra.items())
        return tuple(headers)

    def capabilities(self) -> RequestSpec:
        return RequestSpec(
            "GET",
            self.url("metadata"),
            "CapabilityStatement",
            "capabilities",
            self.headers_for(body=False),
        )

    def read(self, resource_type: str, resource_id: str) -> RequestSpec:
        rt = self.check_type(resource_type)
        return RequestSpec(
            "GET",
            self.url(rt, self.check_id(resource_id)),
            rt,
            "read",
            self.headers_for(body=False),
        )

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> RequestSpec:
        rt = self.check_type(resource_type)
        url = self.url(rt, self.check_id(resource_id), "_history", self.check_id(version_id))
        return RequestSpec("GET", url, rt, "vread", self.headers_for(body=False))

    def search(
        self, resource_type: str | None, pairs: Sequence[tuple[str, str]], *, post: bool = False
    ) -> RequestSpec:
        """``GET Type?query``, or ``POST Type/_search`` with a form body (for long queries)."""
        segments = (self.check_type(resource_type),) if resource_type else ()
        if not post:
            url = self.url(*segments, query=encode_query(pairs))
            return RequestSpec("GET", url, resource_type, "search", self.headers_for(body=False))
        headers = (("Accept", FHIR_JSON), ("Content-Type", "application/x-www-form-urlencoded"))
        return RequestSpec(
            "POST",
            self.url(*segments, "_search"),
            resource_type,
            "search",
            headers,
            encode_query(pairs).encode("ascii"),
            idempotent=True,
        )

    def next_page(self, link: str, resource_type: str | None) -> RequestSpec:
        return RequestSpec(
            "GET",
            self.resolve_link(link),
            resource_type,
            "search-page",
            self.headers_for(body=False),
        )

    def create(
        self, resource: Mapping[str, Any], *, if_none_exist: SearchParams | None = None
    ) -> RequestSpec:
        rt = self.check_type(_resource_type(resource))
        extra = {"Prefer": "return=representation"}
        if if_none_exist is not None:
            extra["If-None-Exist"] = encode_query(search_pairs(if_none_exist))
        return RequestSpec(
            "POST",
            self.url(rt),
            rt,
            "create",
            self.headers_for(body=True, extra=extra),
            dumps(resource),
            idempotent=if_none_exist is not None,
        )

    def update(
        self,
        resource: Mapping[str, Any],
        *,
        condition: SearchParams | None = None,
        if_match: str | None = None,
    ) -> RequestSpec:
        rt = self.check_type(_resource_type(resource))
        extra = {"Prefer": "return=representation"}
        if if_match is not None:
            extra["If-Match"] = if_match if if_match.startswith("W/") else f'W/"{if_match}"'
        if condition is not None:
            url = self.url(rt, query=encode_query(search_pairs(condition)))
            interaction = "conditional-update"
        else:
            resource_id = resource.get("id")
            if not isinstance(resource_id, str):
                raise ValueError("update needs a resource with an id (or a condition)")
            url = self.url(rt, self.check_id(resource_id))
            interaction = "update"
        return RequestSpec(
            "PUT", url, rt, interaction, self.headers_for(body=True, extra=extra), dumps(resource)
        )

    def delete(self, resource_type: str, resource_id: str) -> RequestSpec:
        rt = self.check_type(resource_type)
        return RequestSpec(
            "DELETE",
            self.url(rt, self.check_id(resource_id)),
            rt,
            "delete",
            self.headers_for(body=False),
            ok_statuses=frozenset({404, 410}),
        )

    def bundle(self, bundle: Mapping[str, Any]) -> RequestSpec:
        """``POST [base]`` of a transaction or batch, retried only when ``bundle_is_idempotent``."""
        kind = bundle.get("type")
        if bundle.get("resourceType") != "Bundle" or kind not in ("transaction", "batch"):
            raise ValueError("expected a Bundle of type transaction or batch")
        return RequestSpec(
            "POST",
            httpx.URL(
                str(self.base_url).rstrip("/")
            ),  # POST [base], as the specification writes it
            "Bundle",
            str(kind),
            self.headers_for(body=True),
            dumps(bundle),
            idempotent=bundle_is_idempotent(bundle),
        )

    @staticmethod
    def bundle_result(
        body: Any, bundle: Mapping[str, Any], spec: RequestSpec, *, atomic: bool
    ) -> BundleResult:
        """The per-entry outcomes of a transaction/batch response; for a transaction (``atomic``)
        any failing entry raises TransactionFailed."""
        result = parse_bundle_response(expect_resource(body, "Bundle", spec), bundle)
        if atomic and result.failed:
            raise TransactionFailed(200, failed_entries=result.failed)
        return result

    def validate(self, resource: Mapping[str, Any]) -> RequestSpec:
        rt = self.check_type(_resource_type(resource))
        return RequestSpec(
            "POST",
            self.url(rt, "$validate"),
            rt,
            "validate",
            self.headers_for(body=True),
            dumps(resource),
            idempotent=True,
            ok_statuses=frozenset({400, 412, 422}),
        )

    # -- responses -------------------------------------------------------------------------------

    def http_error(self, response: httpx.Response, spec: RequestSpec) -> FhirHttpError:
        """The exception for an error response, through the status table, with its OperationOutcome."""
        outcome: dict[str, Any] | None = None
        body = loads_optional(response, spec)
        if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
            outcome = body
        cls = error_class_for_status(response.status_code)
        return cls(
            response.status_code,
            spec.method,
            str(spec.url),
            resource_type=spec.resource_type,
            outcome=outcome,
            reason=response.reason_phrase,
        )

    def is_success(self, response: httpx.Response, spec: RequestSpec) -> bool:
        return response.is_success or response.status_code in spec.ok_statuses

    def transport_error(
        self, exc: httpx.RequestError, spec: RequestSpec, *, deadline_passed: bool = False
    ) -> FhirError:
        """Translate an httpx request failure (the caller raises it ``from exc``): timeouts and
        connection failures become FhirTimeout / FhirTransportError (retryable), an undecodable body
        (bad gzip) InvalidResponse."""
        target = spec.resource_type or "server"
        if isinstance(exc, httpx.DecodingError):
            return InvalidResponse(f"{spec.method} {target}: the body could not be decoded")
        if isinstance(exc, httpx.TimeoutException) and deadline_passed:
            return deadline_timeout(spec.method, spec.resource_type, self.deadline)
        if isinstance(exc, httpx.TimeoutException):
            return FhirTimeout(
                f"{spec.method} {target}: timed out ({type(exc).__name__})",
                method=spec.method,
                resource_type=spec.resource_type,
            )
        return FhirTransportError(
            f"{spec.method} {target}: {type(exc).__name__}",
            method=spec.method,
            resource_type=spec.resource_type,
        )

    @staticmethod
    def check_fhir_version(capability_statement: Mapping[str, Any]) -> str:
        """Return the server's fhirVersion if it is 4.0.x, else raise FhirVersionMismatch."""
        version = capability_statement.get("fhirVersion")
        if not isinstance(version, str) or not re.fullmatch(r"4\.0(\.\d+)?", version):
            raise FhirVersionMismatch(version if isinstance(version, str) else None)
        return version

    # -- logging ---------------------------------------------------------------------------------

    @staticmethod
    def log_response(spec: RequestSpec, status: int, elapsed_ms: float, attempt: int) -> None:
        logger.debug(
            "%s %s %s -> %d in %.0f ms (attempt %d)",
            spec.interaction,
            spec.method,
            spec.resource_type or "-",
            status,
            elapsed_ms,
            attempt,
        )


def _resource_type(resource: Mapping[str, Any]) -> str:
    rt = resource.get("resourceType")
    if not isinstance(rt, str):
        raise ValueError("a FHIR resource needs a resourceType")
    return rt


# --------------------------------------------------------------------------------------------------
# Retries


RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to retry.

    Attempts are bounded in count (``max_attempts`` includes the first one) and in total time
    (``max_total_seconds``, time spent sending plus sleeping). Delays grow exponentially with full
    jitter, ``uniform(0, min(max_backoff, backoff_base * 2**retry))``, unless the server sent
    ``Retry-After`` (seconds or an HTTP date), which is honoured as given up to ``max_retry_after``.
    Only requests that are safe to repeat are retried (GET, PUT, DELETE, conditional creates,
    transactions whose entries are all conditional).
    """

    max_attempts: int = 5
    backoff_base: float = 0.5
    max_backoff: float = 30.0
    max_total_seconds: float = 120.0
    max_retry_after: float = 120.0
    statuses: frozenset[int] = RETRY_STATUSES
    retry_transport_errors: bool = True
    random: Callable[[], float] = field(default=random.random, compare=False)

    @classmethod
    def none(cls) -> RetryPolicy:
        """No retries at all."""
        return cls(max_attempts=1)

    def backoff(self, retry_number: int) -> float:
        """Full-jitter backoff before retry number ``retry_number`` (0 for the first retry)."""
        cap = min(self.max_backoff, self.backoff_base * (2.0**retry_number))
        return cap * self.random()


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


class RetryState:
    """Bookkeeping for one logical request across its attempts (no I/O, no sleeping)."""

    def __init__(self, policy: RetryPolicy, spec: RequestSpec, started: float) -> None:
        self.policy = policy
        self.spec = spec
        self.started = started
        self.attempt = 0
        self.slept = 0.0

    def decide(
        self,
        failure: FhirError,
        retry_after: float | None,
        now_monotonic: float,
    ) -> float | FhirError:
        """Seconds to sleep before the next attempt, or the error to raise: the failure itself when
        it is not retryable, RetriesExhausted when the policy's count or time budget is spent."""
        policy = self.policy
        retryable = self.spec.idempotent and (
            (isinstance(failure, FhirHttpError) and failure.status in policy.statuses)
            or (isinstance(failure, FhirTransportError) and policy.retry_transport_errors)
        )
        if not retryable or policy.max_attempts <= 1:
            return failure
        if self.attempt >= policy.max_attempts:
            return RetriesExhausted(self.attempt, failure, reason="attempts")
        if retry_after is not None:
            wait = min(retry_after, policy.max_retry_after)
        else:
            wait = policy.backoff(self.attempt - 1)
        spent = max(now_monotonic - self.started, self.slept)
        if spent + wait > policy.max_total_seconds:
            return RetriesExhausted(self.attempt, failure, reason="time")
        self.slept += wait
        logger.info(
            "retrying %s %s %s after %s (attempt %d of %d) in %.2f s",
            self.spec.interaction,
            self.spec.method,
            self.spec.resource_type or "-",
            _failure_label(failure),
            self.attempt,
            policy.max_attempts,
            wait,
        )
        return wait


def _failure_label(failure: FhirError) -> str:
    if isinstance(failure, FhirHttpError):
        return f"HTTP {failure.status}"
    return type(failure).__name__


def retry_after_of(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    return parse_retry_after(response.headers.get("Retry-After"), dt.datetime.now(dt.UTC))


# --------------------------------------------------------------------------------------------------
# Transport settings and transaction rejections

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""60 s to read (HAPI transactions and $validate can be slow), 10 s to connect."""

TRANSACTION_REJECTIONS = frozenset({400, 404, 409, 412, 422})


def ssl_context(verify: bool | str | ssl.SSLContext) -> bool | ssl.SSLContext:
    """``verify`` as httpx wants it: a path is a CA bundle (PEM file) to trust instead of the system's."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def transaction_error(exc: FhirHttpError) -> TransactionFailed | None:
    """A whole-transaction rejection as TransactionFailed (None for auth, rate-limit, server errors)."""
    if exc.status in TRANSACTION_REJECTIONS:
        return TransactionFailed(exc.status, outcome=exc.outcome)
    return None


# --------------------------------------------------------------------------------------------------
# Write results


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a create or update returned: status, Location, ETag, and the stored resource if sent back."""

    status: int
    location: str | None
    etag: str | None
    last_modified: str | None
    resource: dict[str, Any] | None
    outcome: dict[str, Any] | None

    @property
    def created(self) -> bool:
        """True when the server created a new resource (201)."""
        return self.status == 201

    @property
    def version_id(self) -> str | None:
        """The version from the ETag (``W/"3"`` -> ``3``) or the returned resource's meta."""
        if self.etag:
            return self.etag.removeprefix("W/").strip('"')
        meta = (self.resource or {}).get("meta") or {}
        version = meta.get("versionId")
        return version if isinstance(version, str) else None


def write_result(response: httpx.Response, spec: RequestSpec) -> WriteResult:
    """Read a create/update response (body optional: servers may honour Prefer differently)."""
    body = loads_optional(response, spec)
    resource = (
        body if isinstance(body, dict) and isinstance(body.get("resourceType"), str) else None
    )
    outcome = None
    if resource is not None and resource.get("resourceType") == "OperationOutcome":
        outcome, resource = resource, None
    return WriteResult(
        status=response.status_code,
        location=response.headers.get("Location") or response.headers.get("Content-Location"),
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        resource=resource,
        outcome=outcome,
    )
