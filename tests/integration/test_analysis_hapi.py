"""The reanalysis (endpoints E1-E8) on the cohort pulled back from a live HAPI FHIR JPA server gives the
same results.json `endpoints` as on the SDTM folder it was pushed from.

The comparison is on the JSON text of each endpoint (values, methods, exclusions, null reasons,
agreement, supplementary), so a decimal that changed on the way (`74.50` read back as a float, a
lost partial date) shows up as a different number or a different exclusion.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapter.analysis import analyze, load_definition
from adapter.client import FhirClient
from adapter.sources import detect
from adapter.tables import read_trial
from adapter.transfer import pull_study, push
from mappings.trial import fhir_to_trial

pytestmark = pytest.mark.hapi

FIXTURE = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"
STUDYID = "DALAKAS1993"


@pytest.fixture(scope="module")
def from_folder() -> dict[str, Any]:
    definition = load_definition(FIXTURE / "study.json")
    results = analyze(read_trial(FIXTURE), definition, str(FIXTURE))
    return dict(json.loads(results.to_json())["endpoints"])


@pytest.fixture(scope="module")
def from_server(hapi_base_url: str, hapi_clean: None) -> dict[str, Any]:
    with FhirClient(hapi_base_url) as client:
        summary = push(client, detect(FIXTURE).resources())
    assert summary.failed == []
    pulled = pull_study(hapi_base_url, STUDYID)
    definition = load_definition(FIXTURE / "study.json")
    results = analyze(fhir_to_trial(pulled.resources), definition, hapi_base_url)
    return dict(json.loads(results.to_json())["endpoints"])


def test_the_folder_analysis_computes_something(from_folder: dict[str, Any]) -> None:
    """Guard: if every value were null the comparison below would prove nothing."""
    assert len(from_folder) >= 8
    computed = [
        name
        for endpoint in from_folder.values()
        for name, value in endpoint["values"].items()
        if value is not None
    ]
    assert len(computed) >= 8


def test_same_endpoints(from_folder: dict[str, Any], from_server: dict[str, Any]) -> None:
    assert sorted(from_server) == sorted(from_folder)


@pytest.mark.parametrize("endpoint", [f"E{n}" for n in range(1, 9)])
def test_each_endpoint_is_identical(
    endpoint: str, from_folder: dict[str, Any], from_server: dict[str, Any]
) -> None:
    assert endpoint in from_folder, f"the folder analysis has no {endpoint}"
    assert from_server.get(endpoint) == from_folder[endpoint]
