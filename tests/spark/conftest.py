"""One local Spark session (local[2], the system Java) for every Spark test of a run.

When Spark cannot start (pyspark not installed, no Java), the tests are skipped with the reason; with
CI=true they FAIL instead: CI installs the `spark` extra and must run them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapter.testing._env import on_ci


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if on_ci():
        pytest.fail(f"Spark is required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        unavailable('pyspark is not installed (pip install ".[spark]")')
    from adapter.engines.spark import spark_session

    try:
        session = spark_session("local[2]", app="trialfhir-tests")
    except Exception as exc:  # pyspark raises its own errors for a missing or broken Java
        unavailable(f"Spark did not start: {type(exc).__name__}: {exc}")
    yield session
    session.stop()
