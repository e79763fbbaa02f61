"""Shared fixtures for the mapping tests: R4B validation and the reconstructed Dalakas 1993 cohort."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from mappings.sdtm import Trial

FIXTURE = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"


def validate_r4b(resource: dict[str, Any]) -> None:
    """Raise (pydantic ValidationError) unless `resource` is valid for its fhir.resources R4B model."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.fixture(scope="session")
def validate() -> Callable[[dict[str, Any]], None]:
    return validate_r4b


@pytest.fixture(scope="session")
def dalakas_trial() -> Trial:
    """The reconstructed cohort as the tables layer reads it (every domain file of the fixture)."""
    from adapter.tables import read_trial

    return read_trial(FIXTURE)
