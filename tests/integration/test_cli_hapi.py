"""The command line against a live HAPI FHIR server: `run --server`, `push` twice, `pull`, then
`convert --to sdtm`, as a user would type them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.cli import main

pytestmark = pytest.mark.hapi

FIXTURE = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"


def endpoint_values(report_dir: Path) -> dict[str, object]:
    results = json.loads((report_dir / "results.json").read_text(encoding="utf-8"))
    return {name: e["values"] for name, e in results["endpoints"].items()}


def test_run_through_the_server_gives_the_same_results_as_without(
    hapi_clean_base_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    local = runner.invoke(main, ["run", "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    served = runner.invoke(
        main, ["run", "--server", hapi_clean_base_url, "--out", str(tmp_path / "served")]
    )
    assert served.exit_code == 0, served.output
    assert "round trip identical" in served.output
    for csv in sorted(FIXTURE.glob("*.csv")):
        assert (tmp_path / "served" / "sdtm" / csv.name).read_bytes() == csv.read_bytes()
    assert endpoint_values(tmp_path / "served" / "report") == endpoint_values(
        tmp_path / "local" / "report"
    )


def test_push_twice_creates_nothing_new_then_pull_and_convert_give_the_tables_back(
    hapi_clean_base_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["push", str(FIXTURE), "--server", hapi_clean_base_url])
    assert first.exit_code == 0, first.output
    second = runner.invoke(main, ["push", str(FIXTURE), "--server", hapi_clean_base_url])
    assert second.exit_code == 0, second.output
    assert "created" not in second.output
    assert re.search(r"unchanged \d+", second.output)

    pulled = tmp_path / "pulled"
    result = runner.invoke(
        main,
        ["pull", "--server", hapi_clean_base_url, "--study", "DALAKAS1993", "--out", str(pulled)],
    )
    assert result.exit_code == 0, result.output
    assert (pulled / "Patient.ndjson").read_text(encoding="utf-8").count("\n") == 15

    back = tmp_path / "back"
    converted = runner.invoke(main, ["convert", str(pulled), "--to", "sdtm", "--out", str(back)])
    assert converted.exit_code == 0, converted.output
    for csv in sorted(FIXTURE.glob("*.csv")):
        assert (back / csv.name).read_bytes() == csv.read_bytes(), csv.name
