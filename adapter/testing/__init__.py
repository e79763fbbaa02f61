"""pytest plugin (entry point ``trialfhir_hapi``): a live HAPI FHIR R4 server for integration tests.

Fixtures:

- ``hapi_base_url`` (session): the FHIR base URL. ``TRIALFHIR_HAPI_URL`` when set (your own HAPI,
  e.g. the official Docker image elsewhere); otherwise trialfhir's local server, built if needed and
  started once for the whole run, stopped at the end.
- ``hapi_clean`` (module): empties the server (``$expunge`` everything) when a module starts, so each
  module sees an empty server. ``hapi_clean_base_url`` does the same and returns the base URL.

When no server can be had, the test is skipped with the reason, except on CI (``CI=true``), where it
fails: a CI run must never pass by skipping its integration tests. Tests that use these fixtures
get the ``hapi`` marker automatically (``-m "not hapi"`` leaves them out).

Loading the plugin costs nothing: the harness (and httpx) is imported only when a test asks for a
server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

ENV_URL = "TRIALFHIR_HAPI_URL"
HAPI_FIXTURES = frozenset({"hapi_base_url", "hapi_clean", "hapi_clean_base_url"})


def on_ci() -> bool:
    """True when running on CI (``CI`` set to true/1/yes, as CI services do)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _unavailable(reason: str) -> NoReturn:
    message = f"HAPI FHIR server unavailable: {reason}"
    if on_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hapi: needs a live HAPI FHIR server (started once per run, or TRIALFHIR_HAPI_URL)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HAPI_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.hapi)


@pytest.fixture(scope="session")
def hapi_base_url() -> Iterator[str]:
    """Base URL of a live HAPI FHIR R4 server, e.g. ``http://127.0.0.1:41234/fhir``."""
    from adapter.testing import hapi

    given = os.environ.get(ENV_URL, "").strip()
    if given:
        base_url = given.rstrip("/")
        if not hapi.metadata_answers(base_url, timeout=30.0):
            _unavailable(f"{ENV_URL}={base_url} does not answer GET /metadata")
        yield base_url
        return
    try:
        server = hapi.start_server()
    except hapi.HapiServerError as exc:
        _unavailable(str(exc))
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hapi_clean(hapi_base_url: str) -> None:
    """Empty the server once when the module starts (``$expunge`` everything)."""
    from adapter.testing import hapi

    try:
        hapi.expunge_everything(hapi_base_url)
    except hapi.HapiServerError as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="module")
def hapi_clean_base_url(hapi_base_url: str, hapi_clean: None) -> str:
    """The base URL of a server emptied when the module started."""
    return hapi_base_url
