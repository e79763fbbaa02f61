"""E7's day counting checked against day-by-day enumeration, on generated dosing records."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.analysis import StudyDefinition, analyze

from .trial_builder import TrialBuilder

START = date(1991, 1, 1)
day_offsets = st.integers(min_value=-20, max_value=60)
daily_rows = st.tuples(day_offsets, st.integers(0, 40), st.sampled_from([5, 10, 20, 25]))
single_rows = st.tuples(day_offsets, st.sampled_from([10, 30, 60]))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    window=st.tuples(st.integers(0, 20), st.integers(0, 40)),
    daily=st.lists(daily_rows, max_size=4),
    single=st.lists(single_rows, max_size=4),
)
def test_mean_daily_dose_equals_day_by_day_enumeration(
    definition: StudyDefinition,
    window: tuple[int, int],
    daily: list[tuple[int, int, int]],
    single: list[tuple[int, int]],
) -> None:
    first = START + timedelta(days=window[0])
    last = first + timedelta(days=window[1])
    trial = TrialBuilder().subject("D1", "IVIG", rfst=first.isoformat(), rfen=last.isoformat())
    intervals = []
    for offset, length, dose in daily:
        begin = START + timedelta(days=offset)
        end = begin + timedelta(days=length)
        intervals.append((begin, end, dose))
        trial.prednisone("D1", dose, "QD", begin.isoformat(), end.isoformat())
    for offset, dose in single:
        trial.prednisone(
            "D1", dose, "ONCE", f"{(START + timedelta(days=offset)).isoformat()}T08:00"
        )
    if not daily and not single:
        trial.prednisone("D1", 0, "QD", first.isoformat(), last.isoformat())
    total = 0
    day = first
    while day <= last:
        total += sum(dose for begin, end, dose in intervals if begin <= day <= end)
        total += sum(dose for offset, dose in single if START + timedelta(days=offset) == day)
        day += timedelta(days=1)
    expected = total / ((last - first).days + 1)
    result = analyze(trial.trial(), definition, "generated").endpoints["E7"]
    assert result.values["prednisone_mean_mg_per_day"] == pytest.approx(expected)
