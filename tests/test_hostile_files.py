"""Hostile input files (issue 8): each is refused as bad input, through the library (the error names
file, line or row, element or variable, reason) and through `trialfhir convert` (exit 3, the same
message, the output folder untouched); or, where the input is valid, read without losing anything."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    read_trial_resources,
    write_ndjson,
)
from adapter.fhir_json import MAX_DEPTH, JSONNotANumber, JSONTooDeep, check_depth
from adapter.tables import (
    CSV_CELL_LIMIT,
    TableError,
    XptLayoutError,
    read_table,
    read_trial,
    write_table,
    write_trial,
    xpt_layout,
)
from mappings.sdtm import DOMAINS
from mappings.trial import trial_to_fhir

DALAKAS = Path(__file__).resolve().parents[1] / "adapter" / "studies" / "dalakas1993"
SMALL = Path(__file__).parent / "data" / "sdtm_small"


def convert(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_refused(src: Path, out: Path, *expected: str, to: str = "sdtm") -> str:
    """`convert SRC --out OUT --force` exits 3 with every `expected` text in its message; OUT (an
    earlier trialfhir output, which --force may replace) is left exactly as it was, and no staging
    folder is left beside it."""
    if not out.exists():
        earlier = convert(SMALL, "--out", out)
        assert earlier.exit_code == 0, earlier.output
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


def test_the_depth_limit_is_exact_on_every_path() -> None:
    """The NDJSON fast path checks no depth: orjson writes back exactly MAX_DEPTH levels at most."""
    for parse in (fhir_json.loads, fhir_json.loads_line, fhir_json.exact_loads):
        assert parse(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
        with pytest.raises(JSONTooDeep):
            parse(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
        with pytest.raises(JSONTooDeep):  # the exact parser's path (a number to keep as written)
            parse(b"[" * (MAX_DEPTH + 1) + b"0.10" + b"]" * (MAX_DEPTH + 1))


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


OWN_PATIENT = (
    b'{"resourceType":"Patient","id":"a",'
    b'"identifier":[{"system":"https://trialfhir.org/fhir/sid/usubjid","value":"S-1"}]}\n'
)
"""A Patient of the adapter's own profile: an input of only own resources is read all or nothing
(FHIR written by others is read tolerantly instead: tests/foreign/test_cli.py)."""


def test_deep_json_in_an_ndjson_file_names_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "Observation.ndjson"
    source.write_bytes(OWN_PATIENT + deep(100_000) + b"\n")
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
    entry = b'{"resource":' + b"[" * 300 + b"]" * 300 + b"}"
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
        OWN_PATIENT + b'{"resourceType":"Observation","valueQuantity":{"value":NaN}}\n'
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
    patient: dict[str, object] = orjson.loads(OWN_PATIENT)
    source = tmp_path / "bundle.json"
    source.write_bytes(orjson.dumps(nest([patient], MAX_BUNDLE_NESTING)))
    assert list(read_resources(source)) == [patient]
    source.write_bytes(orjson.dumps(nest([patient], MAX_BUNDLE_NESTING + 1)))
    with pytest.raises(FhirFileError) as caught:
        list(read_resources(source))
    assert f"nested more than {MAX_BUNDLE_NESTING} Bundles deep" in caught.value.reason
    assert_refused(source, tmp_path / "out", "bundle.json", "Bundle entry 1 > entry 1")


# --- SAS transport files cut short or inconsistent --------------------------------------------------


@pytest.fixture(scope="module")
def dm_xpt(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The Dalakas DM (15 subjects) as pyreadstat writes it: version 5 transport, AGE numeric."""
    import pandas as pd
    import pyreadstat

    dm = read_trial(DALAKAS, ["DM"])["DM"]
    frame = pd.DataFrame(dm.rows, columns=dm.columns)
    frame["AGE"] = frame["AGE"].astype(float)
    path = tmp_path_factory.mktemp("xpt") / "dm.xpt"
    pyreadstat.write_xport(frame, str(path), table_name="DM", file_format_version=5)
    return path.read_bytes()


def xpt_folder(tmp_path: Path, data: bytes) -> Path:
    folder = tmp_path / "sdtm"
    folder.mkdir(parents=True)
    (folder / "dm.xpt").write_bytes(data)
    return folder


def test_a_whole_xpt_reads_every_row(tmp_path: Path, dm_xpt: bytes) -> None:
    layout = xpt_layout(dm_xpt)
    assert layout.observations == 15
    assert len(read_trial(xpt_folder(tmp_path, dm_xpt))["DM"].rows) == 15


def cuts(data: bytes) -> list[int]:
    """Offsets to cut the file at: in every header, at record boundaries inside the data section
    (except where the cut also falls between two observations: version 5 cannot tell those from a
    shorter file), and at odd offsets in the data."""
    layout = xpt_layout(data)
    size, start, width = len(data), layout.data_start, layout.observation_length
    aligned = [
        at for at in range(start + 80, size, 80) if (at - start) % width != 0 and at < size - 80
    ]
    return [1, 79, 240, 400, 700, start - 80, start + 7, *aligned[:3], start + width + 1, size - 1]


def test_an_xpt_cut_anywhere_detectable_is_refused_naming_the_file(
    tmp_path: Path, dm_xpt: bytes
) -> None:
    for number, cut in enumerate(cuts(dm_xpt)):
        folder = xpt_folder(tmp_path / str(number), dm_xpt[:cut])
        with pytest.raises(TableError) as caught:
            read_trial(folder)
        [problem] = [p for p in caught.value.problems if p.file.endswith("dm.xpt")]
        assert "not a readable SAS transport (XPT) file" in problem.reason, (cut, problem)
        if cut >= xpt_layout(dm_xpt).data_start:
            assert "cut off" in problem.reason, (cut, problem)


def test_an_xpt_cut_in_its_data_section_exits_3_through_convert(
    tmp_path: Path, dm_xpt: bytes
) -> None:
    layout = xpt_layout(dm_xpt)
    cut = layout.data_start + 80 * 3
    assert (cut - layout.data_start) % layout.observation_length  # inside an observation
    folder = xpt_folder(tmp_path, dm_xpt[:cut])
    before = snapshot(folder)
    assert_refused(folder, tmp_path / "out", "dm.xpt", "cut off", "inside observation", to="fhir")
    assert snapshot(folder) == before


def test_an_xpt_with_two_datasets_is_refused(tmp_path: Path, dm_xpt: bytes) -> None:
    layout = xpt_layout(dm_xpt)
    second = dm_xpt[240:]  # the member headers and data again, as a second member
    with pytest.raises(XptLayoutError, match="more than one dataset"):
        xpt_layout(dm_xpt + second)
    assert layout.observations == 15


def test_pandas_warnings_about_a_damaged_file_are_errors(
    tmp_path: Path, dm_xpt: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    import pandas as pd

    real = pd.read_sas

    def warns(*args: object, **kwargs: object) -> object:
        warnings.warn("xport file may be corrupted.", stacklevel=1)
        return real(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(pd, "read_sas", warns)
    with pytest.raises(TableError, match="may be corrupted"):
        read_trial(xpt_folder(tmp_path, dm_xpt))


def test_an_xpt_with_no_observations_is_an_empty_domain(tmp_path: Path) -> None:
    import pandas as pd
    import pyreadstat

    dm = read_trial(DALAKAS, ["DM"])["DM"]
    path = tmp_path / "dm.xpt"
    pyreadstat.write_xport(
        pd.DataFrame({c: pd.Series([], dtype=str) for c in dm.columns}),
        str(path),
        table_name="DM",
        file_format_version=5,
    )
    table, problems = read_table(path, "DM")
    assert problems == []
    assert table is not None and table.columns == dm.columns and table.rows == []


# --- year 0000, NUL and other control characters in tables --------------------------------------------


def small_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "sdtm"
    shutil.copytree(SMALL, folder)
    return folder


def edit_cell(folder: Path, domain: str, row: int, variable: str, value: str) -> None:
    path = folder / f"{domain}.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    rows[row][rows[0].index(variable)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def test_year_0000_is_refused_naming_file_row_variable(tmp_path: Path) -> None:
    folder = small_copy(tmp_path)
    edit_cell(folder, "vs", 2, "VSDTC", "0000-05-12")
    with pytest.raises(TableError) as caught:
        read_trial(folder)
    [problem] = caught.value.problems
    assert (Path(problem.file).name, problem.row, problem.variable) == ("vs.csv", 2, "VSDTC")
    assert "year 0000 does not exist" in problem.reason
    assert_refused(folder, tmp_path / "out", "vs.csv, row 2, VSDTC", "year 0000", to="fhir")


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b", "\x0b"])
def test_a_control_character_in_any_cell_is_refused(tmp_path: Path, character: str) -> None:
    folder = small_copy(tmp_path)
    edit_cell(folder, "cm", 1, "CMTRT", f"pred{character}nisone")  # a free-text column
    with pytest.raises(TableError) as caught:
        read_trial(folder)
    [problem] = caught.value.problems
    assert (Path(problem.file).name, problem.row, problem.variable) == ("cm.csv", 1, "CMTRT")
    assert f"U+{ord(character):04X}" in problem.reason
    assert "pred" not in problem.reason  # the value is not echoed
    assert_refused(folder, tmp_path / "out", "cm.csv, row 1, CMTRT", "control character", to="fhir")


def test_tabs_and_line_breaks_in_cells_are_kept(tmp_path: Path) -> None:
    folder = small_copy(tmp_path)
    edit_cell(folder, "cm", 1, "CMTRT", "a\tb\nc\r\nd")
    assert read_trial(folder)["CM"].rows[0]["CMTRT"] == "a\tb\nc\r\nd"


def test_a_nul_in_an_xpt_value_is_refused(tmp_path: Path) -> None:
    import pandas as pd
    import pyreadstat

    dm = read_trial(DALAKAS, ["DM"])["DM"]
    frame = pd.DataFrame(dm.rows, columns=dm.columns)
    frame.loc[3, "COUNTRY"] = "UQSA"
    folder = tmp_path / "xpt"
    folder.mkdir()
    path = folder / "dm.xpt"
    pyreadstat.write_xport(frame, str(path), table_name="DM", file_format_version=5)
    path.write_bytes(path.read_bytes().replace(b"UQSA", b"U\x00SA"))  # pyreadstat stops at a NUL
    with pytest.raises(TableError) as caught:
        read_trial(folder)
    assert [(p.row, p.variable) for p in caught.value.problems] == [(4, "COUNTRY")]


# --- one CSV cell limit, for reading and writing -----------------------------------------------------


def test_a_csv_cell_over_the_limit_is_named_as_such(tmp_path: Path) -> None:
    folder = small_copy(tmp_path)
    edit_cell(folder, "cm", 2, "CMTRT", "x" * (CSV_CELL_LIMIT + 1))
    with pytest.raises(TableError) as caught:
        read_trial(folder)
    [problem] = caught.value.problems
    assert (Path(problem.file).name, problem.row) == ("cm.csv", 2)
    assert f"longer than {CSV_CELL_LIMIT:,} characters" in problem.reason
    assert "quot" not in problem.reason  # not the csv module's misleading "badly quoted row"
    assert_refused(folder, tmp_path / "out", "cm.csv, row 2", "longer than", to="fhir")


def test_a_cell_at_the_limit_is_written_and_read_back(tmp_path: Path) -> None:
    folder = small_copy(tmp_path)
    edit_cell(folder, "cm", 2, "CMTRT", "x" * CSV_CELL_LIMIT)
    trial = read_trial(folder)
    write_trial(trial, tmp_path / "again")
    assert read_trial(tmp_path / "again")["CM"].rows[1]["CMTRT"] == "x" * CSV_CELL_LIMIT


def test_writing_a_cell_over_the_limit_is_refused_before_any_file_is_written(
    tmp_path: Path,
) -> None:
    trial = read_trial(SMALL)
    trial["VS"].rows[1]["VSORRES"] = "9" * (CSV_CELL_LIMIT + 1)
    out = tmp_path / "out"
    with pytest.raises(TableError) as caught:
        write_trial(trial, out)
    [problem] = caught.value.problems
    assert (Path(problem.file).name, problem.row, problem.variable) == ("vs.csv", 2, "VSORRES")
    assert not out.exists()
    with pytest.raises(TableError):
        write_table(trial["VS"], tmp_path / "vs.csv")
    assert not (tmp_path / "vs.csv").exists()


# --- FHIR values the element does not allow, wrongly shaped elements, duplicates (own profile) ---------


def observation_of(resources: list[dict[str, object]], domain: str) -> dict[str, object]:
    """A deep copy of the first Observation of `domain` (VS, QS, RS, MI) among `resources`."""
    for resource in resources:
        identifiers = resource.get("identifier")
        if (
            resource["resourceType"] == "Observation"
            and isinstance(identifiers, list)
            and identifiers[0]["system"].endswith(f"/sdtm/{domain.lower()}")
        ):
            copy: dict[str, object] = orjson.loads(fhir_json.dumps(resource))
            return copy
    raise AssertionError(f"no {domain} Observation")


def refused(
    tmp_path: Path,
    resources: list[dict[str, object]],
    changed: dict[str, object],
    *expected: str,
) -> None:
    """`changed` written as line 3 of an NDJSON file between good resources: the library and the
    CLI refuse it naming the file, line 3, the element and the reason."""
    source = tmp_path / "in.ndjson"
    others = [r for r in resources if r["id"] != changed["id"]]
    one_line(source, [others[0], others[1], changed, *others[2:]])
    with pytest.raises(FhirFileError) as caught:
        read_trial_resources(source)
    assert caught.value.line == 3, caught.value
    for text in expected:
        assert text in caught.value.reason, caught.value
    assert_refused(source, tmp_path / "out", "in.ndjson, line 3", *expected)


def test_a_string_where_a_quantity_value_belongs_is_refused(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    vs = observation_of(small_resources, "VS")
    quantity = vs["valueQuantity"]
    assert isinstance(quantity, dict)
    quantity["value"] = "74.5"
    refused(
        tmp_path,
        small_resources,
        vs,
        "Observation.valueQuantity.value",
        "a string where R4 has a number",
    )


@pytest.mark.parametrize(
    ("element", "value", "path", "reason"),
    [
        (
            "identifier",
            {"system": "x", "value": "y"},
            "Observation.identifier",
            "an object where R4 has an array",
        ),
        ("code", "WEIGHT", "Observation.code", "a string where R4 has an object"),
        ("extension", {"url": "x"}, "Observation.extension", "an object where R4 has an array"),
        (
            "effectiveDateTime",
            1990,
            "Observation.effectiveDateTime",
            "a number where R4 has a string",
        ),
        ("valueQuantity", [1], "Observation.valueQuantity", "an array where R4 has an object"),
    ],
)
def test_a_wrongly_shaped_top_level_element_is_refused(
    tmp_path: Path,
    small_resources: list[dict[str, object]],
    element: str,
    value: object,
    path: str,
    reason: str,
) -> None:
    vs = observation_of(small_resources, "VS")
    vs[element] = value
    refused(tmp_path, small_resources, vs, path, reason)


def test_a_wrongly_shaped_nested_element_is_named_not_a_traceback(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    qs = observation_of(small_resources, "QS")
    extensions = qs["extension"]
    assert isinstance(extensions, list)
    [index] = [i for i, e in enumerate(extensions) if e["url"].endswith("/sdtm-variable")][:1]
    extensions[index]["extension"] = "not a list"
    refused(
        tmp_path,
        small_resources,
        qs,
        f"Observation.extension[{index}].extension",
        "a string where R4 has an array",
    )
    qs = observation_of(small_resources, "QS")
    code = qs["code"]
    assert isinstance(code, dict)
    code["coding"] = {"system": "x", "code": "y"}
    refused(
        tmp_path, small_resources, qs, "Observation.code.coding", "an object where R4 has an array"
    )


def test_one_identifier_object_is_right_for_adverse_event_but_not_for_observation(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    """R4 cardinality, not the element's name: AdverseEvent.identifier is 0..1 (an object)."""
    from mappings.shapes import shape_problem, top_level_problem

    event: dict[str, object] = {
        "resourceType": "AdverseEvent",
        "id": "ae",
        "identifier": {"system": "x", "value": "y"},
    }
    assert top_level_problem(event) is None and shape_problem(event) is None
    source = one_line(tmp_path / "in.ndjson", [*small_resources, event])
    assembler = read_trial_resources(source)
    assert assembler.unrecognised == {"AdverseEvent": 1}


def test_the_same_type_and_id_with_different_content_is_refused(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    vs = observation_of(small_resources, "VS")
    quantity = vs["valueQuantity"]
    assert isinstance(quantity, dict)
    quantity["value"] = 1
    source = tmp_path / "in.ndjson"
    one_line(source, [*small_resources, vs])
    with pytest.raises(FhirFileError) as caught:
        read_trial_resources(source)
    assert caught.value.line == len(small_resources) + 1
    assert "Observation.id" in caught.value.reason
    assert "different content" in caught.value.reason
    assert_refused(
        source, tmp_path / "out", f"in.ndjson, line {len(small_resources) + 1}", "different content"
    )


def test_an_identical_resource_read_twice_is_taken_once_and_counted(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    flat = tmp_path / "flat"
    write_ndjson(small_resources, flat)
    twice = one_line(tmp_path / "twice.ndjson", [*small_resources, *small_resources[3:8]])
    assembler = read_trial_resources(twice)
    assert sum(assembler.duplicates.values()) == 5
    assert convert(flat, "--to", "sdtm", "--out", tmp_path / "a").exit_code == 0
    result = convert(twice, "--to", "sdtm", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "identical resources read again, taken once" in result.output
    assert snapshot(tmp_path / "b") == snapshot(tmp_path / "a")


@pytest.mark.parametrize("changed", [False, True])
def test_a_duplicate_is_judged_alike_from_an_ndjson_line_and_from_a_bundle(
    tmp_path: Path, small_resources: list[dict[str, object]], changed: bool
) -> None:
    """An NDJSON line that round-trips gives the assembler its bytes for the duplicate digest; the
    same resource read from a Bundle (digested by serialising it) must still be the same content,
    and a changed one still refused."""
    from adapter.fhir_files import ReadStats, assemble, read_files, write_bundle

    lines = one_line(tmp_path / "in.ndjson", small_resources)
    again = json.loads(json.dumps(small_resources[5]))
    if changed:
        again["status"] = "amended"
    write_bundle([again], tmp_path / "again.json", type="collection")
    stats = ReadStats()
    resources = read_files([lines, tmp_path / "again.json"], stats)
    if changed:
        with pytest.raises(FhirFileError, match="different content"):
            assemble(resources, stats)
    else:
        assert sum(assemble(resources, stats).duplicates.values()) == 1


def test_a_server_meta_does_not_make_a_duplicate_different(
    small_resources: list[dict[str, object]],
) -> None:
    from mappings.trial import TrialAssembler

    assembler = TrialAssembler()
    for resource in small_resources:
        assembler.add(resource)
    again = dict(small_resources[5])
    again["meta"] = {"versionId": "2", "lastUpdated": "2026-11-30T00:00:00Z"}
    assert assembler.add(again)
    assert sum(assembler.duplicates.values()) == 1


@pytest.mark.parametrize(
    ("change", "element", "reason"),
    [
        (
            lambda r: r.update(effectiveDateTime="0000-05-12", _effectiveDateTime=None),
            "Observation.effectiveDateTime",
            "year 0000",
        ),
        (
            lambda r: r["_effectiveDateTime"]["extension"][0].update(
                valueString="0000-05-12T10:00"
            ),
            "Observation._effectiveDateTime.extension[0].valueString",
            "year 0000",
        ),
        (lambda r: r["code"].__setitem__("text", "Weight\x00"), "Observation.code.text", "U+0000"),
    ],
)
def test_year_0000_and_nul_in_fhir_are_refused(
    tmp_path: Path,
    small_resources: list[dict[str, object]],
    change: Callable[[dict[str, Any]], None],
    element: str,
    reason: str,
) -> None:
    vs = observation_of(small_resources, "VS")
    assert "_effectiveDateTime" in vs  # this one carries its time
    change(vs)
    vs = {k: v for k, v in vs.items() if v is not None}
    refused(tmp_path, small_resources, vs, element, reason)


def test_a_code_0000_is_not_a_year(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    vs = observation_of(small_resources, "VS")
    code = vs["code"]
    assert isinstance(code, dict)
    code["text"] = "0000"
    source = one_line(tmp_path / "in.ndjson", [vs])
    assert read_trial_resources(source).tables()["VS"].rows[0]["VSTEST"] == "0000"


# --- memory: convert refuses an input it estimates it cannot hold ----------------------------------------


def test_convert_refuses_an_input_whose_estimated_memory_exceeds_the_limit(tmp_path: Path) -> None:
    size = sum(p.stat().st_size for p in SMALL.iterdir() if p.suffix == ".csv")
    limit = size * 20 / 1e9 * 0.9  # just under the estimate: 20 x the CSV size
    out = tmp_path / "out"
    result = convert(SMALL, "--out", out, "--max-memory", f"{limit:.9f}", "--workers", "1")
    assert result.exit_code == 3, result.output
    assert "needs about" in result.output and "--max-memory" in result.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no staging folder either
    result = convert(SMALL, "--out", out, "--max-memory", f"{limit / 0.9 * 1.1:.9f}")
    assert result.exit_code == 0, result.output


def test_the_fhir_side_estimate_is_from_the_files_read(tmp_path: Path) -> None:
    flat = tmp_path / "fhir"
    assert convert(SMALL, "--out", flat).exit_code == 0
    size = sum(p.stat().st_size for p in flat.glob("*.ndjson"))  # bundle.json is not read
    result = convert(
        flat,
        *("--to", "sdtm", "--out", tmp_path / "a", "--workers", "1"),
        *("--max-memory", f"{size * 2 / 1e9 * 0.9:.9f}"),
    )
    assert result.exit_code == 3, result.output
    result = convert(
        flat, "--to", "sdtm", "--out", tmp_path / "b", "--max-memory", f"{size * 2 / 1e9 * 1.1:.9f}"
    )
    assert result.exit_code == 0, result.output


def test_with_workers_the_estimate_applies_only_when_one_worker_takes_the_input(
    tmp_path: Path,
) -> None:
    size = sum(p.stat().st_size for p in SMALL.iterdir() if p.suffix == ".csv")
    limit = f"{size * 20 / 1e9 * 0.9:.9f}"  # under the one-worker estimate
    result = convert(SMALL, "--out", tmp_path / "split", "--max-memory", limit, "--workers", "2")
    assert result.exit_code == 0, result.output  # split by subject: the memory stays flat
    interleaved = tmp_path / "interleaved"
    shutil.copytree(SMALL, interleaved)
    lines = (interleaved / "vs.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (interleaved / "vs.csv").write_text(lines[0] + "".join(reversed(lines[1:])), encoding="utf-8")
    out = tmp_path / "out"
    result = convert(interleaved, "--out", out, "--max-memory", limit, "--workers", "2")
    assert result.exit_code == 3, result.output  # one worker would hold every table
    assert "needs about" in result.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interleaved", "split"]


def test_max_memory_must_be_positive(tmp_path: Path) -> None:
    assert convert(SMALL, "--out", tmp_path / "out", "--max-memory", "0").exit_code == 2


# --- the same guard on the wire: a server's body goes through the same codec -----------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceType":"Patient","id":"a","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"resourceType":"Patient","id":"a","x":' + b"[" * 300 + b"0.10" + b"]" * 300 + b"}",
        b'{"resourceType":"Patient","id":"a","x":[0.10, NaN]}',
    ],
)
def test_a_too_deep_or_nan_server_body_is_an_invalid_response_not_a_crash(
    httpx_mock: Any, body: bytes
) -> None:
    from adapter.client import FhirClient, InvalidResponse

    base = "http://fhir.test/fhir"
    httpx_mock.add_response(url=f"{base}/Patient/a", content=body)
    with FhirClient(base) as client, pytest.raises(InvalidResponse):
        client.read("Patient", "a")


def test_an_own_identifier_with_a_foreign_value_shape_is_named(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    vs = observation_of(small_resources, "VS")
    identifiers = vs["identifier"]
    assert isinstance(identifiers, list)
    identifiers[0]["value"] = "no-slashes-here"
    refused(tmp_path, small_resources, vs, "Observation.identifier", "identifier value has 1 parts")


def test_fhir_whose_cell_would_exceed_the_csv_limit_is_refused_before_writing(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    vs = observation_of(small_resources, "VS")
    code = vs["code"]
    assert isinstance(code, dict)
    code["text"] = "w" * (CSV_CELL_LIMIT + 1)
    others = [r for r in small_resources if r["id"] != vs["id"]]
    source = one_line(tmp_path / "in.ndjson", [*others, vs])
    output = assert_refused(source, tmp_path / "out", "cannot be written as CSV", "VSTEST")
    assert "vs.csv, row" in output
    assert ".tmp" not in output  # named as the file it would have been, not the staging copy


# --- every element of every kind of resource, wrongly shaped: a refusal or a result, never a crash ------


DOMAIN_CODES = tuple(f"{code}." for code in DOMAINS)

WRONG_VALUES: list[object] = ["x", 7, 2.5, True, None, [], {}, ["x"], [7], {"a": 1}, [{"a": 1}]]


def paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every element path in a JSON value (object keys and array indexes), the value's own first."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:2]):
            found += paths(item, (*path, index))
    return found


def replaced(
    resource: dict[str, object], path: tuple[object, ...], value: object
) -> dict[str, Any]:
    copy: dict[str, Any] = orjson.loads(fhir_json.dumps(resource))
    node: Any = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


def test_any_element_wrongly_shaped_is_taken_or_refused_never_a_crash(
    small_resources: list[dict[str, object]],
) -> None:
    from mappings.trial import ResourceRefused, TrialAssembler

    samples: dict[tuple[object, object], dict[str, object]] = {}
    for resource in small_resources:
        identifiers = resource.get("identifier")
        system = identifiers[0]["system"] if isinstance(identifiers, list) else None
        samples.setdefault((resource["resourceType"], system), resource)
    refused_count = 0
    for resource in samples.values():
        for path in paths(resource):
            if path == ("resourceType",):
                continue
            for value in WRONG_VALUES:
                assembler = TrialAssembler()
                try:
                    assembler.add(replaced(resource, path, value), check_strings=True)
                    assembler.tables()
                except ResourceRefused as exc:
                    refused_count += 1
                    named = str(resource["resourceType"]), *DOMAIN_CODES  # element or variable
                    assert exc.element.startswith(named), exc
    assert refused_count > 100  # the check is not vacuous


def test_an_object_where_a_string_is_copied_into_a_cell_is_refused_not_written(
    tmp_path: Path, small_resources: list[dict[str, object]]
) -> None:
    """medicationCodeableConcept.text becomes --TRT: an object there is refused where the reader
    reads it, naming the element (it used to be caught only at tables(), by domain and variable)."""
    from mappings.trial import ResourceRefused, TrialAssembler

    [medication] = [r for r in small_resources if r["resourceType"] == "MedicationAdministration"][
        :1
    ]
    changed = replaced(medication, ("medicationCodeableConcept", "text"), {"a": 1})
    assembler = TrialAssembler()
    with pytest.raises(ResourceRefused, match="where R4 has a string") as caught:
        for resource in small_resources:
            assembler.add(changed if resource is medication else resource)
    assert caught.value.element == "MedicationAdministration.medicationCodeableConcept.text"
    others = [r for r in small_resources if r is not medication]
    source = one_line(tmp_path / "in.ndjson", [*others, changed])
    assert_refused(source, tmp_path / "out", caught.value.element, "where R4 has a string", "line ")
