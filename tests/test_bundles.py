"""The Bundle rule (adapter.bundles): one home, used by the files and the client alike."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapter import bundles, fhir_files
from adapter.client import transaction_bundle

ROOT = Path(__file__).resolve().parents[1]
STUDY = {
    "resourceType": "ResearchStudy",
    "id": "0b1e4a52-7f5c-5b7e-9a53-6c1f0d9e2a11",
    "identifier": [{"system": "https://trialfhir.org/fhir/sid/studyid", "value": "S 1|2,$"}],
}
CODESYSTEM = {
    "resourceType": "CodeSystem",
    "id": "trialfhir",
    "url": "https://trialfhir.org/fhir/CodeSystem/trialfhir",
    "version": "0.1.0",
}


def test_a_written_bundle_entry_is_the_clients() -> None:
    """fullUrl and request alike (the requests in every mode: test_fhir_files)."""
    for resource in (STUDY, CODESYSTEM):
        assert fhir_files.bundle_entry(resource) == transaction_bundle([resource])["entry"][0]


def test_full_url_names_the_resource_on_the_server_when_a_base_is_given() -> None:
    assert bundles.full_url(STUDY, "http://h/fhir/") == f"http://h/fhir/ResearchStudy/{STUDY['id']}"
    assert bundles.full_url(STUDY) == f"urn:uuid:{STUDY['id']}"
    assert bundles.full_url(CODESYSTEM) == bundles.full_url(dict(CODESYSTEM))
    assert bundles.full_url(CODESYSTEM).startswith("urn:uuid:")
    assert bundles.full_url({"resourceType": "Patient"}) != bundles.full_url(
        {"resourceType": "Patient"}
    )


def test_one_business_identifier_rule() -> None:
    resource = {
        "resourceType": "Patient",
        "identifier": [
            {"value": "no system"},
            {"system": "a", "value": "1"},
            {"system": "b", "value": "2"},
        ],
    }
    assert bundles.business_identifier(resource) == ("a", "1")
    assert bundles.business_identifier(resource, "b") == ("b", "2")
    assert bundles.business_condition(resource) == [("identifier", "a|1")]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", ["bundles", "fhir_query", "fhir_files"])
def test_the_rule_and_the_files_import_nothing_of_the_client(module: str) -> None:
    imported = _imports(ROOT / "adapter" / f"{module}.py")
    assert not {name for name in imported if name.startswith("adapter.client")}
    if module != "fhir_files":  # the files hand resources to the trial assembler
        assert not {name for name in imported if name.startswith("mappings")}


def test_writing_a_bundle_does_not_load_the_client() -> None:
    code = (
        "import sys\n"
        "from adapter.fhir_files import bundle_entry\n"
        "bundle_entry({'resourceType': 'Patient', 'id': 'p', 'identifier': [{'system': 's', 'value': 'v'}]})\n"
        "print(sorted(m for m in sys.modules if m.startswith(('adapter.client', 'httpx'))))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"
