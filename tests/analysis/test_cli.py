"""`trialfhir analyze`: from an SDTM folder to the report, through the click command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner
from pytest_httpx import HTTPXMock

from adapter.cli import main
from adapter.tables import write_table

from .conftest import FIXTURE
from .test_endpoints import mini_trial


def _sdtm_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "sdtm"
    folder.mkdir()
    for code, table in mini_trial().trial().items():
        if table.rows:
            write_table(table, folder / f"{code.lower()}.csv")
    return folder


def test_analyze_writes_the_report_and_says_where(tmp_path: Path) -> None:
    folder = _sdtm_folder(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["analyze", str(folder), "--out", str(out), "--definition", str(FIXTURE / "study.json")],
    )
    assert result.exit_code == 0, result.output
    assert f"Report: {out / 'report.html'}" in result.output
    assert (out / "report.html").is_file() and (out / "results.json").is_file()


def test_analyze_reads_the_definition_beside_the_data_by_default(tmp_path: Path) -> None:
    folder = _sdtm_folder(tmp_path)
    result = CliRunner().invoke(main, ["analyze", str(folder), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no study definition" in result.output
    shutil.copy(FIXTURE / "study.json", folder / "study.json")
    result = CliRunner().invoke(main, ["analyze", str(folder), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output


def test_a_bad_folder_is_reported_not_a_traceback(tmp_path: Path) -> None:
    folder = _sdtm_folder(tmp_path)
    (folder / "dm.csv").write_text("STUDYID,DOMAIN\nTEST01,DM\n")
    result = CliRunner().invoke(
        main,
        [
            "analyze",
            str(folder),
            "--out",
            str(tmp_path / "o"),
            "--definition",
            str(FIXTURE / "study.json"),
        ],
    )
    assert result.exit_code == 3  # bad input data (adapter/cli/_common.py)
    assert "dm.csv" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_server_and_study_go_together(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["analyze", "--server", "http://localhost:8080/fhir", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "--server and --study go together" in result.output


def test_a_fhir_folder_gives_the_same_results_as_its_sdtm_folder(
    tmp_path: Path, cohort: dict[str, object]
) -> None:
    from adapter.fhir_files import write_ndjson
    from adapter.tables import read_trial
    from mappings.trial import trial_to_fhir

    fhir = tmp_path / "fhir"
    write_ndjson(trial_to_fhir(read_trial(FIXTURE)), fhir)
    runs = {}
    for name, src in (("sdtm", FIXTURE), ("fhir", fhir)):
        out = tmp_path / f"out_{name}"
        result = CliRunner().invoke(
            main,
            ["analyze", str(src), "--out", str(out), "--definition", str(FIXTURE / "study.json")],
        )
        assert result.exit_code == 0, result.output
        runs[name] = json.loads((out / "results.json").read_text())
    assert runs["fhir"]["source"].startswith("FHIR folder")
    assert runs["fhir"]["endpoints"] == runs["sdtm"]["endpoints"]


def test_out_is_replaced_only_when_forced_and_it_is_an_earlier_output(tmp_path: Path) -> None:
    folder = _sdtm_folder(tmp_path)
    definition = str(FIXTURE / "study.json")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    args = ["analyze", str(folder), "--out", str(out), "--definition", definition]
    for extra in ([], ["--force"]):
        refused = CliRunner().invoke(main, [*args, *extra])
        assert refused.exit_code == 11 and "notes.txt" in refused.output
        assert (out / "notes.txt").read_text() == "keep me"
    (out / "notes.txt").unlink()
    assert CliRunner().invoke(main, args).exit_code == 0  # empty: written
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 11 and "--force" in again.output
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0  # its earlier output


def test_a_failed_analysis_leaves_out_as_it_was(tmp_path: Path) -> None:
    folder = _sdtm_folder(tmp_path)
    out = tmp_path / "out"
    bad = tmp_path / "bad.json"
    bad.write_text('{"study": {}}')
    result = CliRunner().invoke(
        main, ["analyze", str(folder), "--out", str(out), "--definition", str(bad)]
    )
    assert result.exit_code == 3
    assert "study definition" in result.output
    assert not out.exists()


def test_the_definition_may_be_named_by_a_shipped_study(tmp_path: Path) -> None:
    folder = _sdtm_folder(tmp_path)
    by_name = tmp_path / "by_name"
    by_file = tmp_path / "by_file"
    for out, definition in ((by_name, "dalakas1993"), (by_file, str(FIXTURE / "study.json"))):
        args = ["analyze", str(folder), "--out", str(out), "--definition", definition]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    named = json.loads((by_name / "results.json").read_text())
    filed = json.loads((by_file / "results.json").read_text())
    assert named["endpoints"] == filed["endpoints"]


def test_an_unknown_definition_name_exits_2_and_lists_the_known_ones(tmp_path: Path) -> None:
    folder = _sdtm_folder(tmp_path)
    args = ["analyze", str(folder), "--out", str(tmp_path / "o"), "--definition", "nosuchstudy"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "'nosuchstudy' is neither a file nor the name of a shipped study" in result.output
    assert "dalakas1993" in result.output
    assert not (tmp_path / "o").exists()


def test_a_server_study_the_package_does_not_ship_asks_for_definition(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    args = ["analyze", "--server", "http://fhir.test/fhir", "--study", "OTHER01"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    message = result.output.strip()
    assert "\n" not in message  # one line
    assert "study OTHER01 is not one the package ships" in message
    assert "pass --definition NAME or FILE" in message
    assert httpx_mock.get_requests() == []  # refused before asking the server anything


def test_a_server_study_the_package_ships_needs_no_definition(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    """DALAKAS1993 finds the shipped definition; the (empty) server then has no such study: exit 6."""
    empty = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
    httpx_mock.add_response(json=empty, is_reusable=True)
    args = ["analyze", "--server", "http://fhir.test/fhir", "--study", "DALAKAS1993"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 6, result.output
    assert "ResearchStudy" in result.output
    assert any(r.url.path.endswith("/ResearchStudy") for r in httpx_mock.get_requests())
