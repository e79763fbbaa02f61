"""E1-E8 on small hand-made trials whose answers are known by construction."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import pytest
from scipy import stats as scipy_stats

from adapter.analysis import StudyDefinition, analyze
from adapter.analysis import stats as analysis_stats
from mappings.sdtm import Table

from .trial_builder import TrialBuilder, simple_subject

IVIG_CHANGES = [2.0, 4.0, 6.0, 8.0, 10.0]
PLACEBO_CHANGES = [-1.0, 3.0, -5.0, 7.0]

# The spec's value names, copied from docs (study-dalakas1993.md), not from the code.
SPEC_VALUE_NAMES = {
    "E1": [
        "n_ivig",
        "n_placebo",
        "change_mean_ivig",
        "change_mean_placebo",
        "p_within_ivig",
        "p_within_placebo",
        "p_between_mwu",
        "p_between_welch",
    ],
    "E3": [
        "ivig_major",
        "ivig_mild",
        "ivig_none",
        "ivig_worse",
        "placebo_major",
        "placebo_mild",
        "placebo_none",
        "placebo_worse",
        "p_fisher_major",
    ],
    "E4": ["n", "baseline_mean", "end_mean"],
    "E5": ["n", "diff_mean_mssum", "p_mssum", "diff_mean_nsstot", "p_nsstot"],
    "E6": [
        "n",
        "fibdiam_pre_mean",
        "fibdiam_post_mean",
        "p_fibdiam_t",
        "capdens_pre_mean",
        "capdens_post_mean",
        "p_capdens_t",
        "capdiam_pre_mean",
        "capdiam_post_mean",
        "p_capdiam_t",
        "mac_resolved",
    ],
    "E7": ["prednisone_mean_mg_per_day"],
    "E8": [
        "n_ivig_arm",
        "n_placebo_arm",
        "age_min",
        "age_max",
        "n_ivig_to_placebo",
        "n_placebo_to_ivig",
        "ivig_courses",
        "placebo_courses",
    ],
}
SPEC_VALUE_NAMES["E2"] = SPEC_VALUE_NAMES["E1"]


def mini_trial() -> TrialBuilder:
    """5 IVIG-arm and 4 placebo-arm patients (2 + 2 crossovers), plus one without any period."""
    trial = TrialBuilder()
    for i, change in enumerate(IVIG_CHANGES):
        simple_subject(
            trial,
            f"A{i}",
            "IVIG",
            {"MSSUM": change, "NSSTOT": change / 2},
            second="PBO" if i < 2 else None,
            second_changes={"MSSUM": -1.0 - i, "NSSTOT": 0.0},
            responses=("MAJOR IMPROVEMENT", "WORSENING"),
        )
    for i, change in enumerate(PLACEBO_CHANGES):
        simple_subject(
            trial,
            f"P{i}",
            "PBO",
            {"MSSUM": change, "NSSTOT": 1.0},
            second="IVIG" if i < 2 else None,
            second_changes={"MSSUM": 9.0 + i, "NSSTOT": 3.0},
            responses=("NO CHANGE", "MILD IMPROVEMENT"),
        )
    trial.subject("X1", "PBO", age=19)
    return trial


@pytest.fixture
def mini(definition: StudyDefinition) -> dict[str, dict[str, object]]:
    results = analyze(mini_trial().trial(), definition, "mini")
    return {key: endpoint.to_dict() for key, endpoint in results.endpoints.items()}


def test_every_endpoint_reports_exactly_the_spec_value_names(
    mini: dict[str, dict[str, object]],
) -> None:
    for endpoint, names in SPEC_VALUE_NAMES.items():
        values = mini[endpoint]["values"]
        assert isinstance(values, dict)
        assert list(values) == names, endpoint


def test_e1_first_period_by_randomised_arm(mini: dict[str, dict[str, object]]) -> None:
    values = mini["E1"]["values"]
    assert isinstance(values, dict)
    assert values["n_ivig"] == 5 and values["n_placebo"] == 4
    assert values["change_mean_ivig"] == pytest.approx(6.0)
    assert values["change_mean_placebo"] == pytest.approx(1.0)
    assert values["p_within_ivig"] == pytest.approx(0.0625)  # 5 positive pairs: exact floor
    # placebo -1, 3, -5, 7: ranks 1, 2, 3, 4; W- = 1 + 3 = 4; subsets of {1,2,3,4} summing
    # to <= 4: {}, {1}, {2}, {3}, {4}, {1,2}, {1,3} = 7 of 16; two-sided 2 * 7/16
    assert values["p_within_placebo"] == pytest.approx(0.875)
    assert values["p_between_welch"] == pytest.approx(
        analysis_stats.welch_t(IVIG_CHANGES, PLACEBO_CHANGES).p
    )
    assert mini["E1"]["methods"] == {
        "p_between_mwu": "Mann-Whitney U, exact",
        "p_between_welch": "Welch t-test",
        "p_within_ivig": "wilcoxon signed-rank, exact",
        "p_within_placebo": "wilcoxon signed-rank, exact",
    }
    assert mini["E1"]["excluded"] == [{"usubjid": "X1", "reason": "no treatment period in SE"}]


def test_e2_uses_the_symptom_score(mini: dict[str, dict[str, object]]) -> None:
    values = mini["E2"]["values"]
    assert isinstance(values, dict)
    assert values["change_mean_ivig"] == pytest.approx(3.0)  # halves of 2..10
    assert values["change_mean_placebo"] == pytest.approx(1.0)
    assert values["p_within_placebo"] is not None  # four equal changes: ties, still a P
    methods = mini["E2"]["methods"]
    assert isinstance(methods, dict)
    assert "ties" in methods["p_within_placebo"]


def test_e3_counts_responses_by_treatment_received(mini: dict[str, dict[str, object]]) -> None:
    values = mini["E3"]["values"]
    assert isinstance(values, dict)
    assert {k: v for k, v in values.items() if k != "p_fisher_major"} == {
        "ivig_major": 5,
        "ivig_mild": 2,
        "ivig_none": 0,
        "ivig_worse": 0,
        "placebo_major": 0,
        "placebo_mild": 0,
        "placebo_none": 4,
        "placebo_worse": 2,
    }
    # [[5, 2], [0, 6]]: P(observed) = C(7,5)C(6,0)/C(13,5) = 21/1287; the only table as or
    # more extreme on the other side is [[0, 7], [5, 1]] = C(7,0)C(6,5)/C(13,5) = 6/1287.
    assert values["p_fisher_major"] == pytest.approx(27 / 1287)


def test_e4_major_ivig_responders_before_and_after(mini: dict[str, dict[str, object]]) -> None:
    assert mini["E4"]["values"] == {"n": 5, "baseline_mean": 60.0, "end_mean": 66.0}


def test_e5_crossover_differences(mini: dict[str, dict[str, object]]) -> None:
    values = mini["E5"]["values"]
    assert isinstance(values, dict)
    # IVIG change minus placebo change: A0 2-(-1)=3, A1 4-(-2)=6, P0 9-(-1)=10, P1 10-3=7
    assert values["n"] == 4
    assert values["diff_mean_mssum"] == pytest.approx(6.5)
    assert values["p_mssum"] == pytest.approx(0.125)  # 4 positive distinct: 2/16
    # symptoms: A0 1-0, A1 2-0, P0 3-1, P1 3-1 -> mean 7/4
    assert values["diff_mean_nsstot"] == pytest.approx(1.75)


def test_e8_cohort_counts(mini: dict[str, dict[str, object]]) -> None:
    assert mini["E8"]["values"] == {
        "n_ivig_arm": 5,
        "n_placebo_arm": 5,
        "age_min": 19,
        "age_max": 40,
        "n_ivig_to_placebo": 2,
        "n_placebo_to_ivig": 2,
        "ivig_courses": 7,
        "placebo_courses": 6,
    }


def biopsy_trial() -> TrialBuilder:
    trial = TrialBuilder()
    for usubjid in ("B1", "B2", "B3", "B4"):
        simple_subject(trial, usubjid, "IVIG", {"MSSUM": 5.0})  # first IVIG dose 1991-02-01T10:00
    simple_subject(trial, "B5", "PBO", {"MSSUM": 0.0})
    old = {"FIBDIAM": 30, "CAPDENS": 100, "CAPDIAM": 12.0, "MACCAP": "ABSENT"}
    trial.biopsy("B1", "B1-0", "1990-12-01", old)  # earlier: not the one used
    trial.biopsy(
        "B1",
        "B1-1",
        "1991-01-20",
        {"FIBDIAM": 40, "CAPDENS": 200, "CAPDIAM": 9.5, "MACCAP": "PRESENT", "ICAM1": "WIDESPREAD"},
    )
    trial.biopsy(
        "B1",
        "B1-2",
        "1991-04-20",
        {"FIBDIAM": 46, "CAPDENS": 260, "CAPDIAM": 7.0, "MACCAP": "ABSENT", "ICAM1": "FOCAL"},
    )
    trial.biopsy(
        "B2",
        "B2-1",
        "1991-01-25",
        {"FIBDIAM": 42, "CAPDENS": 190, "CAPDIAM": 9.0, "MACCAP": "PRESENT", "ICAM1": "FOCAL"},
    )
    trial.biopsy(
        "B2",
        "B2-2",
        "1991-04-21",
        {"FIBDIAM": 47, "CAPDENS": 250, "CAPDIAM": 7.2, "MACCAP": "PRESENT", "ICAM1": "FOCAL"},
    )
    # dose day, 2 hours before the 10:00 infusion: before
    trial.biopsy(
        "B3",
        "B3-1",
        "1991-02-01T08:00",
        {"FIBDIAM": 38, "CAPDENS": 210, "CAPDIAM": 10.0, "MACCAP": "ABSENT"},
    )
    trial.biopsy(
        "B3",
        "B3-2",
        "1991-04-22",
        {"FIBDIAM": 45.5, "CAPDENS": 280, "CAPDIAM": 7.5, "MACCAP": "ABSENT"},
    )
    trial.biopsy("B4", "B4-1", "1991-01-20", {"FIBDIAM": 41})
    trial.biopsy("B5", "B5-1", "1991-01-20", {"FIBDIAM": 41})
    return trial


def test_e6_pairs_the_last_biopsy_before_and_after_the_first_ivig_dose(
    definition: StudyDefinition,
) -> None:
    result = analyze(biopsy_trial().trial(), definition, "biopsies").endpoints["E6"]
    values = result.values
    assert values["n"] == 3
    assert values["fibdiam_pre_mean"] == pytest.approx(40.0)
    assert values["fibdiam_post_mean"] == pytest.approx((46 + 47 + 45.5) / 3)
    diffs = [6.0, 5.0, 7.5]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    t = mean / (sd / math.sqrt(3))
    assert values["p_fibdiam_t"] == pytest.approx(2 * scipy_stats.t.sf(t, df=2))
    assert values["capdens_pre_mean"] == pytest.approx(200.0)
    assert values["capdiam_post_mean"] == pytest.approx((7.0 + 7.2 + 7.5) / 3)
    assert values["mac_resolved"] == 1  # B1 only: B2 still present, B3 never present
    assert result.methods["p_fibdiam_t"] == "paired t-test"
    assert result.methods["p_fibdiam_wilcoxon"].startswith("wilcoxon")
    assert result.supplementary["p_fibdiam_wilcoxon"] == pytest.approx(0.25)  # 3 pairs: 2/8
    assert result.supplementary["icam1_reduced"] == 1
    reasons = {(e.usubjid, e.reason) for e in result.excluded}
    assert ("B4", "no biopsy dated after the first IVIG dose") in reasons
    assert ("B5", "no dated IVIG dose to pair the biopsies around") in reasons


def prednisone_trial() -> TrialBuilder:
    trial = TrialBuilder()
    trial.subject("C1", "IVIG", rfst="1991-01-01", rfen="1991-01-10")  # 10 days
    trial.prednisone("C1", 20, "QD", "1990-12-25", "1991-01-05")  # 5 days inside: 100 mg
    trial.prednisone("C1", 10, "QD", "1991-01-08", "1991-01-20")  # 3 days inside: 30 mg
    trial.prednisone("C1", 50, "ONCE", "1991-01-10T08:00", "1991-01-10T08:00")  # inside: 50
    trial.prednisone("C1", 100, "ONCE", "1991-01-11", "1991-01-11")  # outside
    trial.prednisone("C1", 5, "", "1990-12-31")  # single dose, outside
    trial.subject("C2", "PBO", rfst="1991-01-01", rfen="1991-01-04")  # 4 days
    trial.prednisone("C2", 10, "BID", "1991-01-03", "1991-01-31")  # 2 days x 20 mg = 40 mg
    trial.subject("C3", "PBO")
    trial.prednisone("C3", 10, "QD", "1991-01-03")  # no end date
    trial.subject("C4", "PBO")  # no prednisone records
    trial.subject("C5", "PBO", rfen="")
    trial.prednisone("C5", 10, "QD", "1991-01-03", "1991-02-03")
    trial.subject("C6", "IVIG")
    trial.prednisone("C6", 0.01, "QD", "1991-01-03", "1991-02-03", unit="g")
    return trial


def test_e7_counts_prednisone_days_inside_the_reference_window(
    definition: StudyDefinition,
) -> None:
    result = analyze(prednisone_trial().trial(), definition, "cm").endpoints["E7"]
    # C1: (100 + 30 + 50) / 10 = 18 mg/day; C2: 40 / 4 = 10 mg/day
    assert result.values["prednisone_mean_mg_per_day"] == pytest.approx(14.0)
    assert result.supplementary["n"] == 2
    assert {e.usubjid: e.reason for e in result.excluded} == {
        "C3": "daily prednisone record without an end date (CMENDTC)",
        "C4": "no PREDNISONE records in CM",
        "C5": "reference window (DM.RFSTDTC/RFENDTC) incomplete",
        "C6": "prednisone dose unit 'g' is not mg",
    }


def test_a_missing_domain_nulls_only_the_endpoints_that_need_it(
    definition: StudyDefinition,
) -> None:
    tables = mini_trial().trial()
    del tables["MI"]
    tables["CM"].columns.remove("CMDOSFRQ")
    for row in tables["CM"].rows:
        del row["CMDOSFRQ"]
    results = analyze(tables, definition, "partial")
    e6 = results.endpoints["E6"].to_dict()
    assert all(value is None for value in e6["values"].values())
    assert set(e6["null_reasons"].values()) == {"mi.csv: the file is missing"}
    e7 = results.endpoints["E7"].to_dict()
    assert e7["null_reasons"] == {
        "prednisone_mean_mg_per_day": "cm.csv: variable CMDOSFRQ is missing"
    }
    assert results.endpoints["E1"].values["n_ivig"] == 5


def test_subjects_without_scores_are_left_out_with_a_reason(definition: StudyDefinition) -> None:
    trial = mini_trial()
    trial.subject("N1", "IVIG")
    trial.period("N1", "IVIG", "TREATMENT 1", "1991-02-01", "1991-04-30")
    trial.dose("N1", "TREATMENT 1", "1991-02-01")
    trial.score("N1", "MSSUM", "1991-01-20", 50)  # baseline only
    trial.response("N1", "TREATMENT 1", "MAJOR IMPROVEMENT")
    results = analyze(trial.trial(), definition, "gaps")
    e1 = results.endpoints["E1"]
    assert e1.values["n_ivig"] == 5
    assert (
        "N1",
        "TREATMENT 1: no MSSUM score after the first dose and on or before the period end",
    ) in {(e.usubjid, e.reason) for e in e1.excluded}
    e4 = results.endpoints["E4"]
    assert e4.values["n"] == 5 and e4.supplementary["major_ivig_periods"] == 6
    assert [e.usubjid for e in e4.excluded] == ["N1"]


def test_an_empty_trial_gives_nulls_with_reasons_not_a_crash(
    definition: StudyDefinition,
) -> None:
    results = analyze({}, definition, "nothing")
    document = json.loads(results.to_json())
    for endpoint in document["endpoints"].values():
        for name, value in endpoint["values"].items():
            assert value is None
            assert endpoint["null_reasons"][name].endswith("is missing")


def test_a_definition_can_change_the_test(definition: StudyDefinition) -> None:
    tests = {k: dict(v) for k, v in definition.tests.items()}
    tests["E1"]["p_within_ivig"] = "paired_t"
    changed = dataclasses.replace(definition, tests=tests)
    e1 = analyze(mini_trial().trial(), changed, "mini").endpoints["E1"]
    assert e1.methods["p_within_ivig"] == "paired t-test"
    assert e1.values["p_within_ivig"] == pytest.approx(analysis_stats.paired_t(IVIG_CHANGES).p)


def test_the_reconstructed_label_comes_from_the_trial_summary(
    definition: StudyDefinition,
) -> None:
    trial = mini_trial()
    assert analyze(trial.trial(), definition, "x").reconstructed is False
    trial.trial_summary("DATASRC", "Reconstructed from published aggregates")
    assert analyze(trial.trial(), definition, "x").reconstructed is True


def test_results_json_is_deterministic_and_has_the_spec_shape(
    definition: StudyDefinition,
) -> None:
    tables = mini_trial().trial()
    first = analyze(tables, definition, "mini").to_json()
    shuffled = {
        k: Table(v.domain, v.columns, random.Random(3).sample(v.rows, len(v.rows)))
        for k, v in tables.items()
    }
    second = analyze(shuffled, definition, "mini").to_json()
    assert first == second
    document = json.loads(first)
    assert set(document) >= {"study", "source", "endpoints"}
    assert sorted(document["endpoints"]) == [f"E{i}" for i in range(1, 9)]
    for endpoint in document["endpoints"].values():
        assert {"title", "values", "published", "methods", "excluded"} <= set(endpoint)


def test_e1_keeps_a_subject_in_the_randomised_arm_whatever_the_first_period(
    definition: StudyDefinition,
) -> None:
    trial = mini_trial()
    # randomised to placebo, but the first period given was IVIG (change +20)
    simple_subject(trial, "W1", "PBO", {"MSSUM": 20.0, "NSSTOT": 1.0})
    tables = trial.trial()
    for row in tables["SE"].rows:
        if row["USUBJID"] == "W1" and row["EPOCH"] == "TREATMENT 1":
            row["ETCD"] = "IVIG"
    results = analyze(tables, definition, "off-arm")
    e1 = results.endpoints["E1"]
    assert e1.values["n_placebo"] == 5
    assert e1.values["change_mean_placebo"] == pytest.approx((sum(PLACEBO_CHANGES) + 20.0) / 5)
    assert e1.supplementary["n_first_period_not_randomised_treatment"] == 1
    # the builder writes ACTARMCD = ARMCD: wrong for W1, the 4 crossovers and X1 (no period)
    assert results.endpoints["E8"].supplementary["n_actarmcd_not_as_in_se"] == 1 + 4 + 1
