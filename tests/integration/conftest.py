"""Shared pieces of the integration tests against a live HAPI FHIR server.

The server fixtures themselves (``hapi_base_url``, ``hapi_clean``, ``hapi_clean_base_url``) come from
the ``adapter.testing`` pytest plugin; this file adds a raw HTTP client for tests that speak to the
server without trialfhir's own client.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def fhir_http(hapi_clean_base_url: str) -> Iterator[httpx.Client]:
    """A plain httpx client on an emptied server; relative URLs resolve against the FHIR base."""
    with httpx.Client(
        base_url=hapi_clean_base_url + "/",
        headers={"Accept": FHIR_JSON, "Content-Type": FHIR_JSON},
        timeout=180.0,
    ) as client:
        yield client
