"""Shared helpers for the client tests: a fake FHIR base, searchset pages, a sleep recorder."""

from __future__ import annotations

from typing import Any

import pytest

BASE = "http://fhir.test/fhir"


def outcome(
    diagnostics: str, *, severity: str = "error", code: str = "processing"
) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def searchset(
    resources: list[dict[str, Any]],
    *,
    next_url: str | None = None,
    total: int | None = None,
    include: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    entries = [
        {
            "fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    entries += [
        {
            "fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "include"},
        }
        for r in include or []
    ]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    bundle["link"] = [{"relation": "self", "url": f"{BASE}/Patient"}]
    if next_url:
        bundle["link"].append({"relation": "next", "url": next_url})
    if total is not None:
        bundle["total"] = total
    return bundle


def patient(pid: str, value: str = "") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:trial:usubjid", "value": value or f"DM-{pid}"}],
    }


class SleepRecorder:
    """A sleep that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()
