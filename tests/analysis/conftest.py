"""Shared fixtures for the analysis tests: the study definition and the reconstructed cohort."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.analysis import StudyDefinition, load_definition
from mappings.sdtm import Trial

FIXTURE = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"


def read_tables(folder: Path) -> Trial:
    """The trial tables of an SDTM folder, as the analysis receives them."""
    from adapter.tables import read_trial

    return read_trial(folder)


@pytest.fixture(scope="session")
def definition() -> StudyDefinition:
    return load_definition(FIXTURE / "study.json")


@pytest.fixture(scope="session")
def cohort() -> Trial:
    return read_tables(FIXTURE)
