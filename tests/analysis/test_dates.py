"""Partial ISO 8601 dates: first possible day, times only when both sides have one."""

from __future__ import annotations

from datetime import date, time

from adapter.analysis.dates import Instant, days_inclusive, parse_instant


def test_partial_dates_take_their_first_possible_day() -> None:
    assert parse_instant("1991") == Instant(date(1991, 1, 1))
    assert parse_instant("1991-04") == Instant(date(1991, 4, 1))
    assert parse_instant("1991-04-17") == Instant(date(1991, 4, 17))


def test_times_are_kept_with_or_without_seconds() -> None:
    assert parse_instant("1991-04-17T09:30") == Instant(date(1991, 4, 17), time(9, 30))
    assert parse_instant("1991-04-17T09:30:15") == Instant(date(1991, 4, 17), time(9, 30, 15))


def test_empty_or_unreadable_values_are_missing() -> None:
    for text in ("", "  ", "UNK", "1991-13-01", "1991-02-30", "17/04/1991"):
        assert parse_instant(text) is None


def test_same_day_without_a_time_counts_as_the_same_moment() -> None:
    dose = parse_instant("1991-04-17T09:30")
    score = parse_instant("1991-04-17")
    assert dose is not None and score is not None
    assert score.on_or_before(dose)
    assert not score.after(dose)
    assert not score.before(dose)


def test_same_day_with_both_times_compares_the_times() -> None:
    dose = parse_instant("1991-04-17T09:30")
    later = parse_instant("1991-04-17T14:00")
    assert dose is not None and later is not None
    assert later.after(dose)
    assert not later.on_or_before(dose)
    assert dose.before(later)


def test_a_partial_month_compares_by_its_first_day() -> None:
    month = parse_instant("1991-04")
    assert month is not None
    assert month.before(Instant(date(1991, 4, 2)))
    assert month.on_or_before(Instant(date(1991, 4, 1)))


def test_days_inclusive_counts_both_ends() -> None:
    assert days_inclusive(date(1991, 1, 1), date(1991, 1, 10)) == 10
    assert days_inclusive(date(1991, 2, 27), date(1991, 3, 1)) == 3
    assert days_inclusive(date(1991, 1, 5), date(1991, 1, 4)) == 0
