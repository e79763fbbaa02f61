"""`trialfhir analyze`: from an SDTM folder to the report, through the click command."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from adapter.cli import main

from .conftest import FIXTURE
from .test_endpoints import mini_trial


def _sdtm_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "sdtm"
    folder.mkdir()
    for code, frame in mini_trial().tables().items():
        if not frame.empty:
            frame.to_csv(folder / f"{code.lower()}.csv", index=False)
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
    assert result.exit_code == 1
    assert "dm.csv" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_server_source_says_it_is_not_available_yet(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "analyze",
            "--server",
            "http://localhost:8080/fhir",
            "--study",
            "DALAKAS1993",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    assert "not available yet" in result.output
