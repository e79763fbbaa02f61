"""The reconstructed Dalakas 1993 cohort: reproducible, and consistent with every published figure.

The endpoint figures are recomputed here from the committed CSVs with pandas and scipy, following the
study spec's definitions, independently of the generator's own `check` and of `adapter.analysis`.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from adapter.testing import cohort

FIXTURE = Path(__file__).resolve().parents[1] / "adapter" / "studies" / "dalakas1993"
DOMAINS = ("ts", "ta", "dm", "se", "vs", "ex", "cm", "qs", "rs", "pr", "mi")
IVIG = "IMMUNE GLOBULIN INTRAVENOUS (HUMAN)"


def read(domain: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURE / f"{domain}.csv", dtype=str, keep_default_na=False)


def first_day(value: str) -> dt.date:
    """A (possibly partial) ISO 8601 date by its first possible day."""
    parts = value[:10].split("-")
    return dt.date(
        int(parts[0]),
        int(parts[1]) if len(parts) > 1 else 1,
        int(parts[2]) if len(parts) > 2 else 1,
    )


def first_instant(value: str) -> tuple[dt.date, str]:
    """Sort/compare key: the first possible day, then the time of day if written ('' sorts first)."""
    return (first_day(value), value[11:16] if len(value) > 10 else "")


# -- reproducibility --------------------------------------------------------------------------


def test_regenerating_with_the_seed_reproduces_the_committed_csvs(tmp_path: Path) -> None:
    cohort.write_csv_folder(cohort.generate(1993), tmp_path)
    for domain in DOMAINS:
        assert (tmp_path / f"{domain}.csv").read_bytes() == (
            FIXTURE / f"{domain}.csv"
        ).read_bytes(), domain


def test_another_seed_gives_other_values_but_still_meets_every_figure() -> None:
    other = cohort.generate(7)
    assert other["DM"] != cohort.generate(1993)["DM"]
    _, failures = cohort.check(other)
    assert failures == []


def test_the_generator_check_passes_on_the_fixture_seed() -> None:
    _, failures = cohort.check(cohort.generate(1993))
    assert failures == []


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_every_seed_meets_the_published_figures_by_design(seed: int) -> None:
    _, failures = cohort.check(cohort.generate(seed))
    assert failures == []


def test_the_command_line_writes_the_eleven_tables_and_checks_them(tmp_path: Path) -> None:
    assert cohort.main(["--out", str(tmp_path), "--check"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{d}.csv" for d in DOMAINS)


def test_the_check_reports_a_broken_figure() -> None:
    tables = cohort.generate(1993)
    tables["RS"][0] = {**tables["RS"][0], "RSORRES": "WORSENING"}
    _, failures = cohort.check(tables)
    assert failures and all(f.startswith("RS ") or f.startswith("E4") for f in failures)


# -- labels and conventions ---------------------------------------------------------------------


def test_the_data_says_it_is_reconstructed() -> None:
    ts = read("ts")
    datasrc = ts.loc[ts.TSPARMCD == "DATASRC", "TSVAL"].tolist()
    assert datasrc and datasrc[0].startswith("RECONSTRUCTED")
    assert "RECONSTRUCTED" in (FIXTURE / "README.md").read_text(encoding="utf-8")


def test_every_table_has_studyid_domain_and_unique_seq_per_subject() -> None:
    dm_subjects = set(read("dm").USUBJID)
    for domain in DOMAINS:
        table = read(domain)
        assert set(table.STUDYID) == {"DALAKAS1993"}
        assert set(table.DOMAIN) == {domain.upper()}
        if domain in ("ts", "ta", "dm"):
            continue
        assert set(table.USUBJID) <= dm_subjects
        seq = f"{domain.upper()}SEQ"
        assert not table.duplicated(["USUBJID", seq]).any(), domain


def test_fidelity_traps_are_present() -> None:
    assert "1952-07" in set(read("dm").BRTHDTC)
    assert any(len(v) == 7 for v in read("cm").CMSTDTC)
    assert '"marked"' in (FIXTURE / "mi.csv").read_text(encoding="utf-8")
    assert any("Ø" in v and "," in v for v in read("mi").MIORRES)
    assert any(v.endswith("0") and "." in v for v in read("vs").VSORRES)
    assert "XXNOTE" in read("qs").columns
    assert any("T" in v for v in read("ex").EXSTDTC)


# -- counts (E3, E8) ----------------------------------------------------------------------------


def test_cohort_counts_and_arms() -> None:
    dm = read("dm")
    assert len(dm) == 15 and dm.USUBJID.is_unique
    assert dm.ARMCD.value_counts().to_dict() == {"IVIG": 8, "PBO": 7}
    assert dm.ACTARMCD.value_counts().to_dict() == {
        "IVIG": 4,
        "IVIG-PBO": 4,
        "PBO-IVIG": 4,
        "PBO": 3,
    }
    assert (dm.ACTARMCD.str.split("-").str[0] == dm.ARMCD).all()


def test_ages_within_18_to_55_and_consistent_with_birth_dates() -> None:
    dm = read("dm")
    ages = dm.AGE.astype(int)
    assert ages.min() == 18 and ages.max() == 55
    for birth, start, age in zip(dm.BRTHDTC, dm.RFSTDTC, ages, strict=True):
        ref = first_day(start)
        earliest = first_day(birth)
        latest = earliest if len(birth) == 10 else dt.date(earliest.year, earliest.month, 28)
        for b in (earliest, latest):
            assert ref.year - b.year - ((ref.month, ref.day) < (b.month, b.day)) == age


def test_periods_and_courses() -> None:
    se = read("se")
    periods = se[se.ETCD != "SCRN"]
    assert len(periods) == 23
    assert periods.ETCD.value_counts().to_dict() == {"IVIG": 12, "PBO": 11}
    assert (se.ETCD == "SCRN").sum() == 15
    actarm = read("dm").set_index("USUBJID").ACTARMCD
    for subject, rows in periods.groupby("USUBJID"):
        assert "-".join(rows.sort_values("EPOCH").ETCD) == actarm[subject]


def test_dates_are_in_1990_to_1992() -> None:
    for domain, column in (
        ("se", "SESTDTC"),
        ("se", "SEENDTC"),
        ("ex", "EXSTDTC"),
        ("qs", "QSDTC"),
        ("pr", "PRSTDTC"),
        ("rs", "RSDTC"),
    ):
        years = {first_day(v).year for v in read(domain)[column]}
        assert years <= {1990, 1991, 1992}, (domain, column)


def test_three_monthly_two_day_courses_per_period() -> None:
    ex = read("ex")
    assert set(ex.EXDOSU) == {"g/kg"} and set(ex.EXROUTE) == {"INTRAVENOUS"}
    assert set(ex.loc[ex.EXTRT == IVIG, "EXDOSE"]) == {"1"}
    assert set(ex.loc[ex.EXTRT == "PLACEBO", "EXDOSE"]) == {"0"}
    se = read("se")
    for (subject, epoch), rows in ex.groupby(["USUBJID", "EPOCH"]):
        assert len(rows) == 6
        element = se[se.USUBJID.eq(str(subject)) & se.EPOCH.eq(str(epoch))].ETCD.item()
        assert set(rows.EXTRT) == {IVIG if element == "IVIG" else "PLACEBO"}


def test_clinical_response_distribution() -> None:
    rs = read("rs").merge(read("se")[["USUBJID", "EPOCH", "ETCD"]], on=["USUBJID", "EPOCH"])
    assert len(rs) == 23
    counts = rs.groupby(["ETCD", "RSORRES"]).size().to_dict()
    assert counts == {
        ("IVIG", "MAJOR IMPROVEMENT"): 9,
        ("IVIG", "MILD IMPROVEMENT"): 2,
        ("IVIG", "NO CHANGE"): 1,
        ("PBO", "MILD IMPROVEMENT"): 3,
        ("PBO", "NO CHANGE"): 3,
        ("PBO", "WORSENING"): 5,
    }


# -- score endpoints (E1, E2, E4), following the spec's period definitions ----------------------


def period_scores(testcd: str) -> pd.DataFrame:
    """One row per treatment period: USUBJID, EPOCH, ETCD, baseline, end."""
    se, ex, qs = read("se"), read("ex"), read("qs")
    qs = qs[qs.QSTESTCD.eq(testcd)]
    rows = []
    for period in se[se.ETCD != "SCRN"].itertuples():
        doses = ex[(ex.USUBJID == period.USUBJID) & (ex.EPOCH == period.EPOCH)].EXSTDTC
        first_dose = min(doses, key=first_instant)
        scores = sorted(
            (
                (first_instant(d), float(v))
                for d, v in zip(
                    qs[qs.USUBJID == period.USUBJID].QSDTC,
                    qs[qs.USUBJID == period.USUBJID].QSSTRESN,
                    strict=True,
                )
            ),
        )
        dose_key = first_instant(first_dose)

        def on_or_before(key: tuple[dt.date, str], limit: tuple[dt.date, str]) -> bool:
            return key[0] < limit[0] or (
                key[0] == limit[0] and (not key[1] or not limit[1] or key[1] <= limit[1])
            )

        baseline = [v for k, v in scores if on_or_before(k, dose_key)]
        end_limit = first_instant(str(period.SEENDTC))
        end = [v for k, v in scores if not on_or_before(k, dose_key) and on_or_before(k, end_limit)]
        rows.append(
            {
                "USUBJID": period.USUBJID,
                "EPOCH": period.EPOCH,
                "ETCD": period.ETCD,
                "baseline": baseline[-1],
                "end": end[-1],
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("testcd", "bound"), [("MSSUM", 0.018), ("NSSTOT", 0.035)])
def test_first_period_change_by_randomised_arm(testcd: str, bound: float) -> None:
    scores = period_scores(testcd)
    first = scores[scores.EPOCH == "TREATMENT 1"].merge(read("dm")[["USUBJID", "ARMCD"]])
    change = first.end - first.baseline
    ivig = change[first.ARMCD == "IVIG"].tolist()
    pbo = change[first.ARMCD == "PBO"].tolist()
    assert (len(ivig), len(pbo)) == (8, 7)
    # no ties or zero differences, so scipy's exact tests apply
    assert 0 not in ivig + pbo and len(set(ivig + pbo)) == 15
    assert len({abs(c) for c in ivig}) == 8 and len({abs(c) for c in pbo}) == 7
    within_ivig = stats.wilcoxon(ivig, method="exact").pvalue
    within_pbo = stats.wilcoxon(pbo, method="exact").pvalue
    between = stats.mannwhitneyu(ivig, pbo, alternative="two-sided", method="exact").pvalue
    assert within_ivig == stats.wilcoxon(ivig).pvalue  # the default picks the exact test too
    assert within_ivig <= bound and between <= bound
    assert within_pbo > 0.05
    assert sum(ivig) / 8 > 0 > sum(pbo) / 7


def test_major_responders_strength_before_and_after_ivig() -> None:
    scores = period_scores("MSSUM").merge(read("rs")[["USUBJID", "EPOCH", "RSORRES"]])
    major = scores[(scores.ETCD == "IVIG") & (scores.RSORRES == "MAJOR IMPROVEMENT")]
    assert len(major) == 9
    assert round(major.baseline.mean(), 1) == 74.5
    assert round(major.end.mean(), 1) == 84.7


def test_scores_stay_within_their_scales() -> None:
    qs = read("qs")
    limits = {"MSSUM": (0, 100), "NSSTOT": (0, 60), "RASHGR": (0, 4)}
    for code, (low, high) in limits.items():
        values = qs.loc[qs.QSTESTCD.eq(code), "QSSTRESN"].astype(float)
        assert values.between(low, high).all(), code
    assert (qs.QSORRES == qs.QSSTRESN).all()


# -- biopsies (E6) ------------------------------------------------------------------------------


def test_repeat_biopsies_for_the_five_nearly_normal_patients() -> None:
    pr, mi, ex = read("pr"), read("mi"), read("ex")
    assert set(mi.MIREFID) == set(pr.PRREFID)
    first_ivig = (
        ex[ex.EXTRT == IVIG].groupby("USUBJID").EXSTDTC.agg(lambda s: min(first_day(v) for v in s))
    )
    # everybody has a biopsy before any treatment
    first_dose = ex.groupby("USUBJID").EXSTDTC.agg(lambda s: min(first_day(v) for v in s))
    for subject, dates in pr.groupby("USUBJID").PRSTDTC:
        assert min(first_day(d) for d in dates) < first_dose[subject]
    findings = mi.pivot(index="MIREFID", columns="MITESTCD", values="MISTRESC")
    pairs = []
    for subject, rows in pr.groupby("USUBJID"):
        if subject not in first_ivig:
            continue
        dated = sorted(zip((first_day(d) for d in rows.PRSTDTC), rows.PRREFID, strict=True))
        before = [r for d, r in dated if d < first_ivig[subject]]
        after = [r for d, r in dated if d > first_ivig[subject]]
        if before and after:
            pairs.append((subject, findings.loc[before[-1]], findings.loc[after[-1]]))
    assert len(pairs) == 5
    # the five are IVIG major responders whose strength ended nearly normal (>= 89 of 100)
    scores = period_scores("MSSUM").merge(read("rs")[["USUBJID", "EPOCH", "RSORRES"]])
    ivig = scores[scores.ETCD == "IVIG"].set_index("USUBJID")
    for subject, _, _ in pairs:
        assert ivig.RSORRES[str(subject)] == "MAJOR IMPROVEMENT"
        assert ivig.end[str(subject)] >= 89
    pre = pd.DataFrame([b for _, b, _ in pairs])
    post = pd.DataFrame([a for _, _, a in pairs])
    for code, bound, sign in (("FIBDIAM", 0.04, 1), ("CAPDENS", 0.01, 1), ("CAPDIAM", 0.01, -1)):
        pre_values = pre[code].astype(float).to_numpy()
        post_values = post[code].astype(float).to_numpy()
        assert stats.ttest_rel(pre_values, post_values).pvalue < bound, code
        assert (sign * (post_values - pre_values) > 0).all(), code
    assert (pre.MACCAP == "PRESENT").all() and (post.MACCAP == "ABSENT").all()
    order = ["NONE", "FOCAL", "WIDESPREAD"]
    for code in ("ICAM1", "MHC1"):
        assert all(
            order.index(a) < order.index(b) for b, a in zip(pre[code], post[code], strict=True)
        ), code


# -- prednisone (E7) ----------------------------------------------------------------------------


def test_mean_daily_prednisone_is_25_mg() -> None:
    dm, cm = read("dm"), read("cm")
    assert set(cm.CMTRT) == {"PREDNISONE"} and set(cm.CMDOSU) == {"mg"}
    assert set(cm.CMDOSFRQ) == {"QD", "ONCE"}
    means = []
    for subject in dm.itertuples():
        start, end = first_day(str(subject.RFSTDTC)), first_day(str(subject.RFENDTC))
        total = Fraction(0)
        for row in cm[cm.USUBJID == subject.USUBJID].itertuples():
            row_start = first_day(str(row.CMSTDTC))
            if row.CMDOSFRQ == "QD":
                days = (min(end, first_day(str(row.CMENDTC))) - max(start, row_start)).days + 1
                total += Fraction(str(row.CMDOSE)) * max(0, days)
            elif start <= row_start <= end:
                total += Fraction(str(row.CMDOSE))
        means.append(total / ((end - start).days + 1))
    mean = sum(means, Fraction(0)) / len(means)
    assert round(float(mean), 1) == 25.0
    assert len(set(means)) > 5  # not everybody on the same dose


# -- scaled cohort (benchmarks) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def scaled() -> cohort.Tables:
    return cohort.generate_scaled(1000, seed=11)


def test_scaled_cohort_size(scaled: cohort.Tables) -> None:
    assert len(scaled["DM"]) == 1000
    total = sum(len(rows) for rows in scaled.values())
    assert 150_000 <= total <= 260_000


def test_scaled_cohort_keeps_the_rules(scaled: cohort.Tables) -> None:
    subjects = {r["USUBJID"] for r in scaled["DM"]}
    assert len(subjects) == 1000
    for domain, rows in scaled.items():
        assert all(r["DOMAIN"] == domain for r in rows)
        if domain in ("TS", "TA", "DM"):
            continue
        seq = f"{domain}SEQ"
        keys = [(r["USUBJID"], r[seq]) for r in rows]
        assert len(set(keys)) == len(keys), domain
        assert {r["USUBJID"] for r in rows} <= subjects, domain
        for r in rows:
            for column, value in r.items():
                if column.endswith("DTC") and value:
                    first_day(value)  # raises on an invalid date
                    assert len(value) in (4, 7, 10, 16), (domain, column, value)


def test_scaled_cohort_is_deterministic_and_writable(tmp_path: Path) -> None:
    a, b = cohort.generate_scaled(20, seed=3), cohort.generate_scaled(20, seed=3)
    assert a == b
    cohort.write_csv_folder(a, tmp_path)
    qs = pd.read_csv(tmp_path / "qs.csv", dtype=str, keep_default_na=False)
    items = qs[qs.QSTESTCD.str.match(r"^MS..[LR]$")]
    assert not items.empty
    # the per-muscle items add up to the sum score at the same visit (MSSUM = half their sum)
    for (subject, visit), rows in items.groupby(["USUBJID", "VISITNUM"]):
        total = qs[
            qs.USUBJID.eq(str(subject)) & qs.VISITNUM.eq(str(visit)) & qs.QSTESTCD.eq("MSSUM")
        ]
        assert rows.QSSTRESN.astype(int).sum() / 2 == float(total.QSSTRESN.item())


def test_the_clinical_tables_are_opt_in_and_leave_the_others_alone(tmp_path: Path) -> None:
    from adapter.tables import read_trial

    plain = cohort.generate_scaled(20, seed=3)
    with_clinical = cohort.generate_scaled(20, seed=3, clinical=True)
    assert set(with_clinical) - set(plain) == {"LB", "AE", "MH"}
    assert {d: with_clinical[d] for d in plain} == plain  # the other tables, unchanged
    assert with_clinical == cohort.generate_scaled(20, seed=3, clinical=True)
    lb = with_clinical["LB"]
    assert len(lb) == 20 * 14
    assert {r["LBNRIND"] for r in lb} >= {"HIGH", "NORMAL"}
    assert any(r["LBSTRESC"] and not r["LBSTRESN"] for r in lb)  # results in words or with a sign
    assert any(r["LBSTRESN"].endswith("0") and "." in r["LBSTRESN"] for r in lb)  # precision
    assert {len(r["MHSTDTC"]) for r in with_clinical["MH"]} >= {4, 7}  # partial dates
    cohort.write_csv_folder(with_clinical, tmp_path)
    trial = read_trial(tmp_path)  # the tables layer accepts them: every --DTC, number, --SEQ valid
    assert {d: len(t.rows) for d, t in trial.items()} == {
        d: len(rows) for d, rows in with_clinical.items()
    }
    assert "XXNOTE" in trial["LB"].columns and "XXNOTE" in trial["MH"].columns
