"""Hostile input files (issue 8): each is refused as bad input, through the library (the error names
file, line or row, element or variable, reason) and through `trialfhir convert` (exit 3, the same
message, the output folder untouched); or, where the input is valid, read without losing anything."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from adapter import fhir_json
from adapter.cli import main
from adapter.fhir_files import (
    MAX_BUNDLE_NESTING,
    FhirFileError,
    ReadStats,
    read_resources,
    write_ndjson,
)
from adapter.fhir_json import MAX_DEPTH, JSONNotANumber, JSONTooDeep, check_depth
from adapter.tables import read_trial
from mappings.trial import trial_to_fhir

DALAKAS = Path(__file__).resolve().parents[1] / "fixtures" / "dalakas1993"
SMALL = Path(__file__).parent / "data" / "sdtm_small"


def convert(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_refused(src: Path, out: Path, *expected: str, to: str = "sdtm") -> str:
    """`convert SRC --out OUT` exits 3 with every `expected` text in its message; OUT (created with
    one file of its own first) is left exactly as it was, and no staging folder is left beside it."""
    out.mkdir(exist_ok=True)
    (out / "keep.txt").write_text("mine")
    before = snapshot(out)
    siblings = sorted(p.name for p in out.parent.iterdir())
    result = convert(src, "--out", out, "--to", to, "--force")
    assert result.exit_code == 3, result.output
    for text in expected:
        assert text in result.output, result.output
    assert "Traceback" not in result.output
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == siblings
    return result.output


@pytest.fixture(scope="module")
def small_resources() -> list[dict[str, object]]:
    return list(trial_to_fhir(read_trial(SMALL)))


def one_line(path: Path, resources: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(fhir_json.dumps(r) + b"\n" for r in resources))
    return path


# --- JSON too deep, NaN / Infinity (the one codec guard: files and server bodies) --------------------


def deep(levels: int, inner: bytes = b"0.10") -> bytes:
    return b'{"a":' * levels + inner + b"}" * levels


@pytest.mark.parametrize("parse", [fhir_json.loads, fhir_json.loads_line, fhir_json.exact_loads])
def test_json_100000_deep_is_refused_by_every_parse_not_a_recursion_error(
    parse: Callable[[bytes], object],
) -> None:
    with pytest.raises(JSONTooDeep) as caught:
        parse(deep(100_000))
    assert isinstance(caught.value, json.JSONDecodeError)  # handled wherever bad JSON is
    assert isinstance(caught.value, fhir_json.JSONDecodeErrors)
    assert caught.value.lineno == 1
    assert caught.value.pos == 5 * MAX_DEPTH  # the first `{` beyond the limit


def test_the_depth_limit_is_exact_and_brackets_in_strings_do_not_count() -> None:
    check_depth(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    with pytest.raises(JSONTooDeep):
        check_depth(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    # alternating objects and arrays, as FHIR nests: one level each
    check_depth(b'[{"a":' * (MAX_DEPTH // 2) + b"1" + b"}]" * (MAX_DEPTH // 2))
    with pytest.raises(JSONTooDeep):
        check_depth(b'[{"a":' * (MAX_DEPTH // 2) + b"[1]" + b"}]" * (MAX_DEPTH // 2))
    # closing brackets inside a string do not hide depth, opening ones do not add any
    hidden = b'["' + b"]" * 500 + b'",' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"]"
    with pytest.raises(JSONTooDeep):
        check_depth(hidden)
    check_depth(b'["' + b"[" * 500 + b'"]')


def test_nan_and_infinity_are_not_json_numbers() -> None:
    for text in (b'{"value":NaN}', b'{"value":Infinity}', b'{"b":"NaN","value":-Infinity}'):
        for parse in (fhir_json.loads_line, fhir_json.exact_loads):
            with pytest.raises(JSONNotANumber) as caught:
                parse(text)
            assert caught.value.pos == text.index(b"NaN" if b"NaN}" in text else b"Inf") - (
                1 if b"-Inf" in text else 0
            )
        with pytest.raises(fhir_json.JSONDecodeErrors):
            fhir_json.loads(text)


def test_deep_json_in_an_ndjson_file_names_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "Observation.ndjson"
    source.write_bytes(b'{"resourceType":"Patient","id":"a"}\n' + deep(100_000) + b"\n")
    with pytest.raises(FhirFileError) as caught:
        list(read_resources(source))
    assert caught.value.line == 2
    assert f"nested deeper than {MAX_DEPTH} levels" in caught.value.reason
    assert_refused(source, tmp_path / "out", "Observation.ndjson, line 2", "nested deeper")


def test_deep_json_in_a_bundle_file_names_its_line(tmp_path: Path) -> None:
    source = tmp_path / "bundle.json"
    source.write_bytes(b'{"resourceType": "Bundle",\n "entry": [\n  ' + deep(5000) + b"]}")
    with pytest.raises(FhirFileError) as caught:
        list(read_resources(source))
    assert caught.value.line == 3
    assert_refused(source, tmp_path / "out", "bundle.json, line 3", "nested deeper")


def test_deep_json_in_a_streamed_bundle_line_names_it(tmp_path: Path) -> None:
    source = tmp_path / "bundle.json"
    entry = b'{"resource":' + b"[" * 200 + b"]" * 200 + b"}"
    source.write_bytes(
        b'{"resourceType":"Bundle","type":"collection","entry":[\n' + entry + b"\n]}\n"
    )
    with pytest.raises(FhirFileError) as caught:
        list(read_resources(source))
    assert caught.value.line == 2
    assert "nested deeper" in caught.value.reason


def test_nan_in_an_ndjson_line_names_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "Observation.ndjson"
    source.write_bytes(
        b'{"resourceType":"Patient","id":"a"}\n'
        b'{"resourceType":"Observation","valueQuantity":{"value":NaN}}\n'
    )
    assert_refused(
        source, tmp_path / "out", "Observation.ndjson, line 2", "NaN is not a JSON number"
    )


# --- Bundles nested in Bundles are read through ---------------------------------------------------------


def nest(resources: list[dict[str, object]], levels: int) -> dict[str, object]:
    """`resources` in a collection Bundle, that Bundle in another, `levels` Bundles in all."""
    bundle: dict[str, object] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }
    for _ in range(levels - 1):
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": bundle}]}
    return bundle


def test_a_collection_bundle_in_a_bundle_is_read_through(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    half = len(small_resources) // 2
    outer = nest(small_resources[:half], 1)
    entries = outer["entry"]
    assert isinstance(entries, list)
    entries.append({"resource": nest(small_resources[half:], 3)})
    source = tmp_path / "nested.json"
    source.write_bytes(orjson.dumps(outer, default=fhir_json.default, option=orjson.OPT_INDENT_2))
    stats = ReadStats()
    assert list(read_resources(source, stats)) == small_resources
    assert stats.bundles_nested == 3
    # and the conversion gives the tables the flat resources give
    flat = tmp_path / "flat"
    write_ndjson(small_resources, flat)
    assert convert(flat, "--to", "sdtm", "--out", tmp_path / "a").exit_code == 0
    result = convert(source, "--to", "sdtm", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path / "b") == snapshot(tmp_path / "a")


def test_a_bundle_on_an_ndjson_line_is_read_through(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    source = one_line(tmp_path / "Bundle.ndjson", [nest(small_resources, 2)])
    assert list(read_resources(source)) == small_resources


def test_bundles_nested_beyond_the_bound_are_refused_not_dropped(tmp_path: Path) -> None:
    patient = {"resourceType": "Patient", "id": "p"}
    source = tmp_path / "bundle.json"
    source.write_bytes(orjson.dumps(nest([patient], MAX_BUNDLE_NESTING)))
    assert list(read_resources(source)) == [patient]
    source.write_bytes(orjson.dumps(nest([patient], MAX_BUNDLE_NESTING + 1)))
    with pytest.raises(FhirFileError) as caught:
        list(read_resources(source))
    assert f"nested more than {MAX_BUNDLE_NESTING} Bundles deep" in caught.value.reason
    assert_refused(source, tmp_path / "out", "bundle.json", "Bundle entry 1 > entry 1")
