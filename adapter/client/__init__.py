"""trialfhir's FHIR R4 REST client: sync and async clients over httpx, searches that page safely,
conditional writes and transactions, Bulk Data $export, retries, SMART Backend Services auth, and
one exception tree.

See docs/client.md. Only the names in ``__all__`` are public; the underscored modules are internals.
The Bundle rule and the search query text it re-exports live beside the client, in ``adapter.bundles``
and ``adapter.fhir_query`` (shared with the FHIR files, which do not import the client).
"""

import logging

from adapter.bundles import (
    BundleResult,
    EntryOutcome,
    Issue,
    TransactionMode,
    UploadSummary,
    bundle_is_idempotent,
    business_condition,
    transaction_bundle,
)
from adapter.fhir_query import SearchParams, SearchValue, token

from ._async import AsyncFhirClient
from ._auth import BasicAuth, BearerAuth, SmartBackendAuth
from ._bulk import (
    ExportFile,
    ExportManifest,
    ExportRequest,
    ExportTimedOut,
    ExportTooLarge,
    FileCheck,
    InvalidExportFile,
    InvalidManifest,
    TokenHostRefused,
)
from ._bulk_run import (
    AsyncBulkExport,
    BulkExport,
    ExportEvents,
    ExportFolderInUse,
    ExportJob,
    ExportResult,
)
from ._bundle import UnwritableResources, parse_bundle_response
from ._core import RetryPolicy, WriteResult, parse_retry_after
from ._errors import (
    AuthenticationFailed,
    BadRequest,
    Conflict,
    FhirError,
    FhirHttpError,
    FhirTimeout,
    FhirTransportError,
    FhirVersionMismatch,
    Forbidden,
    Gone,
    InvalidResponse,
    MethodNotAllowed,
    PageLimitReached,
    PagingLoop,
    PreconditionFailed,
    ResourceNotFound,
    ResponseTooLarge,
    RetriesExhausted,
    ServerError,
    TooManyRequests,
    TransactionFailed,
    TransactionResponseMismatch,
    Unauthorized,
    UnprocessableEntity,
    UnsafeNextLink,
)
from ._search import AsyncSearch, Page, Search, SearchEntry
from ._sync import FhirClient

__all__ = [
    "AsyncBulkExport",
    "AsyncFhirClient",
    "AsyncSearch",
    "AuthenticationFailed",
    "BadRequest",
    "BasicAuth",
    "BearerAuth",
    "BulkExport",
    "BundleResult",
    "Conflict",
    "EntryOutcome",
    "ExportEvents",
    "ExportFile",
    "ExportFolderInUse",
    "ExportJob",
    "ExportManifest",
    "ExportRequest",
    "ExportResult",
    "ExportTimedOut",
    "ExportTooLarge",
    "FhirClient",
    "FhirError",
    "FhirHttpError",
    "FhirTimeout",
    "FhirTransportError",
    "FhirVersionMismatch",
    "FileCheck",
    "Forbidden",
    "Gone",
    "InvalidExportFile",
    "InvalidManifest",
    "InvalidResponse",
    "Issue",
    "MethodNotAllowed",
    "Page",
    "PageLimitReached",
    "PagingLoop",
    "PreconditionFailed",
    "ResourceNotFound",
    "ResponseTooLarge",
    "RetriesExhausted",
    "RetryPolicy",
    "Search",
    "SearchEntry",
    "SearchParams",
    "SearchValue",
    "ServerError",
    "SmartBackendAuth",
    "TokenHostRefused",
    "TooManyRequests",
    "TransactionFailed",
    "TransactionMode",
    "TransactionResponseMismatch",
    "Unauthorized",
    "UnprocessableEntity",
    "UnsafeNextLink",
    "UnwritableResources",
    "UploadSummary",
    "WriteResult",
    "bundle_is_idempotent",
    "business_condition",
    "parse_bundle_response",
    "parse_retry_after",
    "token",
    "transaction_bundle",
]

# httpx logs every full URL (query strings hold identifiers) at INFO: keep it and httpcore quiet
# unless the application configured them itself.
for _name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    if _logger.level == logging.NOTSET:
        _logger.setLevel(logging.WARNING)
