"""Reading, checking and writing the trial's SDTM tables (adapter.tables).

Every broken rule is refused with its file, data row (header not counted) and variable, all at once.
The valid base is tests/data/sdtm_small (two subjects of the reconstructed cohort, with a date-time, a
partial date, quotes, commas, non-ASCII text and an extra column); each bad input is that folder with one
thing broken.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from adapter.tables import TableError, read_trial, write_trial, xpt_number_text
from mappings.sdtm import Problem

SMALL = Path(__file__).parent / "data" / "sdtm_small"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "trial"
    shutil.copytree(SMALL, target)
    return target


def rows_of(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def set_cell(folder: Path, domain: str, row: int, variable: str, value: str) -> Path:
    """Set one cell (row = 1-based data row) of `<domain>.csv`; returns the file's path."""
    path = folder / f"{domain}.csv"
    rows = rows_of(path)
    rows[row][rows[0].index(variable)] = value
    write_rows(path, rows)
    return path


def problems_of(folder: Path) -> list[Problem]:
    with pytest.raises(TableError) as caught:
        read_trial(folder)
    return caught.value.problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


# --- reading what is valid ---------------------------------------------------------------------------


def test_every_domain_file_is_read_with_cells_as_written() -> None:
    trial = read_trial(SMALL)
    assert sorted(trial) == sorted(
        ["TS", "TA", "DM", "SE", "VS", "EX", "CM", "QS", "RS", "PR", "MI"]
    )
    vs = trial["VS"]
    second = vs.rows[1]
    assert second["VSSTRESN"] == "62.00"
    assert vs.rows[0]["VSDTC"] == "1990-04-18T09:30"
    assert vs.rows[0]["VSNOTE"] == 'scale "B", recalibrated'
    assert second["VSNOTE"] == "Zürich clinic"
    assert trial["CM"].rows[0]["CMSTDTC"] == "1990-01"


def test_unknown_columns_are_kept_in_file_order(folder: Path) -> None:
    path = folder / "dm.csv"
    rows = rows_of(path)
    rows[0].insert(3, "ZZFIRST")
    rows[0].append("AAFLAG")
    for row in rows[1:]:
        row.insert(3, "z")
        row.append("")
    write_rows(path, rows)
    dm = read_trial(folder)["DM"]
    assert dm.columns == rows[0]
    assert dm.extra_columns == ["ZZFIRST", "AAFLAG"]
    assert dm.rows[0]["AAFLAG"] == ""


def test_a_byte_order_mark_is_tolerated(folder: Path) -> None:
    path = folder / "dm.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_trial(folder)["DM"].columns[0] == "STUDYID"


def test_crlf_line_ends_are_read(folder: Path) -> None:
    path = folder / "dm.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert read_trial(folder)["DM"].rows == read_trial(SMALL)["DM"].rows


def test_a_header_only_file_is_an_empty_domain(folder: Path) -> None:
    path = folder / "rs.csv"
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    rs = read_trial(folder)["RS"]
    assert rs.rows == []
    assert "RSORRES" in rs.columns


def test_only_the_domains_asked_for_are_read() -> None:
    trial = read_trial(SMALL, domains=["dm", "VS"])
    assert sorted(trial) == ["DM", "VS"]


def test_a_domain_asked_for_but_absent_is_named(folder: Path) -> None:
    (folder / "mi.csv").unlink()
    with pytest.raises(TableError) as caught:
        read_trial(folder, domains=["DM", "MI"])
    problem = only(caught.value.problems)
    assert problem.file.endswith("mi.csv")
    assert "not found" in problem.reason


def test_files_that_are_not_domains_are_left_alone(folder: Path) -> None:
    (folder / "notes.csv").write_text("anything,at all\n", encoding="utf-8")
    (folder / "study.json").write_text("{}", encoding="utf-8")
    assert "NOTES" not in read_trial(folder)


# --- writing -----------------------------------------------------------------------------------------


def test_write_back_is_byte_identical(tmp_path: Path) -> None:
    written = write_trial(read_trial(SMALL), tmp_path / "out")
    assert len(written) == 11
    for path in written:
        assert path.read_bytes() == (SMALL / path.name).read_bytes(), path.name


def test_write_back_of_a_bom_crlf_file_is_normalised_but_equal_in_content(
    folder: Path, tmp_path: Path
) -> None:
    path = folder / "vs.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    write_trial(read_trial(folder), tmp_path / "out")
    assert (tmp_path / "out" / "vs.csv").read_bytes() == (SMALL / "vs.csv").read_bytes()


# --- SAS transport -----------------------------------------------------------------------------------


def test_xpt_numbers_become_text(tmp_path: Path) -> None:
    import pandas as pd
    import pyreadstat

    dm = read_trial(SMALL)["DM"]
    frame = pd.DataFrame(dm.rows, columns=dm.columns)
    frame["AGE"] = [45.0, 52.5]
    frame["XNUM"] = [float("nan"), 0.1]
    folder = tmp_path / "xpt"
    folder.mkdir()
    pyreadstat.write_xport(frame, str(folder / "dm.xpt"), table_name="DM", file_format_version=5)
    read = read_trial(folder)["DM"]
    assert read.columns == [*dm.columns, "XNUM"]
    assert [row["AGE"] for row in read.rows] == ["45", "52.5"]
    assert [row["XNUM"] for row in read.rows] == ["", "0.1"]
    assert [row["USUBJID"] for row in read.rows] == [row["USUBJID"] for row in dm.rows]


def test_xpt_number_text_rules() -> None:
    assert xpt_number_text(3.0) == "3"
    assert xpt_number_text(-0.0) == "0"
    assert xpt_number_text(74.5) == "74.5"
    assert xpt_number_text(0.1 + 0.2) == "0.30000000000000004"
    assert xpt_number_text(float("nan")) == ""


def test_a_csv_and_an_xpt_of_the_same_domain_are_refused(folder: Path) -> None:
    (folder / "dm.xpt").write_bytes(b"not really")
    problem = only(problems_of(folder))
    assert "DM is given twice" in problem.reason


def test_a_broken_xpt_is_named(folder: Path) -> None:
    (folder / "dm.csv").unlink()
    (folder / "dm.xpt").write_bytes(b"HEADER RECORD*******garbage")
    problems = problems_of(folder)
    assert any(p.file.endswith("dm.xpt") and "SAS transport" in p.reason for p in problems)


# --- every bad input, with file, row and variable -------------------------------------------------------


def test_a_missing_required_column(folder: Path) -> None:
    path = folder / "vs.csv"
    rows = rows_of(path)
    index = rows[0].index("VSORRESU")
    write_rows(path, [row[:index] + row[index + 1 :] for row in rows])
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row, problem.variable) == ("vs.csv", None, "VSORRESU")
    assert "required column" in problem.reason


def test_an_impossible_date(folder: Path) -> None:
    set_cell(folder, "qs", 3, "QSDTC", "1990-02-30")
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row, problem.variable) == ("qs.csv", 3, "QSDTC")
    assert "day 30" in problem.reason


def test_a_date_that_is_not_iso_8601(folder: Path) -> None:
    set_cell(folder, "dm", 1, "RFSTDTC", "04/17/1990")
    problem = only(problems_of(folder))
    assert (problem.row, problem.variable) == (1, "RFSTDTC")


def test_a_number_that_is_not_a_number(folder: Path) -> None:
    set_cell(folder, "vs", 2, "VSSTRESN", "62,00")
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row, problem.variable) == ("vs.csv", 2, "VSSTRESN")
    assert "not a number" in problem.reason


def test_a_negative_dose(folder: Path) -> None:
    set_cell(folder, "ex", 4, "EXDOSE", "-1")
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row, problem.variable) == ("ex.csv", 4, "EXDOSE")
    assert "negative" in problem.reason


def test_a_sequence_number_that_is_not_an_integer(folder: Path) -> None:
    set_cell(folder, "mi", 5, "MISEQ", "5.5")
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row, problem.variable) == ("mi.csv", 5, "MISEQ")
    assert "not an integer" in problem.reason


def test_a_subject_twice_in_dm(folder: Path) -> None:
    path = folder / "dm.csv"
    rows = rows_of(path)
    rows[2][rows[0].index("USUBJID")] = rows[1][rows[0].index("USUBJID")]
    write_rows(path, rows)
    problems = problems_of(folder)
    twice = [p for p in problems if "already in DM" in p.reason]
    assert len(twice) == 1
    assert (Path(twice[0].file).name, twice[0].row, twice[0].variable) == ("dm.csv", 2, "USUBJID")


def test_a_subject_not_in_dm(folder: Path) -> None:
    set_cell(folder, "qs", 7, "USUBJID", "DALAKAS1993-99-999")
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row, problem.variable) == ("qs.csv", 7, "USUBJID")
    assert "not in DM" in problem.reason


def test_subjects_are_not_checked_against_dm_when_dm_is_absent(folder: Path) -> None:
    (folder / "dm.csv").unlink()
    set_cell(folder, "qs", 7, "USUBJID", "DALAKAS1993-99-999")
    assert "DM" not in read_trial(folder)


def test_a_sequence_number_twice_for_one_subject(folder: Path) -> None:
    path = folder / "ex.csv"
    rows = rows_of(path)
    seq = rows[0].index("EXSEQ")
    rows[3][seq] = rows[2][seq]
    write_rows(path, rows)
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row, problem.variable) == ("ex.csv", 3, "EXSEQ")
    assert "repeats row 2" in problem.reason


def test_the_same_sequence_number_for_two_subjects_is_fine() -> None:
    rows = read_trial(SMALL)["VS"].rows
    assert len({row["USUBJID"] for row in rows}) == 2
    assert {row["VSSEQ"] for row in rows} == {"1"}


def test_a_domain_cell_that_does_not_match_the_file(folder: Path) -> None:
    set_cell(folder, "rs", 2, "DOMAIN", "QS")
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row, problem.variable) == ("rs.csv", 2, "DOMAIN")


def test_a_missing_key_cell(folder: Path) -> None:
    set_cell(folder, "pr", 1, "USUBJID", "")
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row, problem.variable) == ("pr.csv", 1, "USUBJID")
    assert "missing" in problem.reason


def test_more_than_one_studyid(folder: Path) -> None:
    path = folder / "se.csv"
    rows = rows_of(path)
    for row in rows[2:]:
        row[0] = "OTHER1994"
    write_rows(path, rows)
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row, problem.variable) == ("se.csv", 2, "STUDYID")
    assert "'OTHER1994'" in problem.reason and "one trial per folder" in problem.reason


def test_a_row_with_fewer_cells_than_the_header(folder: Path) -> None:
    path = folder / "qs.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[4] = ",".join(lines[4].split(",")[:5])
    path.write_text("\n".join(lines), encoding="utf-8")
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row) == ("qs.csv", 4)
    header = lines[0].split(",")
    assert problem.variable == header[5]
    assert f"5 cells where the header has {len(header)}" in problem.reason


def test_rows_after_a_malformed_row_keep_their_numbers(folder: Path) -> None:
    set_cell(folder, "qs", 6, "QSDTC", "1990-02-30")
    path = folder / "qs.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[4] = ",".join(lines[4].split(",")[:5])
    path.write_text("\n".join(lines), encoding="utf-8")
    problems = problems_of(folder)
    assert [(p.row, p.variable) for p in problems] == [(4, lines[0].split(",")[5]), (6, "QSDTC")]


def test_rows_after_a_badly_quoted_row_keep_their_numbers(folder: Path) -> None:
    set_cell(folder, "qs", 6, "QSDTC", "1990-02-30")
    path = folder / "qs.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[2] = lines[2].replace(",", ',"x"y,', 1)
    path.write_text("\n".join(lines), encoding="utf-8")
    problems = problems_of(folder)
    assert [p.row for p in problems] == [2, 6]
    assert "badly quoted" in problems[0].reason


def test_a_row_with_more_cells_than_the_header(folder: Path) -> None:
    path = folder / "cm.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[2] = lines[2].replace("PREDNISONE", "PREDNISONE,20MG", 1)
    path.write_text("\n".join(lines), encoding="utf-8")
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row) == ("cm.csv", 2)
    assert "unquoted comma" in problem.reason


def test_an_unterminated_quote(folder: Path) -> None:
    path = folder / "vs.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.rstrip("\n") + ',"half a note\n', encoding="utf-8")
    problems = problems_of(folder)
    quote = [p for p in problems if "unterminated quote" in p.reason]
    assert len(quote) == 1
    assert (Path(quote[0].file).name, quote[0].row) == ("vs.csv", 2)


def test_a_file_cut_off_in_its_last_line(folder: Path) -> None:
    path = folder / "mi.csv"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row) == ("mi.csv", 21)
    assert "cut off" in problem.reason


def test_a_zero_byte_file(folder: Path) -> None:
    (folder / "ta.csv").write_bytes(b"")
    problem = only(problems_of(folder))
    assert Path(problem.file).name == "ta.csv"
    assert "0 bytes" in problem.reason


def test_a_file_that_is_not_utf8(folder: Path) -> None:
    path = folder / "vs.csv"
    path.write_bytes(path.read_bytes().replace("Zürich".encode(), "Zürich".encode("latin-1")))
    problem = only(problems_of(folder))
    assert (Path(problem.file).name, problem.row) == ("vs.csv", 2)
    assert "not UTF-8" in problem.reason and "0xFC" in problem.reason


def test_a_folder_without_domain_files(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here", encoding="utf-8")
    problem = only(problems_of(tmp_path))
    assert problem.file == str(tmp_path)
    assert "no domain files" in problem.reason


def test_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path / "nowhere"))
    assert "no such folder" in problem.reason


# --- all at once -----------------------------------------------------------------------------------------


def test_two_bad_rows_give_two_problems(folder: Path) -> None:
    set_cell(folder, "qs", 2, "QSSTRESN", "high")
    set_cell(folder, "qs", 9, "QSSTRESN", "low")
    problems = problems_of(folder)
    assert [(p.row, p.variable) for p in problems] == [(2, "QSSTRESN"), (9, "QSSTRESN")]


def test_problems_of_several_files_and_rules_come_together_in_file_order(folder: Path) -> None:
    set_cell(folder, "ex", 1, "EXSTDTC", "1990-13-01")
    set_cell(folder, "dm", 2, "AGE", "-3")
    (folder / "ta.csv").write_bytes(b"")
    problems = problems_of(folder)
    assert [Path(p.file).name for p in problems] == ["ta.csv", "dm.csv", "ex.csv"]


def test_the_error_message_lists_file_row_variable_and_reason(folder: Path) -> None:
    path = set_cell(folder, "vs", 1, "VSSTRESN", "n/a")
    set_cell(folder, "vs", 2, "VSDTC", "1990-00")
    with pytest.raises(TableError) as caught:
        read_trial(folder)
    lines = str(caught.value).splitlines()
    assert lines[0] == "2 problems in the trial tables:"
    assert lines[1] == f"{path}, row 1, VSSTRESN: 'n/a' is not a number"
    assert lines[2].startswith(f"{path}, row 2, VSDTC: ")
