"""`trialfhir convert`: SDTM -> FHIR -> SDTM gives the same files; bad input exits 3, lists every
problem on stderr (file, row, variable, reason) and leaves DIR exactly as it was."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from adapter.cli import main
from adapter.cli._common import MANIFEST

DATA = Path(__file__).parent / "data"
SMALL = DATA / "sdtm_small"
DALAKAS = Path(__file__).resolve().parents[1] / "adapter" / "studies" / "dalakas1993"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative name -> bytes); {} when it does not exist."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def tables(folder: Path) -> dict[str, bytes]:
    """The files of an output folder but its manifest (which lists them)."""
    return {name: data for name, data in snapshot(folder).items() if name != MANIFEST}


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir())


# --- bad SDTM inputs: one broken thing each --------------------------------------------------------------


def set_cell(domain: str, row: int, variable: str, value: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / f"{domain}.csv"
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        rows[row][rows[0].index(variable)] = value
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        path.write_text(out.getvalue(), encoding="utf-8")

    return edit


def drop_column(domain: str, variable: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / f"{domain}.csv"
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        index = rows[0].index(variable)
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(r[:index] + r[index + 1 :] for r in rows)
        path.write_text(out.getvalue(), encoding="utf-8")

    return edit


def replace_bytes(domain: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / f"{domain}.csv"
        path.write_bytes(change(path.read_bytes()))

    return edit


def duplicate_dm_subject(folder: Path) -> None:
    set_cell("dm", 2, "USUBJID", "DALAKAS1993-01-001")(folder)


def duplicate_ex_seq(folder: Path) -> None:
    set_cell("ex", 3, "EXSEQ", "2")(folder)


def second_studyid(folder: Path) -> None:
    set_cell("ts", 4, "STUDYID", "OTHER1994")(folder)


def unterminated_quote(folder: Path) -> None:
    path = folder / "vs.csv"
    path.write_text(path.read_text(encoding="utf-8") + 'DALAKAS1993,VS,"cut\n', encoding="utf-8")


def no_domain_files(folder: Path) -> None:
    for path in folder.glob("*.csv"):
        path.unlink()
    (folder / "readme.txt").write_text("empty", encoding="utf-8")


BAD_INPUTS: dict[str, tuple[Callable[[Path], None], str]] = {
    # case: (edit, what stderr must say: "<file>, row N, VARIABLE" or the file alone)
    "missing required column": (drop_column("qs", "QSTESTCD"), "qs.csv, QSTESTCD: required"),
    "impossible date": (set_cell("dm", 2, "RFENDTC", "1990-02-29"), "dm.csv, row 2, RFENDTC"),
    "not a number": (set_cell("vs", 1, "VSSTRESN", "59,25"), "vs.csv, row 1, VSSTRESN"),
    "negative dose": (set_cell("cm", 3, "CMDOSE", "-30"), "cm.csv, row 3, CMDOSE"),
    "non-integer seq": (set_cell("qs", 5, "QSSEQ", "five"), "qs.csv, row 5, QSSEQ"),
    "subject twice in DM": (duplicate_dm_subject, "dm.csv, row 2, USUBJID"),
    "subject not in DM": (set_cell("rs", 1, "USUBJID", "NOBODY"), "rs.csv, row 1, USUBJID"),
    "duplicate seq": (duplicate_ex_seq, "ex.csv, row 3, EXSEQ"),
    "wrong DOMAIN": (set_cell("pr", 2, "DOMAIN", "MI"), "pr.csv, row 2, DOMAIN"),
    "two STUDYIDs": (second_studyid, "ts.csv, row 4, STUDYID"),
    "short row": (replace_bytes("se", lambda b: b.replace(b",SCRN,", b",", 1)), "se.csv, row 1"),
    "unterminated quote": (unterminated_quote, "vs.csv, row 3: unterminated quote"),
    "cut off last line": (replace_bytes("mi", lambda b: b[:-30]), "mi.csv, row 21"),
    "zero bytes": (replace_bytes("ta", lambda b: b""), "ta.csv: empty file (0 bytes)"),
    "not UTF-8": (
        replace_bytes("vs", lambda b: b.replace("ü".encode(), "ü".encode("latin-1"))),
        "vs.csv, row 2: not UTF-8",
    ),
    "no domain files": (no_domain_files, "no domain files here"),
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "sdtm"
    shutil.copytree(SMALL, folder)
    return folder


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_3_names_the_place_and_creates_nothing(
    case: str, source: Path, tmp_path: Path
) -> None:
    edit, expected = BAD_INPUTS[case]
    edit(source)
    out = tmp_path / "out"
    before = siblings(out)
    result = run(source, "--out", out)
    assert result.exit_code == 3, result.output
    assert expected in result.stderr
    assert not out.exists()
    assert siblings(out) == before


@pytest.mark.parametrize("case", ["impossible date", "cut off last line", "zero bytes"])
def test_bad_input_leaves_an_existing_dir_as_it_was(
    case: str, source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run(SMALL, "--out", out).exit_code == 0  # an earlier output, which --force may replace
    before = snapshot(out)
    BAD_INPUTS[case][0](source)
    result = run(source, "--out", out, "--force")
    assert result.exit_code == 3
    assert snapshot(out) == before
    assert siblings(out) == ["out", "sdtm"]


def test_every_problem_of_a_run_is_listed(source: Path, tmp_path: Path) -> None:
    set_cell("qs", 2, "QSDTC", "1990-13")(source)
    set_cell("qs", 8, "QSDTC", "1990-14")(source)
    set_cell("ex", 1, "EXDOSE", "-1")(source)
    result = run(source, "--out", tmp_path / "out")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Error: 3 problems in the trial tables:"
    assert [line.split(": ")[0].split("/")[-1] for line in lines[1:]] == [
        "ex.csv, row 1, EXDOSE",
        "qs.csv, row 2, QSDTC",
        "qs.csv, row 8, QSDTC",
    ]


def test_the_command_line_entry_point_exits_3_on_bad_input(source: Path, tmp_path: Path) -> None:
    set_cell("dm", 1, "AGE", "forty")(source)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    script = Path(sys.executable).with_name("trialfhir")
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from adapter.cli import main; main()"]
    )
    done = subprocess.run(
        [*command, "convert", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 3
    assert "dm.csv, row 1, AGE: 'forty' is not a number" in done.stderr
    assert done.stdout == ""
    assert not out.exists()


# --- usage --------------------------------------------------------------------------------------------------


def test_a_non_empty_dir_is_refused_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    for extra in ([], ["--force"]):
        result = run(SMALL, "--out", out, *extra)
        assert result.exit_code == 11
        assert "keep.txt" in result.stderr
        assert snapshot(out) == {"keep.txt": b"mine"}


def test_force_replaces_an_earlier_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run(SMALL, "--out", out).exit_code == 0
    refused = run(SMALL, "--out", out)
    assert refused.exit_code == 11
    assert "--force" in refused.stderr
    result = run(SMALL, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert "Patient.ndjson" in snapshot(out)
    assert siblings(out) == ["out"]


def test_out_inside_the_source_is_refused(source: Path) -> None:
    result = run(source, "--out", source / "fhir")
    assert result.exit_code == 11
    assert "inside the source" in result.stderr


def test_a_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    assert run(tmp_path / "nowhere", "--out", tmp_path / "out").exit_code == 2


def test_an_interrupted_run_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import adapter.fhir_files as fhir_files

    real = fhir_files.write_ndjson

    def interrupted(resources, folder, **options):  # type: ignore[no-untyped-def]
        def some() -> Iterator[dict[str, Any]]:
            for n, resource in enumerate(resources):
                if n == 10:
                    raise KeyboardInterrupt
                yield resource

        return real(some(), folder, **options)

    monkeypatch.setattr(fhir_files, "write_ndjson", interrupted)
    out = tmp_path / "out"
    # the one-worker writer (with workers: tests/test_workers.py)
    result = run(SMALL, "--out", out, "--workers", "1")
    assert result.exit_code != 0
    assert not out.exists()
    assert siblings(out) == []


# --- what a good run writes -----------------------------------------------------------------------------


def test_sdtm_to_fhir_writes_ndjson_per_type_and_no_bundle_by_default(tmp_path: Path) -> None:
    out = tmp_path / "fhir"
    result = run(SMALL, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        ".trialfhir-manifest.json",
        *sorted(p.name for p in out.glob("*.ndjson")),
    ]
    assert (out / "Patient.ndjson").is_file()
    again = tmp_path / "again"
    assert run(SMALL, "--out", again, "--no-bundle").exit_code == 0
    assert snapshot(again) == snapshot(out)


def test_bundle_also_writes_a_transaction_bundle_of_the_same_resources(tmp_path: Path) -> None:
    from adapter.fhir_files import dumps, read_resources

    out = tmp_path / "fhir"
    result = run(SMALL, "--out", out, "--bundle")
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    assert "bundle.json" in files and "Patient.ndjson" in files
    counts = {p.stem: len(p.read_bytes().splitlines()) for p in out.glob("*.ndjson")}
    assert counts["Patient"] == 2
    summary = result.stdout.strip()
    for resource_type, n in counts.items():
        assert f"{resource_type} {n}" in summary
    assert f"{sum(counts.values())} resources" in summary
    bundle = list(read_resources(out / "bundle.json"))
    assert len(bundle) == sum(counts.values())
    ndjson = [r for name in sorted(counts) for r in read_resources(out / f"{name}.ndjson")]
    assert sorted(map(dumps, bundle)) == sorted(map(dumps, ndjson))
    plain = tmp_path / "plain"
    assert run(SMALL, "--out", plain).exit_code == 0
    with_bundle = tables(out)
    del with_bundle["bundle.json"]
    assert with_bundle == tables(plain)


def test_bundle_with_to_sdtm_is_a_usage_error(tmp_path: Path) -> None:
    assert run(SMALL, "--out", tmp_path / "fhir").exit_code == 0
    result = run(tmp_path / "fhir", "--to", "sdtm", "--out", tmp_path / "back", "--bundle")
    assert result.exit_code == 2
    assert "--bundle goes with SDTM -> FHIR" in result.stderr
    assert not (tmp_path / "back").exists()


def test_validate_accepts_what_the_mappings_make(tmp_path: Path) -> None:
    result = run(SMALL, "--out", tmp_path / "fhir", "--validate")
    assert result.exit_code == 0, result.stderr


def test_a_broken_ndjson_line_exits_3_naming_file_and_line(tmp_path: Path) -> None:
    fhir = tmp_path / "fhir"
    assert run(SMALL, "--out", fhir).exit_code == 0
    patients = fhir / "Patient.ndjson"
    patients.write_bytes(patients.read_bytes() + b'{"resourceType": "Pat\n')
    out = tmp_path / "back"
    result = run(fhir, "--to", "sdtm", "--out", out)
    assert result.exit_code == 3
    assert f"{patients}, line 3: not JSON" in result.stderr
    assert not out.exists()


def test_sdtm_to_fhir_to_sdtm_gives_the_same_files(tmp_path: Path) -> None:
    assert run(SMALL, "--out", tmp_path / "fhir").exit_code == 0
    result = run(tmp_path / "fhir", "--to", "sdtm", "--out", tmp_path / "back")
    assert result.exit_code == 0, result.output
    assert tables(tmp_path / "back") == snapshot(SMALL)


def test_the_bundle_alone_converts_back_to_the_same_files(tmp_path: Path) -> None:
    assert run(SMALL, "--out", tmp_path / "fhir", "--bundle").exit_code == 0
    bundle = tmp_path / "fhir" / "bundle.json"
    assert run(bundle, "--to", "sdtm", "--out", tmp_path / "back").exit_code == 0
    assert tables(tmp_path / "back") == snapshot(SMALL)


def test_the_dalakas1993_fixture_round_trips_byte_for_byte(tmp_path: Path) -> None:
    assert run(DALAKAS, "--out", tmp_path / "fhir").exit_code == 0
    result = run(tmp_path / "fhir", "--to", "sdtm", "--out", tmp_path / "back")
    assert result.exit_code == 0, result.output
    back = tables(tmp_path / "back")
    originals = {p.name: p.read_bytes() for p in DALAKAS.glob("*.csv")}
    assert back == originals


def test_the_bundle_is_a_valid_r4b_transaction(tmp_path: Path) -> None:
    from adapter.fhir_files import loads
    from adapter.validation import validate_resource

    assert run(SMALL, "--out", tmp_path / "fhir", "--bundle").exit_code == 0
    bundle = loads((tmp_path / "fhir" / "bundle.json").read_bytes())
    assert validate_resource(bundle) == []
    requests = {entry["request"]["method"] for entry in bundle["entry"]}
    assert requests == {"PUT"}
    full_urls = [entry["fullUrl"] for entry in bundle["entry"]]
    assert len(set(full_urls)) == len(full_urls)


def test_validate_refuses_invalid_fhir_input_with_exit_3(tmp_path: Path) -> None:
    fhir = tmp_path / "fhir"
    assert run(SMALL, "--out", fhir).exit_code == 0
    patients = fhir / "Patient.ndjson"
    lines = patients.read_bytes().splitlines(keepends=True)
    patients.write_bytes(
        lines[0].replace(
            b'"resourceType":"Patient",', b'"resourceType":"Patient","colour":"blue",', 1
        )
        + b"".join(lines[1:])
    )
    out = tmp_path / "back"
    result = run(fhir, "--to", "sdtm", "--out", out, "--validate")
    assert result.exit_code == 3
    assert "colour: Extra inputs are not permitted" in result.stderr
    assert not out.exists()


def test_fhir_input_without_to_sdtm_gets_a_hint(tmp_path: Path) -> None:
    assert run(SMALL, "--out", tmp_path / "fhir").exit_code == 0
    result = run(tmp_path / "fhir", "--out", tmp_path / "again")
    assert result.exit_code == 3
    assert "add --to sdtm" in result.stderr
