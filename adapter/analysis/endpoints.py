"""Endpoints E1-E8 of the study spec, computed from the trial tables and the study definition.

`analyze(trial, definition, source)` returns a `Results`: the endpoints, and what the report draws
beside them (the per-subject datasets and the score trajectories), all read from the trial's rows.
Each endpoint is computed on its own: a domain or variable it needs that is missing makes its values
null with the reason; a subject without what it needs is left out of that endpoint and listed in
`excluded` with the reason. Nothing here reads files, talks to a server or logs patient data.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from functools import cached_property

from adapter.analysis import stats
from adapter.analysis.dates import Instant, days_inclusive, parse_instant
from adapter.analysis.definition import ROLES, Role, StudyDefinition
from adapter.analysis.inputs import missing_inputs
from adapter.analysis.periods import (
    MissingInputError,
    PeriodChange,
    ScoreReading,
    TreatmentPeriod,
    change_over_period,
    domain_rows,
    has_columns,
    result_number,
    score_readings,
    to_number,
    treatment_periods,
)
from adapter.analysis.results import (
    Cell,
    Dataset,
    EndpointResult,
    Exclusion,
    Results,
    Trajectories,
    Trajectory,
    TrajectoryPoint,
    Value,
)
from mappings.sdtm import Trial

__all__ = ["VALUE_NAMES", "analyze", "is_reconstructed"]

#: The value names of each endpoint, exactly as the spec fixes them (the results.json contract).
VALUE_NAMES: dict[str, tuple[str, ...]] = {
    "E1": (
        "n_ivig",
        "n_placebo",
        "change_mean_ivig",
        "change_mean_placebo",
        "p_within_ivig",
        "p_within_placebo",
        "p_between_mwu",
        "p_between_welch",
    ),
    "E3": (
        "ivig_major",
        "ivig_mild",
        "ivig_none",
        "ivig_worse",
        "placebo_major",
        "placebo_mild",
        "placebo_none",
        "placebo_worse",
        "p_fisher_major",
    ),
    "E4": ("n", "baseline_mean", "end_mean"),
    "E5": ("n", "diff_mean_mssum", "p_mssum", "diff_mean_nsstot", "p_nsstot"),
    "E6": (
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
    ),
    "E7": ("prednisone_mean_mg_per_day",),
    "E8": (
        "n_ivig_arm",
        "n_placebo_arm",
        "age_min",
        "age_max",
        "n_ivig_to_placebo",
        "n_placebo_to_ivig",
        "ivig_courses",
        "placebo_courses",
    ),
}
VALUE_NAMES["E2"] = VALUE_NAMES["E1"]

CATEGORIES = ("major", "mild", "none", "worse")


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _sd(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) >= 2 else None


@dataclass
class _Trial:
    """The trial's tables and the definition, with the derived pieces several endpoints share."""

    tables: Trial
    definition: StudyDefinition
    datasets: dict[str, Dataset] = field(default_factory=dict)
    score_cache: dict[str, dict[str, list[ScoreReading]]] = field(default_factory=dict)

    @cached_property
    def periods(self) -> dict[str, list[TreatmentPeriod]]:
        return treatment_periods(self.tables, self.definition)

    @cached_property
    def randomised(self) -> dict[str, str]:
        """USUBJID -> randomised ARMCD, for every DM subject."""
        dm = domain_rows(self.tables, "DM", ("USUBJID", "ARMCD"))
        return {row["USUBJID"]: row["ARMCD"] for row in dm}

    def readings(self, testcd: str) -> dict[str, list[ScoreReading]]:
        """Every subject's dated readings of one score (computed once per score)."""
        if testcd not in self.score_cache:
            self.score_cache[testcd] = score_readings(self.tables, testcd)
        return self.score_cache[testcd]

    @cached_property
    def responses(self) -> dict[tuple[str, str], str]:
        """(USUBJID, EPOCH) -> the RSORRES of the last clinical-response row of that period."""
        rs = domain_rows(self.tables, "RS", ("USUBJID", "RSTESTCD", "RSORRES", "EPOCH"))
        rows = [r for r in rs if r["RSTESTCD"] == self.definition.response_testcd]

        def order(row: dict[str, str]) -> tuple[bool, tuple[date, time], float]:
            when = parse_instant(row.get("RSDTC", ""))
            seq = to_number(row.get("RSSEQ", "")) or 0.0
            return (when is not None, when.sort_key() if when else (date.min, time.min), seq)

        out: dict[tuple[str, str], str] = {}
        for row in sorted(rows, key=order):
            out[(row["USUBJID"], row["EPOCH"])] = row["RSORRES"].strip()
        return out


class _Builder:
    """Collects one endpoint's values, methods, exclusions and null reasons."""

    def __init__(self, trial: _Trial, endpoint: str) -> None:
        self.trial = trial
        self.endpoint = endpoint
        definition = trial.definition
        self.result = EndpointResult(
            endpoint=endpoint,
            title=definition.endpoint_titles.get(endpoint, endpoint),
            values=dict.fromkeys(VALUE_NAMES[endpoint]),
            published=dict(definition.published.get(endpoint, {})),
        )

    def value(self, name: str, value: Value, reason: str = "no data") -> None:
        if name in self.result.values:
            self.result.values[name] = value
            if value is None:
                self.result.null_reasons[name] = reason
            else:
                self.result.null_reasons.pop(name, None)
        else:
            self.result.supplementary[name] = value

    def tested(self, name: str, outcome: stats.TestResult) -> None:
        self.value(name, outcome.p, outcome.reason or "no data")
        self.result.methods[name] = outcome.method

    def exclude(self, usubjid: str, reason: str) -> None:
        self.result.excluded.append(Exclusion(usubjid, reason))


# ---------------------------------------------------------------- E1, E2: first period by arm


def _score_by_arm(trial: _Trial, endpoint: str) -> EndpointResult:
    b = _Builder(trial, endpoint)
    definition = trial.definition
    score = definition.score(endpoint)
    readings = trial.readings(score.code)
    changes: dict[Role, list[PeriodChange]] = {role: [] for role in ROLES}
    off_arm = 0
    for usubjid, armcd in sorted(trial.randomised.items()):
        role = definition.role_of_arm(armcd)
        if role is None:
            b.exclude(usubjid, f"randomised arm (DM.ARMCD) {armcd!r} is not a study arm")
            continue
        periods = trial.periods.get(usubjid, [])
        if not periods:
            b.exclude(usubjid, "no treatment period in SE")
            continue
        first = periods[0]
        off_arm += first.role != role
        outcome = change_over_period(readings.get(usubjid, []), first, score.code)
        if isinstance(outcome, str):
            b.exclude(usubjid, outcome)
        else:
            changes[role].append(outcome)
    deltas = {role: [c.change for c in changes[role]] for role in ROLES}
    tests = definition.tests[endpoint]
    for role in ROLES:
        b.value(f"n_{role}", len(changes[role]))
        b.value(f"change_mean_{role}", _mean(deltas[role]), f"no {role} subject with a change")
        b.value(f"change_sd_{role}", _sd(deltas[role]))
        b.value(f"baseline_mean_{role}", _mean([c.baseline.value for c in changes[role]]))
        b.value(f"end_mean_{role}", _mean([c.end.value for c in changes[role]]))
        b.tested(f"p_within_{role}", stats.run_paired(tests[f"p_within_{role}"], deltas[role]))
    for name in ("p_between_mwu", "p_between_welch"):
        b.tested(name, stats.run_between(tests[name], deltas["ivig"], deltas["placebo"]))
    b.value("n_first_period_not_randomised_treatment", off_arm)
    trial.datasets[f"{endpoint}_changes"] = _changes_dataset(
        [
            (c, definition.arm_roles[trial.randomised[c.period.usubjid]])
            for r in ROLES
            for c in changes[r]
        ],
        score.code,
    )
    return b.result


def _dataset(columns: tuple[str, ...], rows: Sequence[Sequence[Cell]]) -> Dataset:
    """A dataset from rows given as cells in column order."""
    return Dataset(columns, [dict(zip(columns, row, strict=True)) for row in rows])


def _changes_dataset(changes: list[tuple[PeriodChange, Role]], testcd: str) -> Dataset:
    columns = (
        "USUBJID",
        "ARM_ROLE",
        "PERIOD",
        "EPOCH",
        "TREATMENT",
        "TESTCD",
        "BASELINE",
        "END",
        "CHANGE",
    )
    rows = [
        (
            c.period.usubjid,
            arm,
            c.period.order,
            c.period.epoch,
            c.period.role,
            testcd,
            c.baseline.value,
            c.end.value,
            c.change,
        )
        for c, arm in sorted(
            changes, key=lambda item: (item[0].period.usubjid, item[0].period.order)
        )
    ]
    return _dataset(columns, rows)


# ---------------------------------------------------------------- E3: response by treatment


def _response_categories(b: _Builder) -> dict[Role, list[tuple[TreatmentPeriod, str]]]:
    """Each treatment period's response category, by treatment received; unusable ones excluded."""
    trial = b.trial
    definition = trial.definition
    by_role: dict[Role, list[tuple[TreatmentPeriod, str]]] = {role: [] for role in ROLES}
    known_periods = set()
    for usubjid, periods in sorted(trial.periods.items()):
        for period in periods:
            known_periods.add((usubjid, period.epoch))
            term = trial.responses.get((usubjid, period.epoch))
            if term is None:
                b.exclude(
                    usubjid,
                    f"{period.epoch}: no clinical response "
                    f"(RS {definition.response_testcd}) recorded",
                )
                continue
            category = definition.response_categories.get(term.upper())
            if category is None:
                b.exclude(usubjid, f"{period.epoch}: response {term!r} is not a known category")
                continue
            by_role[period.role].append((period, category))
    for usubjid, epoch in sorted(set(trial.responses) - known_periods):
        b.exclude(usubjid, f"{epoch}: clinical response matches no treatment period in SE")
    return by_role


def _e3(trial: _Trial) -> EndpointResult:
    b = _Builder(trial, "E3")
    by_role = _response_categories(b)
    for role in ROLES:
        for category in CATEGORIES:
            b.value(f"{role}_{category}", sum(1 for _, c in by_role[role] if c == category))
        b.value(f"{role}_periods", len(by_role[role]))
    table = [
        [
            sum(1 for _, c in by_role[r] if c == "major"),
            sum(1 for _, c in by_role[r] if c != "major"),
        ]
        for r in ROLES
    ]
    b.tested(
        "p_fisher_major", stats.run_table(trial.definition.tests["E3"]["p_fisher_major"], table)
    )
    trial.datasets["E3_responses"] = _dataset(
        ("USUBJID", "PERIOD", "EPOCH", "TREATMENT", "RESPONSE"),
        sorted(
            ((p.usubjid, p.order, p.epoch, p.role, c) for r in ROLES for p, c in by_role[r]),
            key=lambda row: (row[0], row[1]),
        ),
    )
    return b.result


# ---------------------------------------------------------------- E4: major responders on IVIG


def _e4(trial: _Trial) -> EndpointResult:
    b = _Builder(trial, "E4")
    score = trial.definition.score("E4")
    readings = trial.readings(score.code)
    scratch = _Builder(trial, "E3")  # exclusions about responses belong to E3, not here
    major = [p for p, c in _response_categories(scratch)["ivig"] if c == "major"]
    changes: list[PeriodChange] = []
    for period in major:
        outcome = change_over_period(readings.get(period.usubjid, []), period, score.code)
        if isinstance(outcome, str):
            b.exclude(period.usubjid, outcome)
        else:
            changes.append(outcome)
    b.value("n", len(changes))
    b.value("baseline_mean", _mean([c.baseline.value for c in changes]), "no major responder")
    b.value("end_mean", _mean([c.end.value for c in changes]), "no major responder")
    b.value("change_mean", _mean([c.change for c in changes]))
    b.value("major_ivig_periods", len(major))
    return b.result


# ---------------------------------------------------------------- E5: crossover, within subject


def _e5(trial: _Trial) -> EndpointResult:
    b = _Builder(trial, "E5")
    definition = trial.definition
    crossover = {
        usubjid: {role: next(p for p in periods if p.role == role) for role in ROLES}
        for usubjid, periods in sorted(trial.periods.items())
        if {p.role for p in periods} >= set(ROLES)
    }
    rows: list[tuple[Cell, ...]] = []
    for slot in ("mssum", "nsstot"):
        score = definition.score("E5", slot)
        readings = trial.readings(score.code)
        diffs: list[float] = []
        for usubjid, pair in crossover.items():
            outcome = {
                role: change_over_period(readings.get(usubjid, []), pair[role], score.code)
                for role in ROLES
            }
            reasons = [o for o in outcome.values() if isinstance(o, str)]
            if reasons:
                for reason in reasons:
                    b.exclude(usubjid, reason)
                continue
            ivig, placebo = outcome["ivig"], outcome["placebo"]
            assert isinstance(ivig, PeriodChange) and isinstance(placebo, PeriodChange)
            diffs.append(ivig.change - placebo.change)
            rows.append(
                (usubjid, score.code, ivig.change, placebo.change, ivig.change - placebo.change)
            )
        if slot == "mssum":
            b.value("n", len(diffs))
        b.value(f"n_{slot}", len(diffs))
        b.value(f"diff_mean_{slot}", _mean(diffs), "no crossover subject with both changes")
        b.tested(f"p_{slot}", stats.run_paired(definition.tests["E5"][f"p_{slot}"], diffs))
    b.value("n_crossover", len(crossover))
    trial.datasets["E5_crossover"] = _dataset(
        ("USUBJID", "TESTCD", "CHANGE_IVIG", "CHANGE_PLACEBO", "DIFFERENCE"), rows
    )
    return b.result


# ---------------------------------------------------------------- E6: biopsies


@dataclass
class _Biopsy:
    usubjid: str
    refid: str
    when_text: str
    numbers: dict[str, float] = field(default_factory=dict)
    terms: dict[str, str] = field(default_factory=dict)


def _biopsies(trial: _Trial) -> dict[str, list[_Biopsy]]:
    """MI findings grouped into biopsies (by MIREFID, else by date), dated by MIDTC or PR."""
    mi = domain_rows(trial.tables, "MI", ("USUBJID", "MITESTCD", "MIDTC"))
    pr_dates: dict[tuple[str, str], str] = {}
    pr_columns = ("USUBJID", "PRREFID", "PRSTDTC")
    if has_columns(trial.tables, "PR", pr_columns):
        for row in domain_rows(trial.tables, "PR", pr_columns):
            if row["PRREFID"]:
                pr_dates[(row["USUBJID"], row["PRREFID"])] = row["PRSTDTC"]
    biopsies: dict[tuple[str, str], _Biopsy] = {}
    for row in mi:
        refid = row.get("MIREFID", "")
        when = row["MIDTC"] or pr_dates.get((row["USUBJID"], refid), "")
        key = (row["USUBJID"], refid or when)
        biopsy = biopsies.setdefault(key, _Biopsy(row["USUBJID"], refid, when))
        if not biopsy.when_text:
            biopsy.when_text = when
        number = result_number(row, "MI")
        if number is not None:
            biopsy.numbers[row["MITESTCD"]] = number
        term = (row.get("MISTRESC", "") or row.get("MIORRES", "")).strip().upper()
        if term:
            biopsy.terms[row["MITESTCD"]] = term
    out: dict[str, list[_Biopsy]] = {}
    for biopsy in biopsies.values():
        out.setdefault(biopsy.usubjid, []).append(biopsy)
    return out


def _e6(trial: _Trial) -> EndpointResult:
    b = _Builder(trial, "E6")
    definition = trial.definition
    by_subject = _biopsies(trial)
    pairs: list[tuple[str, _Biopsy, _Biopsy]] = []
    for usubjid in sorted(by_subject):
        doses = [
            p.first_dose
            for p in trial.periods.get(usubjid, [])
            if p.role == "ivig" and p.first_dose is not None
        ]
        if not doses:
            b.exclude(usubjid, "no dated IVIG dose to pair the biopsies around")
            continue
        first_ivig = min(doses, key=lambda d: d.sort_key())
        dated = []
        for biopsy in by_subject[usubjid]:
            when = parse_instant(biopsy.when_text)
            if when is None:
                b.exclude(usubjid, f"biopsy {biopsy.refid or '?'} has no date")
            else:
                dated.append((when, biopsy))
        dated.sort(key=lambda item: (item[0].sort_key(), item[1].refid))
        before = [bx for when, bx in dated if when.before(first_ivig)]
        after = [bx for when, bx in dated if when.after(first_ivig)]
        if not before:
            b.exclude(usubjid, "no biopsy dated before the first IVIG dose")
        elif not after:
            b.exclude(usubjid, "no biopsy dated after the first IVIG dose")
        else:
            pairs.append((usubjid, before[-1], after[-1]))
    b.value("n", len(pairs))
    rows: list[tuple[Cell, ...]] = []
    for measure in definition.biopsy_measures:
        pre, post, diffs = [], [], []
        for usubjid, first, last in pairs:
            x, y = first.numbers.get(measure.testcd), last.numbers.get(measure.testcd)
            if x is None or y is None:
                b.exclude(usubjid, f"{measure.testcd} missing in the paired biopsies")
                continue
            pre.append(x)
            post.append(y)
            diffs.append(y - x)
            rows.append((usubjid, measure.testcd, x, y))
        reason = f"no subject with {measure.testcd} before and after"
        b.value(f"{measure.key}_pre_mean", _mean(pre), reason)
        b.value(f"{measure.key}_post_mean", _mean(post), reason)
        b.value(f"n_{measure.key}", len(diffs))
        b.tested(
            f"p_{measure.key}_t",
            stats.run_paired(definition.tests["E6"][f"p_{measure.key}_t"], diffs),
        )
        b.tested(f"p_{measure.key}_wilcoxon", stats.wilcoxon_signed_rank(diffs))
    mac_before = [
        u
        for u, first, _ in pairs
        if first.terms.get(definition.mac_testcd) == definition.mac_present
    ]
    resolved = [
        u
        for u, first, last in pairs
        if first.terms.get(definition.mac_testcd) == definition.mac_present
        and last.terms.get(definition.mac_testcd) == definition.mac_absent
    ]
    b.value("mac_resolved", len(resolved))
    b.value("mac_present_before", len(mac_before))
    grade = {term: i for i, term in enumerate(definition.grade_order)}
    for testcd in definition.graded_findings:
        reduced = 0
        graded = 0
        for _, first, last in pairs:
            g0, g1 = grade.get(first.terms.get(testcd, "")), grade.get(last.terms.get(testcd, ""))
            if g0 is not None and g1 is not None:
                graded += 1
                reduced += g1 < g0
        b.value(f"{testcd.lower()}_reduced", reduced)
        b.value(f"{testcd.lower()}_graded_pairs", graded)
    trial.datasets["E6_biopsies"] = _dataset(("USUBJID", "TESTCD", "PRE", "POST"), rows)
    return b.result


# ---------------------------------------------------------------- E7: background prednisone


def _prednisone_total(
    rows: list[dict[str, str]], first: date, last: date, definition: StudyDefinition
) -> float | str:
    """Total mg of the background medication inside [first, last], or why it cannot be counted."""
    total = 0.0
    for row in rows:
        dose = to_number(row.get("CMDOSE", ""))
        if dose is None:
            return "prednisone record without a numeric dose (CMDOSE)"
        unit = row.get("CMDOSU", "").strip()
        if unit and unit.lower() != definition.background_unit.lower():
            return f"prednisone dose unit {unit!r} is not {definition.background_unit}"
        start = parse_instant(row.get("CMSTDTC", ""))
        if start is None:
            return "prednisone record without a start date (CMSTDTC)"
        frequency = row.get("CMDOSFRQ", "").strip().upper()
        if frequency in definition.daily_frequencies:
            end = parse_instant(row.get("CMENDTC", ""))
            if end is None:
                return "daily prednisone record without an end date (CMENDTC)"
            overlap = days_inclusive(max(start.day, first), min(end.day, last))
            total += dose * definition.daily_frequencies[frequency] * overlap
        elif frequency in definition.single_dose_frequencies:
            if first <= start.day <= last:
                total += dose
        else:
            return f"prednisone dosing frequency {frequency!r} is not in the study definition"
    return total


def _e7(trial: _Trial) -> EndpointResult:
    b = _Builder(trial, "E7")
    definition = trial.definition
    dm = domain_rows(trial.tables, "DM", ("USUBJID", "RFSTDTC", "RFENDTC"))
    cm = domain_rows(trial.tables, "CM", ("USUBJID", "CMTRT", "CMDOSE", "CMDOSFRQ", "CMSTDTC"))
    by_subject: dict[str, list[dict[str, str]]] = {}
    wanted = definition.background_cmtrt.upper()
    for row in cm:
        if row["CMTRT"].strip().upper() == wanted:
            by_subject.setdefault(row["USUBJID"], []).append(row)
    per_subject: list[tuple[str, float]] = []
    for row in sorted(dm, key=lambda r: r["USUBJID"]):
        usubjid = row["USUBJID"]
        start, end = parse_instant(row["RFSTDTC"]), parse_instant(row["RFENDTC"])
        if start is None or end is None:
            b.exclude(usubjid, "reference window (DM.RFSTDTC/RFENDTC) incomplete")
            continue
        days = days_inclusive(start.day, end.day)
        if days == 0:
            b.exclude(usubjid, "RFENDTC precedes RFSTDTC")
            continue
        if usubjid not in by_subject:
            b.exclude(usubjid, f"no {definition.background_cmtrt} records in CM")
            continue
        total = _prednisone_total(by_subject[usubjid], start.day, end.day, definition)
        if isinstance(total, str):
            b.exclude(usubjid, total)
            continue
        per_subject.append((usubjid, total / days))
    means = [m for _, m in per_subject]
    b.value("prednisone_mean_mg_per_day", _mean(means), "no subject with a complete record")
    b.value("n", len(means))
    b.value("subject_mean_min", min(means) if means else None)
    b.value("subject_mean_max", max(means) if means else None)
    trial.datasets["E7_prednisone"] = _dataset(("USUBJID", "MG_PER_DAY"), per_subject)
    return b.result


# ---------------------------------------------------------------- E8: cohort


def _e8(trial: _Trial) -> EndpointResult:
    b = _Builder(trial, "E8")
    definition = trial.definition
    dm = domain_rows(trial.tables, "DM", ("USUBJID", "ARMCD", "AGE"))
    arms: dict[Role, int] = dict.fromkeys(ROLES, 0)
    ages: list[float] = []
    for row in dm:
        role = definition.role_of_arm(row["ARMCD"])
        if role is None:
            b.exclude(
                row["USUBJID"], f"randomised arm (DM.ARMCD) {row['ARMCD']!r} is not a study arm"
            )
        else:
            arms[role] += 1
        age = to_number(row["AGE"])
        if age is None:
            b.exclude(row["USUBJID"], "age (DM.AGE) missing")
        else:
            ages.append(age)
    for role in ROLES:
        b.value(f"n_{role}_arm", arms[role])
    b.value("age_min", _number(min(ages)) if ages else None, "no ages")
    b.value("age_max", _number(max(ages)) if ages else None, "no ages")
    b.value("age_mean", _mean(ages))
    sequences = {u: tuple(p.role for p in ps) for u, ps in trial.periods.items()}
    b.value("n_ivig_to_placebo", sum(1 for s in sequences.values() if s == ("ivig", "placebo")))
    b.value("n_placebo_to_ivig", sum(1 for s in sequences.values() if s == ("placebo", "ivig")))
    for role in ROLES:
        b.value(f"{role}_courses", sum(s.count(role) for s in sequences.values()))
    b.value("n_subjects", len(dm))
    if has_columns(trial.tables, "DM", ("ACTARMCD",)):
        # SDTM: ACTARMCD names the elements actually received, joined by "-" (IVIG-PBO)
        received = {u: "-".join(p.etcd for p in ps) for u, ps in trial.periods.items()}
        b.value(
            "n_actarmcd_not_as_in_se",
            sum(1 for row in dm if row["ACTARMCD"] != received.get(row["USUBJID"], "")),
        )
    trial.datasets["demographics"] = _demographics(trial)
    return b.result


def _number(value: float) -> Value:
    return int(value) if float(value).is_integer() else value


def _demographics(trial: _Trial) -> Dataset:
    """One row per randomised arm (and overall): n, age, sex, baseline weight."""
    definition = trial.definition
    subjects = domain_rows(trial.tables, "DM", ("USUBJID", "ARMCD", "AGE"))
    weights: dict[str, float] = {}
    vs_columns = ("USUBJID", "VSTESTCD", "VSSTRESN", "VSDTC")
    if has_columns(trial.tables, "VS", vs_columns):
        dated: dict[str, tuple[tuple[date, time], float]] = {}
        for row in domain_rows(trial.tables, "VS", vs_columns):
            weight, when = to_number(row["VSSTRESN"]), parse_instant(row["VSDTC"])
            if row["VSTESTCD"] != definition.weight_testcd or weight is None or when is None:
                continue
            current = dated.get(row["USUBJID"])
            if current is None or when.sort_key() < current[0]:
                dated[row["USUBJID"]] = (when.sort_key(), weight)  # the earliest weight
        weights = {usubjid: weight for usubjid, (_, weight) in dated.items()}
    groups: list[tuple[str, list[dict[str, str]]]] = [
        (
            definition.role_labels[role],
            [s for s in subjects if definition.role_of_arm(s["ARMCD"]) == role],
        )
        for role in ROLES
    ]
    groups.append(("All", subjects))
    rows: list[tuple[Cell, ...]] = []
    for label, members in groups:
        ages = [a for a in (to_number(s["AGE"]) for s in members) if a is not None]
        sexes = [s.get("SEX", "") for s in members]
        kg = [weights[s["USUBJID"]] for s in members if s["USUBJID"] in weights]
        rows.append(
            (
                label,
                len(members),
                _mean(ages),
                _sd(ages),
                min(ages) if ages else None,
                max(ages) if ages else None,
                sum(1 for s in sexes if s == "F"),
                sum(1 for s in sexes if s == "M"),
                _mean(kg),
            )
        )
    columns = (
        "group",
        "n",
        "age_mean",
        "age_sd",
        "age_min",
        "age_max",
        "female",
        "male",
        "weight_mean_kg",
    )
    return _dataset(columns, rows)


# ---------------------------------------------------------------- trajectories (drawn, not tested)


def _trajectories(trial: _Trial) -> Trajectories:
    """E1's score at every visit of every subject randomised to a study arm, in days from the
    subject's first study-drug dose, each reading labelled with the treatment being received."""
    definition = trial.definition
    testcd = definition.score("E1").code
    try:
        readings = trial.readings(testcd)
        periods = trial.periods
        randomised = trial.randomised
    except MissingInputError as exc:
        return Trajectories(testcd, missing=str(exc))
    subjects: list[Trajectory] = []
    for usubjid in sorted(readings):
        armcd = randomised.get(usubjid)
        arm = definition.role_of_arm(armcd) if armcd is not None else None
        subject_periods = periods.get(usubjid, [])
        doses = [p.first_dose for p in subject_periods if p.first_dose is not None]
        if arm is None or not doses:
            continue
        origin = min(doses, key=Instant.sort_key).day
        points = tuple(
            TrajectoryPoint(
                day=(r.when.day - origin).days,
                value=r.value,
                treatment=_treatment_at(subject_periods, r.when),
            )
            for r in readings[usubjid]
        )
        subjects.append(Trajectory(usubjid, arm, points))
    return Trajectories(testcd, tuple(subjects), scored_subjects=len(readings))


def _treatment_at(periods: list[TreatmentPeriod], when: Instant) -> Role | None:
    """The role of the (last) treatment period covering `when`; None off treatment."""
    role: Role | None = None
    for period in periods:
        if period.covers(when):
            role = period.role
    return role


# ---------------------------------------------------------------- the whole analysis


_ENDPOINTS: dict[str, Callable[[_Trial], EndpointResult]] = {
    "E1": lambda trial: _score_by_arm(trial, "E1"),
    "E2": lambda trial: _score_by_arm(trial, "E2"),
    "E3": _e3,
    "E4": _e4,
    "E5": _e5,
    "E6": _e6,
    "E7": _e7,
    "E8": _e8,
}


def is_reconstructed(tables: Trial, definition: StudyDefinition) -> bool:
    """Whether the TS domain labels the data as reconstructed (the definition says where to look)."""
    ts_columns = ("TSPARMCD", "TSVAL")
    if not has_columns(tables, "TS", ts_columns):
        return False
    marker = definition.reconstructed_marker.upper()
    wanted = set(definition.reconstructed_ts_parameters)
    return any(
        marker in row["TSVAL"].upper()
        for row in domain_rows(tables, "TS", ts_columns)
        if not wanted or row["TSPARMCD"] in wanted
    )


def analyze(trial: Trial, definition: StudyDefinition, source: str) -> Results:
    """Compute E1-E8 from a trial's tables and a study definition; `source` says where the data
    came from (shown in the report). The results carry everything the report shows."""
    analysis = _Trial(trial, definition)
    endpoints: dict[str, EndpointResult] = {}
    for key, compute in _ENDPOINTS.items():
        try:
            result = compute(analysis)
        except MissingInputError as exc:
            result = _Builder(analysis, key).result
            result.null_reasons = dict.fromkeys(result.values, str(exc))
        else:
            for name, value in result.values.items():
                if value is None:
                    result.null_reasons.setdefault(name, "no data")
        result.missing_inputs = missing_inputs(trial, definition, key)
        if result.missing_inputs:
            lacking = "missing input: " + "; ".join(result.missing_inputs)
            for name, value in result.values.items():
                if value is None and result.null_reasons.get(name) == "no data":
                    result.null_reasons[name] = lacking
        endpoints[key] = result
    return Results(
        study=definition.study_id,
        title=definition.title,
        source=source,
        reconstructed=is_reconstructed(trial, definition),
        endpoints=endpoints,
        definition=definition,
        trajectories=_trajectories(analysis),
        datasets=analysis.datasets,
    )
