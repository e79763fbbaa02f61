"""The fixtures of the ``trialfhir_hapi`` pytest plugin (registered by `adapter.testing`): a live
HAPI FHIR R4 server for integration tests. See `adapter.testing` for what each fixture gives."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from adapter.testing._env import ENV_URL, on_ci


def _unavailable(reason: str) -> NoReturn:
    message = f"HAPI FHIR server unavailable: {reason}"
    if on_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


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
