"""Data that cannot support an endpoint: each endpoint names the domain, variable, test code or period
it lacks (results.json, the report), and `analyze` exits 13 when no endpoint can be computed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.analysis import NothingComputable, StudyDefinition, analyze, write_outputs
from adapter.cli import main
from adapter.cli._common import EXIT_NOTHING_COMPUTABLE
from adapter.tables import read_trial, write_table
from mappings.sdtm import DOMAINS, Table, Trial

from .conftest import FIXTURE

CLINICAL = Path(__file__).resolve().parents[1] / "data" / "sdtm_clinical"
"""DM, LB, AE, MH of two patients, as a hospital's export gives them (no arms, no study domains)."""


def test_the_cohort_lacks_nothing(cohort: Trial, definition: StudyDefinition) -> None:
    results = analyze(cohort, definition, "cohort")
    assert results.computable == [f"E{n}" for n in range(1, 9)]
    document = results.to_dict()
    assert document["computable_endpoints"] == results.computable
    assert all(
        e["missing_inputs"] == [] and e["computable"] for e in document["endpoints"].values()
    )
    results.require_computable()  # does not raise


def test_a_clinical_export_names_what_each_endpoint_lacks(definition: StudyDefinition) -> None:
    results = analyze(read_trial(CLINICAL), definition, "clinical")
    assert results.computable == []
    missing = {key: result.missing_inputs for key, result in results.endpoints.items()}
    assert "DM.ARMCD: no subject randomised to a study arm (IVIG, PBO)" in missing["E1"]
    assert "QS: no qs.csv (Questionnaires) in the trial" in missing["E1"]
    assert "RS: no rs.csv (Disease Response) in the trial" in missing["E3"]
    assert "MI: no mi.csv (Microscopic Findings) in the trial" in missing["E6"]
    assert missing["E7"] == ["CM: no cm.csv (Concomitant Medications) in the trial"]
    assert "SE: no se.csv (Subject Elements) in the trial" in missing["E8"]
    for result in results.endpoints.values():
        assert all(value is None for value in result.values.values())
        assert set(result.null_reasons) == set(result.values)
    with pytest.raises(NothingComputable) as raised:
        results.require_computable()
    assert "E7: CM: no cm.csv" in str(raised.value)


def test_an_empty_trial_is_not_computable(definition: StudyDefinition, tmp_path: Path) -> None:
    results = analyze({}, definition, "nothing")
    assert results.computable == []
    assert results.endpoints["E8"].missing_inputs[0] == "DM: no dm.csv (Demographics) in the trial"
    write_outputs(results, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "No endpoint can be computed from these data" in report
    assert "Not computable from these data: the trial lacks DM: no dm.csv" in report


def test_a_missing_test_code_or_crossover_is_named(
    cohort: Trial, definition: StudyDefinition
) -> None:
    qs = cohort["QS"]
    trial = dict(cohort)
    trial["QS"] = Table("QS", qs.columns, [r for r in qs.rows if r["QSTESTCD"] != "NSSTOT"])
    se = cohort["SE"]
    first_only: dict[str, int] = {}
    kept = []
    for row in se.rows:  # keep each subject's rows up to the first treatment element only
        count = first_only.get(row["USUBJID"], 0)
        if row["ETCD"] not in definition.screening_elements:
            first_only[row["USUBJID"]] = count + 1
            if count:
                continue
        kept.append(row)
    trial["SE"] = Table("SE", se.columns, kept)
    results = analyze(trial, definition, "edited")
    assert results.endpoints["E2"].missing_inputs == ["QS: no row with QSTESTCD NSSTOT"]
    assert results.endpoints["E5"].missing_inputs == [
        "SE: no subject with a period of each treatment (crossover)",
        "QS: no row with QSTESTCD NSSTOT",
    ]
    assert "E1" in results.computable and "E2" not in results.computable
    e5 = results.endpoints["E5"].to_dict()
    assert e5["computable"] is False
    assert e5["missing_inputs"] == results.endpoints["E5"].missing_inputs
    assert e5["values"]["diff_mean_nsstot"] is None


def test_analyze_exits_13_and_still_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["analyze", str(CLINICAL), "--out", str(out), "--definition", str(FIXTURE / "study.json")],
    )
    assert result.exit_code == EXIT_NOTHING_COMPUTABLE == 13, result.output
    assert "no endpoint can be computed" in result.output
    assert "E7: CM: no cm.csv (Concomitant Medications) in the trial" in result.output
    assert "published figures matched" not in result.output
    document = json.loads((out / "results.json").read_text())
    assert document["computable_endpoints"] == []


def test_analyze_of_tables_without_rows_exits_13(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    write_table(Table("DM", list(DOMAINS["DM"].required), []), folder / "dm.csv")
    result = CliRunner().invoke(
        main,
        ["analyze", str(folder), "--out", str(tmp_path / "o"), "--definition", "dalakas1993"],
    )
    assert result.exit_code == 13, result.output
    assert "DM.ARMCD: no subject randomised to a study arm" in result.output


def test_dm_and_vs_alone_support_no_endpoint(cohort: Trial, definition: StudyDefinition) -> None:
    """What a hospital export gives (demographics and vital signs), even with the study's arms."""
    results = analyze({d: cohort[d] for d in ("DM", "VS")}, definition, "dm+vs")
    assert results.computable == []
    missing = {key: result.missing_inputs for key, result in results.endpoints.items()}
    assert missing["E8"] == ["SE: no se.csv (Subject Elements) in the trial"]
    assert missing["E7"] == ["CM: no cm.csv (Concomitant Medications) in the trial"]
    assert "EX: no ex.csv (Exposure) in the trial" in missing["E1"]
    assert not any("DM" in line for lines in missing.values() for line in lines)
