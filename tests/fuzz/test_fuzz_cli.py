"""Fuzz: the command line (click's CliRunner, in-process) on some of the mutated inputs: `convert` both
ways and `pull` from the changed fake server.

Properties: the exit code is one of the documented ones (docs/cli.md), never 1; no traceback is
printed; a failing command leaves no output folder; a successful `convert` wrote what the library
reads back as the input's tables.
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path

from click.testing import CliRunner, Result
from hypothesis import event, given
from pytest_httpx import HTTPXMock

from adapter.cli import main
from adapter.fhir_files import read_resources
from adapter.tables import read_trial
from mappings.trial import fhir_to_trial

from .fhir_cases import EditResource, ResourceChanges
from .mutations import (
    DOCUMENTED_EXIT_CODES,
    ByteEdit,
    JsonEdit,
    cells,
    deep_object,
    fuzz_settings,
    known,
    valid_resources,
)
from .test_fuzz_fhir_files import SOURCES, NdjsonCase, ndjson_cases
from .test_fuzz_server import (
    BASE,
    NO_RETRY_STATUSES,
    Answer,
    arm,
    pull_answers,
    pytestmark,
    trial_server,
)
from .test_fuzz_tables import CsvCase, csv_cases

__all__ = ["pytestmark"]  # the httpx_mock options of the server tests apply here too


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_documented_exit(result: Result) -> None:
    """Exit code documented and not 1; nothing that looks like a traceback on the terminal."""
    shown = result.output + (result.stderr if result.stderr_bytes is not None else "")
    crash = ""
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        crash = "".join(traceback.format_exception(*result.exc_info))[-1500:]
    assert result.exit_code in DOCUMENTED_EXIT_CODES, (
        f"exit code {result.exit_code} is not a documented one\n{crash}"
    )
    assert "Traceback (most recent call last)" not in shown, "a traceback was printed"


def sorted_rows(trial: dict) -> dict:  # type: ignore[type-arg]
    return {code: (columns, sorted(rows)) for code, (columns, rows) in cells(trial).items()}


@fuzz_settings(40)
@given(case=csv_cases())
def test_convert_of_a_mutated_sdtm_folder_exits_with_a_documented_code(case: CsvCase) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = case.write(Path(tmp) / "trial")
        out = Path(tmp) / "fhir"
        result = invoke("convert", folder, "--out", out)
        event(f"exit {result.exit_code}")
        assert_documented_exit(result)
        if result.exit_code != 0:
            assert not out.exists(), "a failed convert left its output folder"
            return
        back = fhir_to_trial(read_resources(out))
        assert sorted_rows(back) == sorted_rows(read_trial(folder)), (
            "convert wrote FHIR that does not give the input's tables back"
        )


@fuzz_settings(40)
@known(  # issue 8: 100k-deep JSON (RecursionError); a lone surrogate reaches the CSV writer
    {
        "case": NdjsonCase(
            ResourceChanges(
                "sdtm_small",
                (
                    EditResource(
                        0, JsonEdit(("caseSensitive",), "replace", "deep", deep_object(100_000))
                    ),
                ),
            ),
            (),
        )
    },
    {
        "case": NdjsonCase(
            ResourceChanges(
                "sdtm_small",
                (
                    EditResource(
                        27, JsonEdit(("code", "text"), "replace", "lone surrogate", "\ud800")
                    ),
                ),
            ),
            (),
        )
    },
)
@given(case=ndjson_cases())
def test_convert_of_mutated_fhir_to_sdtm_exits_with_a_documented_code(case: NdjsonCase) -> None:
    from .fhir_cases import serialise

    documents, _ = case.changes.apply(valid_resources(SOURCES[case.changes.source]))
    data = serialise(documents)
    for edit in case.text_edits:
        data = edit.apply(data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "fhir"
        folder.mkdir()
        (folder / "resources.ndjson").write_bytes(data)
        out = Path(tmp) / "sdtm"
        result = invoke("convert", folder, "--to", "sdtm", "--out", out)
        event(f"exit {result.exit_code}")
        assert_documented_exit(result)
        if result.exit_code != 0:
            assert not out.exists(), "a failed convert left its output folder"


@fuzz_settings(25)
@known(  # issue 8: InvalidResponse and UnsafeNextLink without exit codes
    {"answer": Answer("ResearchStudy", "bytes", byte_edit=ByteEdit("truncate", 0))},
    {"answer": Answer("ResearchStudy", "next", link="other-origin")},
)
@given(answer=pull_answers(NO_RETRY_STATUSES))
def test_pull_from_a_changed_server_exits_with_a_documented_code(
    httpx_mock: HTTPXMock, answer: Answer | None
) -> None:
    server = trial_server(answer)
    arm(httpx_mock, server)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pulled"
        result = invoke("pull", "--server", BASE, "--study", "DALAKAS1993", "--out", out)
        event(f"exit {result.exit_code}")
        assert_documented_exit(result)
        if result.exit_code != 0:
            assert not out.exists(), "a failed pull left its output folder"
        else:
            assert any(out.glob("*.ndjson")), "pull said done and wrote nothing"
