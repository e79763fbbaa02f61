"""Every resource the adapter emits for the reconstructed cohort passes HAPI's `$validate`.

The project CodeSystem is stored first, so HAPI can check the project codes and their displays. A
resource passes when HAPI reports no issue of severity `error` or `fatal`; warnings and information
are allowed (their distinct texts are listed in docs/hapi.md). A deliberately broken resource must
fail, so the check is known to bite.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.client import FhirClient, Issue
from adapter.tables import read_trial
from mappings.study import codesystem
from mappings.trial import trial_to_fhir

pytestmark = pytest.mark.hapi

FIXTURE = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"

JSON = dict[str, Any]


@pytest.fixture(scope="module")
def emitted() -> list[JSON]:
    return list(trial_to_fhir(read_trial(FIXTURE)))


@pytest.fixture(scope="module")
def client(hapi_base_url: str, hapi_clean: None) -> Iterator[FhirClient]:
    with FhirClient(hapi_base_url) as fhir:
        fhir.update(codesystem())
        yield fhir


@pytest.fixture(scope="module")
def outcomes(client: FhirClient, emitted: list[JSON]) -> list[tuple[JSON, list[Issue]]]:
    """Each emitted resource with the issues HAPI's $validate reported for it."""
    return [(resource, client.validate(resource)) for resource in emitted]


def describe(resource: JSON, issue: Issue) -> str:
    where = ",".join(issue.expression) or "-"
    return f"{resource['resourceType']} [{issue.severity}/{issue.code}] at {where}: {issue.text}"


def test_the_project_codesystem_is_stored(client: FhirClient) -> None:
    stored = client.read("CodeSystem", codesystem()["id"])
    assert stored["url"] == codesystem()["url"]
    assert len(stored["concept"]) == len(codesystem()["concept"])


def test_every_resource_type_of_the_cohort_is_checked(
    outcomes: list[tuple[JSON, list[Issue]]],
) -> None:
    checked = Counter(resource["resourceType"] for resource, _ in outcomes)
    # The cohort uses every family: a type missing here means a family emitted nothing.
    for resource_type in (
        "ResearchStudy",
        "Patient",
        "ResearchSubject",
        "Condition",
        "Observation",
        "MedicationAdministration",
        "Procedure",
        "Specimen",
        "DiagnosticReport",
    ):
        assert checked[resource_type] > 0, f"no {resource_type} was emitted for the cohort"


def test_no_resource_has_an_error_or_fatal_issue(
    outcomes: list[tuple[JSON, list[Issue]]],
) -> None:
    errors = Counter(
        describe(resource, issue)
        for resource, issues in outcomes
        for issue in issues
        if issue.is_error
    )
    listed = "\n".join(f"{n} x {text}" for text, n in errors.most_common(20))
    assert not errors, f"{sum(errors.values())} error issues:\n{listed}"


def test_validate_reports_errors_for_a_broken_observation(
    client: FhirClient, emitted: list[JSON]
) -> None:
    observation = next(r for r in emitted if r["resourceType"] == "Observation")
    broken = {k: v for k, v in observation.items() if k not in ("status", "code")}
    issues = client.validate(broken)
    errors = [issue for issue in issues if issue.is_error]
    assert errors, "HAPI accepted an Observation without status and code"
    assert any("status" in issue.text or "code" in issue.text for issue in errors)


def test_validate_reports_an_unknown_project_code(client: FhirClient, emitted: list[JSON]) -> None:
    """The stored CodeSystem is really consulted: a code it does not define is flagged."""
    project = codesystem()["url"]
    observation = next(
        r
        for r in emitted
        if r["resourceType"] == "Observation"
        and any(c.get("system") == project for c in r["code"].get("coding", ()))
    )
    coding = [
        {**c, "code": "NOT-A-TRIALFHIR-CODE"} if c.get("system") == project else c
        for c in observation["code"]["coding"]
    ]
    changed = {**observation, "code": {**observation["code"], "coding": coding}}
    issues = client.validate(changed)
    flagged = [i for i in issues if i.severity in ("warning", "error", "fatal")]
    assert any("NOT-A-TRIALFHIR-CODE" in i.text for i in flagged), [i.text for i in issues]
