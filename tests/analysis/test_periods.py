"""Treatment periods, first doses, and baseline/end selection (partial dates, same-day scores)."""

from __future__ import annotations

from adapter.analysis import StudyDefinition
from adapter.analysis.periods import (
    PeriodChange,
    change_over_period,
    score_readings,
    treatment_periods,
)

from .trial_builder import TrialBuilder


def _one_subject() -> TrialBuilder:
    trial = TrialBuilder().subject("S1", "IVIG")
    # SE rows deliberately out of order: periods follow SESTDTC, not the file.
    trial.period("S1", "PBO", "TREATMENT 2", "1991-05-01", "1991-07-31")
    trial.period("S1", "SCRN", "SCREENING", "1991-01-10", "1991-01-31")
    trial.period("S1", "IVIG", "TREATMENT 1", "1991-02-01", "1991-04-30")
    trial.dose("S1", "TREATMENT 1", "1991-02-03")
    trial.dose("S1", "TREATMENT 1", "1991-02")  # partial: first possible day 1991-02-01
    trial.dose("S1", "TREATMENT 2", "1991-05-02T09:30")
    return trial


def test_periods_exclude_screening_and_follow_their_start_dates(
    definition: StudyDefinition,
) -> None:
    periods = treatment_periods(_one_subject().trial(), definition)["S1"]
    assert [(p.order, p.epoch, p.role) for p in periods] == [
        (1, "TREATMENT 1", "ivig"),
        (2, "TREATMENT 2", "placebo"),
    ]


def test_first_dose_is_the_earliest_exstdtc_of_the_epoch_partial_dates_by_first_day(
    definition: StudyDefinition,
) -> None:
    periods = treatment_periods(_one_subject().trial(), definition)["S1"]
    assert periods[0].first_dose is not None
    assert str(periods[0].first_dose.day) == "1991-02-01"
    assert periods[1].first_dose is not None
    assert str(periods[1].first_dose.clock) == "09:30:00"


def test_baseline_is_the_last_score_on_or_before_the_first_dose_and_end_the_last_in_period(
    definition: StudyDefinition,
) -> None:
    trial = _one_subject()
    trial.score("S1", "MSSUM", "1991-01-15", 50)
    trial.score("S1", "MSSUM", "1991-01-20", 52)  # last on or before the first dose: baseline
    trial.score("S1", "MSSUM", "1991-03-01", 60)
    trial.score("S1", "MSSUM", "1991-04-30", 65)  # on SEENDTC: still the period's end
    trial.score("S1", "MSSUM", "1991-05-01", 99)  # after SEENDTC: not this period
    tables = trial.trial()
    period = treatment_periods(tables, definition)["S1"][0]
    outcome = change_over_period(score_readings(tables, "MSSUM")["S1"], period, "MSSUM")
    assert isinstance(outcome, PeriodChange)
    assert (outcome.baseline.value, outcome.end.value, outcome.change) == (52, 65, 13)


def test_a_same_day_score_without_time_is_baseline_one_with_a_later_time_is_after(
    definition: StudyDefinition,
) -> None:
    trial = _one_subject()
    trial.score("S1", "MSSUM", "1991-04-25", 70)
    trial.score("S1", "MSSUM", "1991-05-02", 71)  # same day as dose 09:30, no time: baseline
    trial.score("S1", "MSSUM", "1991-05-02T15:00", 80)  # same day, after the dose time: end
    tables = trial.trial()
    period = treatment_periods(tables, definition)["S1"][1]
    outcome = change_over_period(score_readings(tables, "MSSUM")["S1"], period, "MSSUM")
    assert isinstance(outcome, PeriodChange)
    assert (outcome.baseline.value, outcome.end.value) == (71, 80)


def test_two_scores_on_the_same_day_take_the_later_sequence_number(
    definition: StudyDefinition,
) -> None:
    trial = _one_subject()
    trial.score("S1", "MSSUM", "1991-01-20", 40)
    trial.score("S1", "MSSUM", "1991-01-20", 41)
    trial.score("S1", "MSSUM", "1991-04-01", 55)
    trial.score("S1", "MSSUM", "1991-04-01", 56)
    tables = trial.trial()
    period = treatment_periods(tables, definition)["S1"][0]
    outcome = change_over_period(score_readings(tables, "MSSUM")["S1"], period, "MSSUM")
    assert isinstance(outcome, PeriodChange)
    assert (outcome.baseline.value, outcome.end.value) == (41, 56)


def test_a_partial_period_end_cuts_at_its_first_possible_day(definition: StudyDefinition) -> None:
    trial = TrialBuilder().subject("S2", "IVIG")
    trial.period("S2", "IVIG", "TREATMENT 1", "1991-02-01", "1991-04")
    trial.dose("S2", "TREATMENT 1", "1991-02-01")
    trial.score("S2", "MSSUM", "1991-02-01", 50)
    trial.score("S2", "MSSUM", "1991-03-20", 58)
    trial.score("S2", "MSSUM", "1991-04-15", 70)  # after 1991-04-01: outside the period
    tables = trial.trial()
    period = treatment_periods(tables, definition)["S2"][0]
    outcome = change_over_period(score_readings(tables, "MSSUM")["S2"], period, "MSSUM")
    assert isinstance(outcome, PeriodChange)
    assert outcome.end.value == 58


def test_undated_or_non_numeric_scores_are_not_readings() -> None:
    trial = TrialBuilder().subject("S3", "IVIG")
    trial.score("S3", "MSSUM", "", 50)
    trial.score("S3", "MSSUM", "1991-02-01", "")
    trial.score("S3", "MSSUM", "1991-02-02", "NOT DONE")
    trial.score("S3", "MSSUM", "1991-02-03", 61.5)
    readings = score_readings(trial.trial(), "MSSUM")["S3"]
    assert [r.value for r in readings] == [61.5]


def test_missing_pieces_give_reasons_not_errors(definition: StudyDefinition) -> None:
    trial = TrialBuilder().subject("S4", "PBO")
    trial.period("S4", "PBO", "TREATMENT 1", "1991-02-01", "")
    trial.score("S4", "MSSUM", "1991-01-20", 50)
    tables = trial.trial()
    period = treatment_periods(tables, definition)["S4"][0]
    readings = score_readings(tables, "MSSUM")["S4"]
    assert change_over_period(readings, period, "MSSUM") == (
        "TREATMENT 1: no dated study-drug administration (EX) in this epoch"
    )
    trial.dose("S4", "TREATMENT 1", "1991-02-01")
    period = treatment_periods(trial.trial(), definition)["S4"][0]
    assert change_over_period(readings, period, "MSSUM") == (
        "TREATMENT 1: period end date (SEENDTC) missing"
    )
