"""One local Spark session (local[2], the system Java) for every Spark test of a run, and the shipped
cohort with the clinical domains added (`shipped_clinical`), made once for the engine and view tests.

When Spark cannot start (pyspark not installed, no Java), the tests are skipped with the reason; with
CI=true they FAIL instead: CI installs the `spark` extra and must run them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.studies import shipped_studies
from adapter.testing._env import on_ci

SHIPPED = next(s.folder for s in shipped_studies() if s.name == "dalakas1993")
CLINICAL_SEED = 1991
"""A seed whose rows hold every case the clinical tables exercise (an MH end date, a partial AE start,
a test not done, a partial LBDTC, ...; `clinical_tables`)."""


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


@pytest.fixture(scope="session")
def shipped_clinical(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped cohort's tables (unchanged) plus invented LB, AE and MH rows for its 15 subjects
    (`adapter.testing.cohort.clinical_tables`): the shipped cohort itself has none."""
    from adapter.tables import read_trial
    from adapter.testing.cohort import clinical_tables, write_csv_folder

    folder = tmp_path_factory.mktemp("shipped-clinical")
    for path in SHIPPED.glob("*.csv"):
        shutil.copyfile(path, folder / path.name)
    tables = {domain: table.rows for domain, table in read_trial(SHIPPED).items()}
    write_csv_folder(clinical_tables(tables, CLINICAL_SEED), folder)
    return folder
