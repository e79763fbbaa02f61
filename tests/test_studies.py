"""The studies the package ships (`adapter.studies`) and `trialfhir studies`: names, identifiers, and
how a study definition is found (by name, by file, beside the data, by the study's identifier)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.studies import (
    BUNDLED,
    DefinitionNotFound,
    choose_definition,
    resolve_definition,
    shipped_studies,
    shipped_study,
    study_by_identifier,
)
from mappings.identity import SID_STUDY

# The files the tests read everywhere else: the shipped ones, not a copy.
SHIPPED = Path(__file__).resolve().parents[1] / "adapter" / "studies" / "dalakas1993"


def test_the_package_ships_the_dalakas_study_the_tests_read() -> None:
    studies = shipped_studies()
    assert [s.name for s in studies] == ["dalakas1993"]
    (dalakas,) = studies
    assert dalakas.identifier == "DALAKAS1993"
    assert dalakas.title.startswith("A controlled trial of high-dose intravenous immune globulin")
    assert dalakas.folder == SHIPPED
    assert dalakas.definition_path == SHIPPED / "study.json"
    assert (dalakas.folder / "dm.csv").is_file()
    assert shipped_study(BUNDLED) == dalakas


def test_an_unknown_name_is_refused_with_the_known_names() -> None:
    with pytest.raises(
        DefinitionNotFound, match=r"no study named 'x' is shipped \(known: dalakas1993\)"
    ):
        shipped_study("x")


def test_a_definition_is_a_file_or_a_shipped_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "mine.json"
    own.write_text("{}")
    assert resolve_definition(str(own)) == own
    assert resolve_definition("dalakas1993") == SHIPPED / "study.json"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dalakas1993").write_text("{}")  # a file of that name in the working folder wins
    assert resolve_definition("dalakas1993") == Path("dalakas1993")


def test_a_definition_that_is_neither_a_file_nor_a_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DefinitionNotFound, match="neither a file nor the name of a shipped study"):
        resolve_definition(str(tmp_path / "missing.json"))
    with pytest.raises(DefinitionNotFound, match="is a folder, not a study definition file"):
        resolve_definition(str(tmp_path))


def test_a_study_is_found_by_its_identifier_under_the_project_system_only() -> None:
    assert study_by_identifier("DALAKAS1993") == shipped_study("dalakas1993")
    assert study_by_identifier(f"{SID_STUDY}|DALAKAS1993") == shipped_study("dalakas1993")
    assert study_by_identifier("http://example.org/other|DALAKAS1993") is None
    assert study_by_identifier("dalakas1993") is None  # the identifier, not the name
    assert study_by_identifier("OTHER01") is None


def test_the_definition_is_chosen_given_then_beside_the_data_then_by_study(tmp_path: Path) -> None:
    own = tmp_path / "own.json"
    own.write_text("{}")
    folder = tmp_path / "sdtm"
    folder.mkdir()
    assert choose_definition(str(own), folder, "DALAKAS1993") == own
    with pytest.raises(DefinitionNotFound, match=r"has no study\.json"):
        choose_definition(None, folder, None)
    (folder / "study.json").write_text("{}")
    assert choose_definition(None, folder, None) == folder / "study.json"
    assert choose_definition(None, None, "DALAKAS1993") == SHIPPED / "study.json"
    with pytest.raises(DefinitionNotFound, match=r"study OTHER01 is not one the package ships"):
        choose_definition(None, None, "OTHER01")


def test_the_studies_command_lists_name_identifier_and_title() -> None:
    result = CliRunner().invoke(main, ["studies"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "STUDY", "TITLE"]
    assert lines[1].split()[:2] == ["dalakas1993", "DALAKAS1993"]
    assert "intravenous immune globulin" in lines[1]
    with_paths = CliRunner().invoke(main, ["studies", "--paths"])
    assert f"dalakas1993: {SHIPPED}" in with_paths.output
