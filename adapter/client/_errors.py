"""The client's exception tree: every failure the FHIR client reports, rooted in one class.

`FhirError` derives from the project's one root, `mappings.errors.TrialfhirError` (the client's only
import from `mappings`: a standard-library-only leaf). Every class carries a stable ``code`` string
(documented in docs/client.md and docs/cli.md, checked by a test) and the command line's ``exit_code``,
so callers branch on the class or its code, never on a message.

    FhirError                               fhir_error
    ├── FhirHttpError                       http_error        (any other non-2xx status)
    │   ├── BadRequest                      bad_request       400
    │   ├── Unauthorized                    unauthorized      401
    │   ├── Forbidden                       forbidden         403
    │   ├── ResourceNotFound                not_found         404
    │   ├── MethodNotAllowed                method_not_allowed 405
    │   ├── Conflict                        conflict          409
    │   ├── Gone                            gone              410
    │   ├── PreconditionFailed              precondition_failed 412
    │   ├── UnprocessableEntity             unprocessable     422
    │   ├── TooManyRequests                 too_many_requests 429
    │   └── ServerError                     server_error      5xx
    ├── FhirTransportError                  transport_error   (connection refused, reset, TLS, ...)
    │   └── FhirTimeout                     timeout           (a read, or the whole attempt's deadline)
    ├── RetriesExhausted                    retries_exhausted (wraps the last failure)
    ├── FhirVersionMismatch                 fhir_version_mismatch
    ├── InvalidResponse                     invalid_response  (the answer was refused: not JSON, wrong
    │   │                                                      shape, nested too deep, ...)
    │   ├── UnsafeNextLink                  unsafe_next_link  (a paging link to another origin)
    │   ├── PagingLoop                      paging_loop       (a next link already followed)
    │   ├── PageLimitReached                page_limit        (more pages than max_pages)
    │   ├── ResponseTooLarge                response_too_large (a body over max_body_bytes)
    │   └── TransactionResponseMismatch     transaction_response_mismatch (entries do not answer
    │                                                      the request's)
    ├── AuthenticationFailed                auth_failed       (SMART discovery or token request failed)
    └── TransactionFailed                   transaction_failed (carries the failing entries)

``Issue`` and ``parse_issues`` (what an OperationOutcome says) live with the other outcomes in
``adapter.bundles`` and are re-exported here; ``adapter.bundles`` imports nothing of the client.

Foreign exceptions (httpx's) are translated in one place, the client's send loop, with ``raise ... from``.
Messages never contain query strings, request bodies or resource ids: only the method, the resource
type, the status and what the server said (its OperationOutcome diagnostics).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from adapter.bundles import EntryOutcome, Issue, UploadSummary, parse_issues
from mappings.errors import ExitCode, TrialfhirError

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "Conflict",
    "FhirError",
    "FhirHttpError",
    "FhirTimeout",
    "FhirTransportError",
    "FhirVersionMismatch",
    "Forbidden",
    "Gone",
    "InvalidResponse",
    "Issue",
    "MethodNotAllowed",
    "PageLimitReached",
    "PagingLoop",
    "PreconditionFailed",
    "ResourceNotFound",
    "ResponseTooLarge",
    "RetriesExhausted",
    "ServerError",
    "TooManyRequests",
    "TransactionFailed",
    "TransactionResponseMismatch",
    "Unauthorized",
    "UnprocessableEntity",
    "UnsafeNextLink",
    "error_class_for_status",
    "parse_issues",
]


class FhirError(TrialfhirError):
    """Base of every error the FHIR client raises (never raised itself; its exit code is the root's)."""

    code: ClassVar[str] = "fhir_error"


class FhirHttpError(FhirError):
    """The server answered with a non-success status.

    Attributes:
        status: the HTTP status code.
        method: the request method.
        url: the full request URL (with its query: do not log it).
        resource_type: the FHIR resource type the request was about, when known.
        outcome: the parsed OperationOutcome body, when the server sent one.
        issues: the outcome's issues.
    """

    code: ClassVar[str] = "http_error"
    exit_code: ClassVar[ExitCode] = ExitCode.SERVER_REFUSED

    def __init__(
        self,
        status: int,
        method: str,
        url: str,
        *,
        resource_type: str | None = None,
        outcome: dict[str, Any] | None = None,
        reason: str = "",
    ) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.resource_type = resource_type
        self.outcome = outcome
        self.issues = parse_issues(outcome)
        self.reason = reason
        super().__init__(self._message())

    @property
    def diagnostics(self) -> str:
        """What the server said, joined from its OperationOutcome issues ('' when it said nothing)."""
        return "; ".join(issue.text for issue in self.issues if issue.text)

    def _message(self) -> str:
        target = self.resource_type or "server"
        head = f"{self.method} {target} -> HTTP {self.status}"
        if self.reason:
            head += f" {self.reason}"
        said = self.diagnostics
        return f"{head}: {said}" if said else head


class BadRequest(FhirHttpError):
    """400: the server could not parse or accept the request."""

    code = "bad_request"


class Unauthorized(FhirHttpError):
    """401: no or an invalid access token (after one forced token refresh, when auth can refresh)."""

    code = "unauthorized"
    exit_code: ClassVar[ExitCode] = ExitCode.AUTH


class Forbidden(FhirHttpError):
    """403: authenticated but not allowed."""

    code = "forbidden"
    exit_code: ClassVar[ExitCode] = ExitCode.AUTH


class ResourceNotFound(FhirHttpError):
    """404: the resource (or type, or operation) does not exist. A search with no match is not this."""

    code = "not_found"
    exit_code: ClassVar[ExitCode] = ExitCode.NOT_FOUND


class MethodNotAllowed(FhirHttpError):
    """405: the server does not support this interaction."""

    code = "method_not_allowed"


class Conflict(FhirHttpError):
    """409: a version conflict or a concurrent change."""

    code = "conflict"


class Gone(FhirHttpError):
    """410: the resource was deleted, or a paging link expired."""

    code = "gone"


class PreconditionFailed(FhirHttpError):
    """412: a conditional request matched several resources, or If-Match failed."""

    code = "precondition_failed"


class UnprocessableEntity(FhirHttpError):
    """422: the resource broke a profile or business rule."""

    code = "unprocessable"


class TooManyRequests(FhirHttpError):
    """429: rate limited (retried first when the request is safe to repeat)."""

    code = "too_many_requests"
    exit_code: ClassVar[ExitCode] = ExitCode.UNREACHABLE


class ServerError(FhirHttpError):
    """5xx: the server failed."""

    code = "server_error"
    exit_code: ClassVar[ExitCode] = ExitCode.UNREACHABLE


_STATUS_TABLE: dict[int, type[FhirHttpError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: ResourceNotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    412: PreconditionFailed,
    422: UnprocessableEntity,
    429: TooManyRequests,
}


def error_class_for_status(status: int) -> type[FhirHttpError]:
    """The exception class for an HTTP error status, through one table (5xx -> ServerError)."""
    if status >= 500:
        return ServerError
    return _STATUS_TABLE.get(status, FhirHttpError)


class FhirTransportError(FhirError):
    """The request did not get an HTTP answer: connection refused or reset, TLS failure, protocol error."""

    code: ClassVar[str] = "transport_error"
    exit_code: ClassVar[ExitCode] = ExitCode.UNREACHABLE

    def __init__(self, message: str, *, method: str, resource_type: str | None = None) -> None:
        self.method = method
        self.resource_type = resource_type
        super().__init__(message)


class FhirTimeout(FhirTransportError):
    """Connecting, sending or reading took longer than the configured timeout."""

    code = "timeout"


class RetriesExhausted(FhirError):
    """Every attempt the RetryPolicy allowed failed (in count or in total time); ``last_error`` says how."""

    code: ClassVar[str] = "retries_exhausted"
    exit_code: ClassVar[ExitCode] = ExitCode.UNREACHABLE

    def __init__(self, attempts: int, last_error: FhirError, *, reason: str = "attempts") -> None:
        self.attempts = attempts
        self.last_error = last_error
        self.reason = reason
        budget = "retry time budget spent" if reason == "time" else "no attempts left"
        super().__init__(f"gave up after {attempts} attempt(s), {budget}; last error: {last_error}")


class FhirVersionMismatch(FhirError):
    """The server's CapabilityStatement announces a FHIR version other than 4.0.x (R4)."""

    code: ClassVar[str] = "fhir_version_mismatch"
    exit_code: ClassVar[ExitCode] = ExitCode.FHIR_VERSION

    def __init__(self, found: str | None, expected: str = "4.0.x") -> None:
        self.found = found
        self.expected = expected
        super().__init__(
            f"the server speaks FHIR {found or '(no fhirVersion announced)'}; this client needs {expected} (R4)"
        )


class InvalidResponse(FhirError):
    """The server's answer was refused: a 2xx whose body is not the FHIR JSON expected (not JSON, not
    an object, the wrong resource type, a wrongly shaped Bundle, nested deeper than the client
    allows), or one of the subclasses below (a paging link, a page cap, a body-size cap, a
    transaction response that does not answer the request). The CLI exits 10 for all of them."""

    code: ClassVar[str] = "invalid_response"
    exit_code: ClassVar[ExitCode] = ExitCode.SERVER_ANSWER


class UnsafeNextLink(InvalidResponse):
    """A Bundle paging link points away from the server's own origin (scheme, host, port)."""

    code: ClassVar[str] = "unsafe_next_link"

    def __init__(self, link_origin: str, server_origin: str) -> None:
        self.link_origin = link_origin
        self.server_origin = server_origin
        super().__init__(
            f"refusing to follow a paging link to {link_origin}: the server is {server_origin}"
        )


class PagingLoop(InvalidResponse):
    """A search's ``next`` link leads to a page already fetched: following it would never end."""

    code: ClassVar[str] = "paging_loop"

    def __init__(self, page: int, first_seen: int) -> None:
        self.page = page
        self.first_seen = first_seen
        super().__init__(
            f"search page {page}: the server's next link repeats the link of page {first_seen}; "
            "refusing to loop (the result would never end)"
        )


class PageLimitReached(InvalidResponse):
    """A search has more pages than its page cap (``max_pages``): stopping there would drop data,
    so it is an error, never a quiet stop."""

    code: ClassVar[str] = "page_limit"

    def __init__(self, limit: int, resource_type: str | None) -> None:
        self.limit = limit
        self.resource_type = resource_type
        super().__init__(
            f"search {resource_type or '(all types)'}: more than {limit} pages (the page cap); "
            "raise the cap (max_pages, --max-pages) or ask for bigger pages"
        )


class ResponseTooLarge(InvalidResponse):
    """A response body is bigger than ``max_body_bytes``: it was not read further."""

    code: ClassVar[str] = "response_too_large"

    def __init__(self, method: str, resource_type: str | None, limit: int) -> None:
        self.method = method
        self.resource_type = resource_type
        self.limit = limit
        super().__init__(
            f"{method} {resource_type or 'server'}: the response body is larger than {limit} bytes "
            "(the body-size cap); raise it (max_body_bytes, --max-body-mb) if this is expected"
        )


class TransactionResponseMismatch(InvalidResponse):
    """A transaction or batch answered 2xx with entries that do not answer the request's: fewer or
    more entries, a status that is not an HTTP status, a location of another type or id.

    Attributes:
        problems: one line per problem (entry index and reason; no ids or values).
        chunk: in a chunked upload, the 0-based index of the bundle whose answer was refused (the
            server said it committed it, but its answer cannot be trusted).
        completed: in a chunked upload, the summary of the chunks committed before it.
    """

    code: ClassVar[str] = "transaction_response_mismatch"

    def __init__(
        self,
        problems: Sequence[str],
        *,
        chunk: int | None = None,
        completed: UploadSummary | None = None,
        committed: str = "",
    ) -> None:
        self.problems = list(problems)
        self.chunk = chunk
        self.completed = completed
        where = f" of chunk {chunk + 1}" if chunk is not None else ""
        shown = "; ".join(self.problems[:5])
        if len(self.problems) > 5:
            shown += f"; ... and {len(self.problems) - 5} more"
        message = f"the server's answer{where} does not match the request: {shown}"
        if committed:
            message += f". {committed}"
        super().__init__(message)


class AuthenticationFailed(FhirError):
    """SMART discovery or the token request failed (the token endpoint's error is in the message)."""

    code: ClassVar[str] = "auth_failed"
    exit_code: ClassVar[ExitCode] = ExitCode.AUTH


class TransactionFailed(FhirError):
    """A transaction was rejected (atomically) or came back with failing entries.

    Attributes:
        status: the HTTP status of the whole request (200 when the failure is per entry).
        outcome: the OperationOutcome of the whole request, when the server sent one.
        issues: its issues.
        failed_entries: the per-entry outcomes that did not succeed (indexes into the request bundle).
        chunk: in a chunked upload, the 0-based index of the bundle that failed (the message counts
            chunks from 1).
        completed: in a chunked upload, the summary of the chunks committed before it.
    """

    code: ClassVar[str] = "transaction_failed"
    exit_code: ClassVar[ExitCode] = ExitCode.TRANSACTION

    def __init__(
        self,
        status: int,
        *,
        outcome: dict[str, Any] | None = None,
        failed_entries: Sequence[EntryOutcome] = (),
        chunk: int | None = None,
        completed: UploadSummary | None = None,
        committed: str = "",
    ) -> None:
        self.status = status
        self.chunk = chunk
        self.completed = completed
        self.outcome = outcome
        self.issues = parse_issues(outcome)
        self.failed_entries = list(failed_entries)
        where = f" in chunk {chunk + 1}" if chunk is not None else ""
        parts = [f"transaction failed{where} (HTTP {status})"]
        said = "; ".join(issue.text for issue in self.issues if issue.text)
        if said:
            parts.append(said)
        for entry in self.failed_entries[:5]:
            parts.append(f"entry {entry.index}: {entry.summary()}")
        if len(self.failed_entries) > 5:
            parts.append(f"... and {len(self.failed_entries) - 5} more failing entries")
        message = ": ".join(parts[:2]) + ("; " + "; ".join(parts[2:]) if parts[2:] else "")
        super().__init__(f"{message}. {committed}" if committed else message)
