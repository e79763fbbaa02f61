"""`push --concurrency 4` against a live HAPI: the same server contents as one transaction at a time
(the same resources, by type and id), and a re-push changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.client import FhirClient
from adapter.testing.hapi import expunge_everything

pytestmark = pytest.mark.hapi

FIXTURE = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"
TYPES = (
    "CodeSystem", "ResearchStudy", "Patient", "ResearchSubject", "Condition", "Specimen",
    "Observation", "MedicationAdministration", "Procedure", "DiagnosticReport",
)  # fmt: skip


def contents(base_url: str) -> dict[str, list[str]]:
    """The ids the server holds, per type."""
    with FhirClient(base_url, timeout=180) as client:
        return {
            rt: sorted(str(r["id"]) for r in client.search(rt).count(500).all()) for rt in TYPES
        }


def push(base_url: str, concurrency: int) -> str:
    result = CliRunner().invoke(
        main, ["push", str(FIXTURE), "--server", base_url, "--concurrency", str(concurrency)]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_push_concurrency_4_stores_what_one_at_a_time_stores(hapi_clean_base_url: str) -> None:
    serial_output = push(hapi_clean_base_url, 1)
    serial = contents(hapi_clean_base_url)
    assert sum(map(len, serial.values())) == 759
    expunge_everything(hapi_clean_base_url)
    assert sum(map(len, contents(hapi_clean_base_url).values())) == 0

    concurrent_output = push(hapi_clean_base_url, 4)
    assert contents(hapi_clean_base_url) == serial
    counted = re.findall(r"(\w+): created (\d+)", concurrent_output)
    assert counted == re.findall(r"(\w+): created (\d+)", serial_output)
    assert {rt: int(n) for rt, n in counted} == {rt: len(ids) for rt, ids in serial.items()}

    again = push(hapi_clean_base_url, 4)
    assert "created" not in again and "updated" not in again
    assert sum(int(n) for n in re.findall(r"unchanged (\d+)", again)) == 759
    assert contents(hapi_clean_base_url) == serial
