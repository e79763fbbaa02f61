"""Test tooling, kept apart from the library: the local HAPI server harness
(`adapter.testing.hapi`), the reconstructed-cohort generator (`adapter.testing.cohort`) and the
pytest plugin (this module, entry point ``trialfhir_hapi``).

The plugin's fixtures live in `adapter.testing.fixtures`, registered from ``pytest_configure``:

- ``hapi_base_url`` (session): the FHIR base URL. ``TRIALFHIR_HAPI_URL`` when set (your own HAPI,
  e.g. the official Docker image elsewhere); otherwise trialfhir's local server, built if needed and
  started once for the whole run, stopped at the end.
- ``hapi_clean`` (module): empties the server (``$expunge`` everything) when a module starts, so
  each module sees an empty server. ``hapi_clean_base_url`` does the same and returns the base URL.

When no server can be had, the test is skipped with the reason, except on CI (``CI=true``), where it
fails: a CI run must never pass by skipping its integration tests. Tests that use these fixtures
get the ``hapi`` marker automatically (``-m "not hapi"`` leaves them out).

Importing this package needs neither pytest nor httpx (``trialfhir hapi`` runs in an installation
without the dev dependencies); loading the plugin costs nothing: the harness (and httpx) is imported
only when a test asks for a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapter.testing._env import ENV_URL, on_ci

if TYPE_CHECKING:
    import pytest

__all__ = ["ENV_URL", "HAPI_FIXTURES", "on_ci"]

HAPI_FIXTURES = frozenset({"hapi_base_url", "hapi_clean", "hapi_clean_base_url"})


def pytest_configure(config: pytest.Config) -> None:
    from adapter.testing import fixtures

    config.addinivalue_line(
        "markers",
        "hapi: needs a live HAPI FHIR server (started once per run, or TRIALFHIR_HAPI_URL)",
    )
    if not config.pluginmanager.is_registered(fixtures):
        config.pluginmanager.register(fixtures, "trialfhir_hapi_fixtures")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    import pytest

    for item in items:
        if HAPI_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.hapi)
