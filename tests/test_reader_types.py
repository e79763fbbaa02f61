"""Elements of the adapter's own profile holding what R4 does not allow there (issue 8, case 4, deeper
than the top level): a number, object, null or empty value where R4 has a string, an extension whose
`url` is null, a NUL or a lone surrogate. Each is refused naming the element (the library) and, from a
file, naming file and line (`convert`, `analyze`, exit 3): never read with `str()`, never skipped so
that a row changes, never a crash when the cell is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from adapter import fhir_json
from adapter.cli import main
from adapter.fhir_files import FhirFileError, read_trial_resources, write_ndjson
from adapter.tables import read_trial
from mappings.trial import ResourceRefused, fhir_to_trial, trial_to_fhir

SMALL = Path(__file__).parent / "data" / "sdtm_small"
JSON = dict[str, Any]


@pytest.fixture(scope="module")
def resources() -> list[JSON]:
    return list(trial_to_fhir(read_trial(SMALL)))


def first(resources: list[JSON], kind: str, domain: str) -> int:
    return next(
        i
        for i, r in enumerate(resources)
        if r["resourceType"] == kind
        and r.get("identifier", [{}])[0].get("system", "").endswith("/" + domain)
    )


def edited(
    resources: list[JSON], index: int, path: tuple[str | int, ...], value: Any
) -> list[JSON]:
    changed: list[JSON] = fhir_json.loads(
        fhir_json.dumps(resources)
    )  # no shared parts (study links are)
    target: Any = changed[index]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


CASES = [  # (resource type, domain, path, value, element named)
    ("Observation", "vs", ("code", "text"), 7, "Observation.code.text"),
    ("Observation", "vs", ("code", "text"), {"a": 1}, "Observation.code.text"),
    ("Observation", "vs", ("code", "text"), "", "Observation.code.text"),
    ("Observation", "vs", ("code", "text"), None, "Observation.code.text"),
    (
        "Observation",
        "vs",
        ("code", "coding", 0, "system"),
        None,
        "Observation.code.coding[0].system",
    ),
    ("Observation", "vs", ("valueQuantity", "unit"), 1.5, "Observation.valueQuantity.unit"),
    ("Observation", "vs", ("extension", 0, "url"), None, "Observation.extension[0].url"),
    ("Observation", "vs", ("code",), {}, "Observation.code"),
    ("Observation", "vs", ("code", "text"), "a\x00b", "Observation.code.text"),
    ("Observation", "vs", ("code", "text"), "\ud800", "Observation.code.text"),
    ("MedicationAdministration", "ex", ("dosage", "route", "text"), 7, "dosage.route.text"),
    ("MedicationAdministration", "ex", ("dosage", "route"), None, "dosage.route"),
    ("MedicationAdministration", "ex", ("effectivePeriod", "start"), 20, "effectivePeriod.start"),
]


@pytest.mark.parametrize(("kind", "domain", "path", "value", "element"), CASES)
def test_a_value_r4_does_not_allow_is_refused_by_element(
    resources: list[JSON],
    kind: str,
    domain: str,
    path: tuple[str | int, ...],
    value: Any,
    element: str,
) -> None:
    index = first(resources, kind, domain)
    with pytest.raises(ResourceRefused) as refused:
        fhir_to_trial(edited(resources, index, path, value))
    assert refused.value.element.endswith(element), refused.value


def test_a_number_as_the_project_code_is_refused(resources: list[JSON]) -> None:
    index = first(resources, "Observation", "vs")
    codings = resources[index]["code"]["coding"]
    at = next(i for i, c in enumerate(codings) if c["system"].endswith("CodeSystem/trialfhir"))
    with pytest.raises(ResourceRefused) as refused:
        fhir_to_trial(edited(resources, index, ("code", "coding", at, "code"), 7))
    assert refused.value.element == f"Observation.code.coding[{at}].code"


def test_an_extension_url_of_null_deep_in_an_extension_is_refused(resources: list[JSON]) -> None:
    index = first(resources, "MedicationAdministration", "ex")
    extensions = resources[index]["extension"]
    nested = next(i for i, e in enumerate(extensions) if "extension" in e)
    changed = edited(resources, index, ("extension", nested, "extension", 0, "url"), None)
    with pytest.raises(ResourceRefused) as refused:
        fhir_to_trial(changed)
    assert refused.value.element == f"MedicationAdministration.extension[{nested}].extension[0].url"
    assert "null" in refused.value.reason


def test_a_layout_column_without_its_name_is_refused(resources: list[JSON]) -> None:
    index = next(i for i, r in enumerate(resources) if r["resourceType"] == "ResearchStudy")
    study = fhir_json.loads(fhir_json.dumps(resources[index]))
    layout = next(e for e in study["extension"] if e["url"].endswith("sdtm-table"))
    column = next(p for p in layout["extension"] if p["url"] == "column")
    column["valueRtring"] = column.pop("valueString")  # a flipped bit in the file
    with pytest.raises(ResourceRefused, match="column"):
        fhir_to_trial([*resources[:index], study, *resources[index + 1 :]])


def bad_folder(tmp_path: Path, resources: list[JSON], value: Any) -> tuple[Path, int]:
    """A FHIR folder whose VS Observation has `value` as code.text; its line in Observation.ndjson."""
    index = first(resources, "Observation", "vs")
    folder = tmp_path / "fhir"
    surrogate = isinstance(value, str) and "\ud800" in value
    write_ndjson(edited(resources, index, ("code", "text"), "X" if surrogate else value), folder)
    lines = (folder / "Observation.ndjson").read_bytes().splitlines()
    wanted = orjson.dumps(resources[index]["id"])
    line = next(n for n, text in enumerate(lines, start=1) if wanted in text)
    if surrogate:  # orjson cannot write it: the escape, by hand
        text = lines[line - 1].replace(b'"text":"X"', b'"text":"\\ud800"')
        lines[line - 1] = text
        (folder / "Observation.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return folder, line


def test_a_lone_surrogate_in_a_file_is_named_by_file_line_and_element(
    tmp_path: Path, resources: list[JSON]
) -> None:
    folder, line = bad_folder(tmp_path, resources, "X\ud800")
    with pytest.raises(FhirFileError) as refused:
        read_trial_resources(folder)
    message = str(refused.value)
    assert f"Observation.ndjson, line {line}" in message
    assert "Observation.code.text" in message and "surrogate" in message
    result = CliRunner().invoke(
        main, ["convert", str(folder), "--to", "sdtm", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 3, result.output
    assert f"line {line}" in result.output and "Observation.code.text" in result.output
    assert not (tmp_path / "o").exists()


def test_analyze_of_a_fhir_folder_names_file_and_line(
    tmp_path: Path, resources: list[JSON]
) -> None:
    folder, line = bad_folder(tmp_path, resources, 7)
    result = CliRunner().invoke(
        main, ["analyze", str(folder), "--definition", "dalakas1993", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 3, result.output
    assert f"Observation.ndjson, line {line}" in result.output
    assert "Observation.code.text" in result.output
    assert "Traceback" not in result.output


def test_the_codec_refuses_a_lone_surrogate_whichever_parser_runs() -> None:
    """orjson refuses `\\ud800` alone; the exact parser (a body with a decimal such as 1.50) now does
    too, so a server's answer never carries one into a file that then cannot be written."""
    for body in (b'{"a": "\\ud800"}', b'{"a": "\\ud800", "b": 1.50}'):
        with pytest.raises(fhir_json.JSONDecodeErrors):
            fhir_json.loads(body)
    with pytest.raises(fhir_json.JSONLoneSurrogate) as refused:
        fhir_json.loads(b'{"a": 1.50,\n "b": "x\\udc00"}')
    assert refused.value.lineno == 2
    pair = fhir_json.loads(b'{"a": "\\ud83d\\ude00", "b": 1.50}')
    assert pair["a"] == "\U0001f600"
    escaped_backslash = fhir_json.loads(b'{"a": "\\\\ud800", "b": 1.50}')
    assert escaped_backslash["a"] == "\\ud800"
