"""FHIR files (adapter.fhir_files): NDJSON folders and Bundles, written and read without losing a
decimal's written text; and the opt-in R4B validation (adapter.validation)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.fhir_files import (
    BundleWriter,
    FhirFileError,
    ReadStats,
    bundle_entry,
    entry_request,
    read_resources,
    write_bundle,
    write_ndjson,
)
from adapter.fhir_json import SUSPECT_NUMBER, DecimalText, dumps, has_suspect_number, loads
from adapter.validation import validate_all, validate_resource

PATIENT_ID = "0b1e4a52-7f5c-5b7e-9a53-6c1f0d9e2a11"
OBS_IDS = [f"5e3a{n:04d}-1111-5222-8333-444455556666" for n in range(4)]
TRICKY = ["74.50", "1E+3", "0.000010", "12345678901234567.5"]


def observation(index: int, value: Decimal | float | int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": OBS_IDS[index],
        "status": "final",
        "code": {"text": "Weight"},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "valueQuantity": {"value": value, "unit": "kg"},
    }


def patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "id": PATIENT_ID, "gender": "female"}


def values(resources: list[dict[str, Any]]) -> list[str]:
    return [
        str(r["valueQuantity"]["value"]) for r in resources if r["resourceType"] == "Observation"
    ]


# --- writing -------------------------------------------------------------------------------------------


def test_decimals_are_written_as_their_text() -> None:
    assert dumps({"v": Decimal("74.50")}) == b'{"v":74.50}'
    assert dumps([Decimal("1E+3"), Decimal("0.000010")]) == b"[1E+3,0.000010]"
    assert dumps(DecimalText("0.0000001")) == b"0.0000001"


def test_a_decimal_that_is_not_finite_is_refused() -> None:
    with pytest.raises(TypeError):
        dumps({"v": Decimal("NaN")})


def test_ndjson_has_one_file_per_resource_type_and_returns_counts(tmp_path: Path) -> None:
    def stream() -> Any:
        yield patient()
        for n, text in enumerate(TRICKY):
            yield observation(n, Decimal(text))

    counts = write_ndjson(stream(), tmp_path)
    assert counts == {"Patient": 1, "Observation": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Observation.ndjson", "Patient.ndjson"]
    lines = (tmp_path / "Observation.ndjson").read_bytes().splitlines()
    assert len(lines) == 4
    assert lines[0].endswith(b'"valueQuantity":{"value":74.50,"unit":"kg"}}')


def test_transaction_bundle_entries_have_urn_uuid_full_urls_and_requests(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    counts = write_bundle([patient(), observation(0, Decimal("74.50"))], path)
    assert counts == {"Patient": 1, "Observation": 1}
    bundle = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    first, second = bundle["entry"]
    assert first["fullUrl"] == f"urn:uuid:{PATIENT_ID}"
    assert second["request"] == entry_request(observation(0, 1))
    assert str(second["resource"]["valueQuantity"]["value"]) == "74.50"


IDENTIFIED = {
    "resourceType": "Observation",
    "id": OBS_IDS[0],
    "identifier": [
        {"value": "no system"},
        {"system": "https://trialfhir.org/fhir/sid/sdtm/qs", "value": "S 1/S%2F1-001/2,|$x"},
    ],
}


def test_entries_are_conditional_updates_on_the_business_identifier() -> None:
    request = entry_request(IDENTIFIED)
    assert request["method"] == "PUT"
    assert request["url"] == (
        "Observation?identifier=https://trialfhir.org/fhir/sid/sdtm/qs%7C"
        "S%201/S%252F1-001/2%5C,%5C%7C%5C%24x"
    )


CODESYSTEM = {
    "resourceType": "CodeSystem",
    "id": "trialfhir",
    "url": "https://trialfhir.org/fhir/CodeSystem/trialfhir",
    "version": "0.1.0",
}


@pytest.mark.parametrize("resource", [IDENTIFIED, CODESYSTEM], ids=["identifier", "canonical"])
@pytest.mark.parametrize("mode", ["conditional-update", "conditional-create", "update"])
def test_entry_requests_are_the_clients_in_every_mode(
    mode: str, resource: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapter.fhir_files as fhir_files
    from adapter.client import transaction_bundle

    monkeypatch.setattr(fhir_files, "BUNDLE_ENTRY_MODE", mode)
    expected = transaction_bundle([resource], mode=mode)["entry"][0]["request"]  # type: ignore[arg-type]
    assert entry_request(resource) == expected


def test_a_canonical_resource_is_matched_on_its_url() -> None:
    assert entry_request(CODESYSTEM)["url"].startswith(
        "CodeSystem?url=https://trialfhir.org/fhir/CodeSystem/trialfhir"
    )


def test_a_resource_with_neither_identifier_nor_url_is_written_by_id() -> None:
    assert entry_request(patient()) == {"method": "PUT", "url": f"Patient/{PATIENT_ID}"}


@pytest.mark.parametrize("bundle_type", ["transaction", "collection"])
def test_a_bundle_written_beside_the_ndjson_has_the_bytes_of_write_bundle(
    tmp_path: Path, bundle_type: Any
) -> None:
    """`write_ndjson(..., bundle=)` serialises each resource once for both files; the Bundle must be
    byte for byte what `write_bundle` writes (fullUrl of a non-UUID id, a canonical's url condition,
    a decimal's text)."""
    codesystem = {"resourceType": "CodeSystem", "id": "trialfhir", "url": "https://x.org/cs"}
    resources = [patient(), codesystem, *(observation(n, Decimal(t)) for n, t in enumerate(TRICKY))]
    resources[2]["identifier"] = [{"system": "https://x.org/sid", "value": "S1/0001/1"}]
    resources[3]["identifier"] = [{"system": "https://x.org/sid", "value": 'a|b,c "q" é'}]
    write_bundle(resources, tmp_path / "alone.json", type=bundle_type)
    with BundleWriter(tmp_path / "beside.json", bundle_type) as bundle:
        counts = write_ndjson(resources, tmp_path / "ndjson", bundle=bundle)
    assert (tmp_path / "beside.json").read_bytes() == (tmp_path / "alone.json").read_bytes()
    assert bundle.counts == counts == {"Patient": 1, "CodeSystem": 1, "Observation": 4}


@pytest.mark.parametrize(
    "identifier",
    [
        [{"system": "https://x.org/sid", "value": "S1/0001-A/1"}],
        [{"system": "https://x.org/sid", "value": "a|b,c$d\\e f+g%"}],
        [{"system": "", "value": "v"}],
        [{"value": "v"}, {"system": "https://x.org/sid", "value": "second"}],
        [{"system": "https://x.org/sid", "value": 3}],
        {"system": "https://x.org/sid", "value": "one object"},
        [],
    ],
)
def test_the_fast_entry_request_is_the_general_rule(identifier: Any) -> None:
    """`entry_request` builds a plain identifier's conditional URL itself; it must be what
    `adapter.bundles.entry_request` says for every identifier (escaped, quoted, not first, none)."""
    from adapter import bundles

    resource = {"resourceType": "Observation", "id": OBS_IDS[0], "identifier": identifier}
    expected = bundles.entry_request(resource, "conditional-update")
    if isinstance(expected, str):
        expected = bundles.entry_request(resource, "update")
    assert entry_request(resource) == expected


def test_a_collection_bundle_has_no_requests(tmp_path: Path) -> None:
    write_bundle([patient()], tmp_path / "c.json", type="collection")
    entry = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))["entry"][0]
    assert "request" not in entry


def test_an_id_that_is_not_a_uuid_gets_a_stable_name_based_full_url() -> None:
    resource = {"resourceType": "Patient", "id": "p-1"}
    first = bundle_entry(resource)["fullUrl"]
    assert first.startswith("urn:uuid:") and first == bundle_entry(resource)["fullUrl"]
    assert first != bundle_entry({"resourceType": "Patient", "id": "p-2"})["fullUrl"]


def test_an_empty_bundle_is_valid_json(tmp_path: Path) -> None:
    write_bundle([], tmp_path / "empty.json")
    assert json.loads((tmp_path / "empty.json").read_text(encoding="utf-8"))["entry"] == []


# --- reading -------------------------------------------------------------------------------------------


def test_an_ndjson_folder_is_read_file_by_file(tmp_path: Path) -> None:
    write_ndjson([patient(), observation(0, Decimal("74.50"))], tmp_path)
    stats = ReadStats()
    read = list(read_resources(tmp_path, stats))
    assert sorted(r["resourceType"] for r in read) == ["Observation", "Patient"]
    assert stats.resources == 2 and len(stats.files) == 2


def test_a_single_ndjson_file_is_read_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "some.ndjson"
    path.write_bytes(dumps(patient()) + b"\n\n" + dumps(observation(1, 2)) + b"\n   \n")
    assert [r["resourceType"] for r in read_resources(path)] == ["Patient", "Observation"]


def test_an_ndjson_folder_ignores_the_bundle_beside_it(tmp_path: Path) -> None:
    resources = [patient(), observation(0, Decimal("1.5"))]
    write_ndjson(resources, tmp_path)
    write_bundle(resources, tmp_path / "bundle.json")
    assert len(list(read_resources(tmp_path))) == 2


def test_a_transaction_bundle_file_gives_its_resources(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    write_bundle([patient(), observation(0, Decimal("74.50"))], path)
    read = list(read_resources(path))
    assert [r["resourceType"] for r in read] == ["Patient", "Observation"]
    assert values(read) == ["74.50"]


def test_a_searchset_skips_and_counts_its_operation_outcomes(tmp_path: Path) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "x"}]}
    searchset = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": patient(), "search": {"mode": "match"}},
            {"resource": observation(2, 3.5), "search": {"mode": "include"}},
            {"resource": outcome, "search": {"mode": "outcome"}},
        ],
    }
    path = tmp_path / "page.json"
    path.write_text(json.dumps(searchset, indent=2), encoding="utf-8")
    stats = ReadStats()
    read = list(read_resources(path, stats))
    assert [r["resourceType"] for r in read] == ["Patient", "Observation"]
    assert stats.outcomes_skipped == 1


def test_a_folder_of_bundle_files_is_read_in_name_order(tmp_path: Path) -> None:
    write_bundle([observation(0, 1)], tmp_path / "b.json", type="collection")
    write_bundle([patient()], tmp_path / "a.json", type="batch")
    assert [r["resourceType"] for r in read_resources(tmp_path)] == ["Patient", "Observation"]


def test_a_single_resource_json_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "patient.json").write_bytes(dumps(patient()))
    assert list(read_resources(tmp_path / "patient.json")) == [patient()]


def test_a_line_that_is_not_json_is_named_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "Observation.ndjson"
    path.write_bytes(dumps(observation(0, 1)) + b"\n" + b'{"resourceType": "Observ\n')
    with pytest.raises(FhirFileError) as caught:
        list(read_resources(tmp_path))
    assert (caught.value.path, caught.value.line) == (str(path), 2)
    assert str(caught.value).startswith(f"{path}, line 2: not JSON")


def test_a_line_with_a_suspect_number_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_bytes(b'{"resourceType":"Basic","v":74.50,}\n')
    with pytest.raises(FhirFileError) as caught:
        list(read_resources(path))
    assert caught.value.line == 1


def test_a_line_that_is_not_a_resource_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_bytes(dumps(patient()) + b"\n" + b"[1, 2]\n")
    with pytest.raises(FhirFileError, match=r"line 2: not a FHIR resource"):
        list(read_resources(path))


def test_a_broken_bundle_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text('{"resourceType": "Bundle",\n "entry": [\n', encoding="utf-8")
    with pytest.raises(FhirFileError, match=r"bundle\.json.*not JSON"):
        list(read_resources(path))


def test_a_folder_without_fhir_files_is_named(tmp_path: Path) -> None:
    (tmp_path / "dm.csv").write_text("STUDYID\n", encoding="utf-8")
    with pytest.raises(FhirFileError, match=r"no \.ndjson or \.json files"):
        list(read_resources(tmp_path))


# --- precision -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_decimals_survive_ndjson_write_and_read(tmp_path: Path, text: str) -> None:
    write_ndjson([observation(0, Decimal(text))], tmp_path)
    (read,) = read_resources(tmp_path)
    assert str(read["valueQuantity"]["value"]) == text


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_decimals_survive_bundle_write_and_read(tmp_path: Path, text: str) -> None:
    write_bundle([observation(0, Decimal(text))], tmp_path / "b.json")
    assert values(list(read_resources(tmp_path / "b.json"))) == [text]


def test_read_then_write_gives_the_same_bytes(tmp_path: Path) -> None:
    original = b"".join(
        dumps(observation(n, Decimal(text))) + b"\n" for n, text in enumerate([*TRICKY[:3], "2.5"])
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "Observation.ndjson").write_bytes(original)
    write_ndjson(read_resources(tmp_path / "in"), tmp_path / "out")
    assert (tmp_path / "out" / "Observation.ndjson").read_bytes() == original


def test_a_plain_number_is_parsed_fast_as_float_or_int() -> None:
    parsed = loads(b'{"a":74.5,"b":3,"c":[0.25]}')
    assert parsed == {"a": 74.5, "b": 3, "c": [0.25]}
    assert type(parsed["a"]) is float


def test_a_suspect_number_is_parsed_as_exact_text() -> None:
    parsed = loads(b'{"a":74.50,"b":3}')
    assert isinstance(parsed["a"], DecimalText) and str(parsed["a"]) == "74.50"
    assert parsed["a"] == Decimal("74.5")


def test_a_uuid_that_looks_like_an_exponent_is_not_a_suspect() -> None:
    line = b'{"fullUrl":"urn:uuid:5e3a0000-1111-5222-8333-444455556666","ref":"Patient/1e5"}'
    assert SUSPECT_NUMBER.search(line) is None
    assert not has_suspect_number(line)


def test_negative_zero_keeps_its_sign() -> None:
    assert dumps(loads(b'{"v":-0}')) == b'{"v":-0}'


DECIMAL_TEXT = st.from_regex(r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?\Z")


@settings(max_examples=200, deadline=None)
@given(DECIMAL_TEXT)
def test_any_decimal_text_survives_json_read_then_write(text: str) -> None:
    line = b'{"resourceType":"Basic","v":' + text.encode() + b',"w":[' + text.encode() + b"]}"
    assert dumps(loads(line)) == line


@pytest.mark.parametrize("text", ["1e-6", "1.5e-7", "2E+3", "7e16"])
def test_a_number_with_an_exponent_reads_back_as_written(text: str, tmp_path: Path) -> None:
    # orjson writes 1e-6 back as it was, but the float it parsed prints as 1e-06 in Python
    write_ndjson([{"resourceType": "Basic", "v": DecimalText(text)}], tmp_path)
    (read,) = read_resources(tmp_path)
    assert str(read["v"]) == text


@settings(max_examples=200, deadline=None)
@given(DECIMAL_TEXT)
def test_any_decimal_text_survives_ndjson_write_then_read(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        write_ndjson([{"resourceType": "Basic", "v": DecimalText(text)}], folder)
        (read,) = read_resources(folder)
    assert str(read["v"]) == text


@settings(max_examples=200, deadline=None)
@given(DECIMAL_TEXT)
def test_a_number_the_guard_lets_through_prints_as_written(text: str) -> None:
    for line in (
        b'{"v":' + text.encode() + b"}",
        b'{"v": [2, ' + text.encode() + b"]}",
        b'{"v":{"w":' + text.encode() + b', "x":"y"}}',
    ):
        if not has_suspect_number(line):
            value = orjson.loads(line)["v"]
            while not isinstance(value, int | float):
                value = value[-1] if isinstance(value, list) else value["w"]
            assert (repr(value) if isinstance(value, float) else str(value)) == text


def test_the_fast_guard_agrees_with_the_full_scan_on_fhir_shapes() -> None:
    for text in [*TRICKY, "-0", "0.00001", "1.0", "74.5", "3"]:
        for line in (
            b'{"value":' + text.encode() + b"}",
            b'{"a":[{"value": ' + text.encode() + b"}]}",
            b'{"data":[' + text.encode() + b"," + text.encode() + b"]}",
        ):
            assert has_suspect_number(line) == (SUSPECT_NUMBER.search(line) is not None), line


# --- validation ----------------------------------------------------------------------------------------


def test_a_valid_resource_has_no_problems() -> None:
    assert validate_resource(observation(0, Decimal("74.50"))) == []


def test_an_unknown_element_is_a_problem() -> None:
    problems = validate_resource({**patient(), "colour": "blue"})
    assert len(problems) == 1 and problems[0].startswith("colour:")


def test_a_missing_required_element_is_a_problem() -> None:
    resource = observation(0, 1)
    del resource["status"]
    assert any(p.startswith("status") for p in validate_resource(resource))


def test_an_unknown_resource_type_is_a_problem() -> None:
    assert "not an R4B resource type" in validate_resource({"resourceType": "Gizmo"})[0]


def test_validate_all_counts_per_type() -> None:
    bad = {**patient(), "colour": "blue"}
    summary = validate_all([patient(), bad, observation(0, 1)])
    assert summary["resources"] == 3 and summary["invalid"] == 1
    assert summary["by_type"] == {
        "Observation": {"resources": 1, "invalid": 0},
        "Patient": {"resources": 2, "invalid": 1},
    }
    assert summary["problems"] == [f"Patient/{PATIENT_ID}: colour: Extra inputs are not permitted"]


def test_a_bundle_interrupted_while_writing_is_not_valid_json(tmp_path: Path) -> None:
    def failing() -> Any:
        yield patient()
        raise RuntimeError("the mapping failed")

    path = tmp_path / "bundle.json"
    with pytest.raises(RuntimeError):
        write_bundle(failing(), path)
    with pytest.raises(json.JSONDecodeError):
        json.loads(path.read_text(encoding="utf-8"))


def test_a_written_bundle_is_read_line_by_line_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    write_bundle([patient(), *(observation(n, Decimal("74.50")) for n in range(4))], path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4][:40] + b"\n"  # entry 4 is on line 5
    path.write_bytes(b"".join(lines))
    read: list[dict[str, Any]] = []
    with pytest.raises(FhirFileError) as caught:
        read.extend(read_resources(path))
    assert (caught.value.path, caught.value.line) == (str(path), 5)
    assert len(read) == 3  # streamed: what came before the broken line was already yielded


def test_an_unfinished_written_bundle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    write_bundle([patient(), observation(0, 1)], path)
    path.write_bytes(path.read_bytes().removesuffix(b"\n]}\n"))
    with pytest.raises(FhirFileError, match="never ends"):
        list(read_resources(path))


def test_a_one_line_compact_bundle_is_read_whole(tmp_path: Path) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient()}]}
    (tmp_path / "b.json").write_bytes(dumps(bundle))
    assert list(read_resources(tmp_path / "b.json")) == [patient()]


@pytest.mark.parametrize(
    ("line", "exact"),
    [
        (b'{"resourceType":"Patient","id":"30248113-cdc6-54f7-b9ba-9488e79ad51a"}', False),
        (b'{"v":"8e5"}', False),
        (b'{"v":1e-7}', True),
        (b'{"v":[1,2e16]}', True),
        (b'{"v":{"w":-1.5E+3}}', True),
        (b'{"v":[{"w":1},-2.5e-9]}', True),  # an array that does not start with a number
        (b'{"v":"urn:example"}', True),  # a false alarm (costs speed only): the parse is the same
        (b'{"v":"a:8"}', False),
    ],
)
def test_only_a_number_with_an_exponent_sends_a_line_to_the_exact_parser(
    line: bytes, exact: bool
) -> None:
    """The exponent check looks where a JSON value starts: the hex digits of a UUID (`8e79`) or a
    string like "8e5" are not numbers (they once sent three lines in four to the slow parser)."""
    from adapter import fhir_json

    assert fhir_json._has_exponent_number(line) is exact
    parsed, written = fhir_json.loads_line_written(line)
    assert (written is None) is exact
    assert fhir_json.dumps(parsed) == line
