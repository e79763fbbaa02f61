"""Treatment periods and the scores that open and close them, as the spec defines them.

A treatment period is one SE element other than screening. Its first dose is the earliest EXSTDTC among
the subject's EX rows of that EPOCH. Its baseline is the subject's last score dated on or before that
first dose; its end is the last score dated after the first dose and on or before the period's SEENDTC.
Dates compare as `dates.Instant` does (partial -> first possible day; times only when both have one).
Scores on the same moment are ordered by --SEQ, so "last" is always defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, time
from typing import ClassVar

from adapter.analysis.dates import Instant, parse_instant
from adapter.analysis.definition import Role, StudyDefinition
from mappings.errors import ExitCode, TrialfhirError
from mappings.sdtm import Trial

__all__ = [
    "MissingInputError",
    "PeriodChange",
    "ScoreReading",
    "TreatmentPeriod",
    "change_over_period",
    "domain_rows",
    "has_columns",
    "result_number",
    "score_readings",
    "to_number",
    "treatment_periods",
]


_PeriodKey = tuple[tuple[date, time], int, int]


class MissingInputError(TrialfhirError, LookupError):
    """A domain or a variable an endpoint needs is absent from the trial tables."""

    code: ClassVar[str] = "missing_input"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    def __init__(self, domain_code: str, variable: str | None = None) -> None:
        self.domain_code = domain_code
        self.variable = variable
        where = f"{domain_code.lower()}.csv"
        what = f"variable {variable}" if variable else "the file"
        super().__init__(f"{where}: {what} is missing")


def has_columns(trial: Trial, code: str, columns: tuple[str, ...]) -> bool:
    """Whether the trial has the domain, with every one of `columns`."""
    table = trial.get(code)
    return table is not None and set(columns) <= set(table.columns)


def domain_rows(trial: Trial, code: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The domain's rows (every column present, "" where a row lacks a cell), checked to have
    `columns`; raises MissingInputError naming the domain or the first variable that is absent."""
    table = trial.get(code)
    if table is None:
        raise MissingInputError(code)
    for column in columns:
        if column not in table.columns:
            raise MissingInputError(code, column)
    width = len(table.columns)
    return [
        row if len(row) == width else {c: row.get(c, "") for c in table.columns}
        for row in table.rows
    ]


def to_number(text: str) -> float | None:
    """A numeric cell as float; None for empty or non-numeric text."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def result_number(row: dict[str, str], prefix: str) -> float | None:
    """A finding's numeric result: --STRESN, else --ORRES when that is numeric (`prefix` is the
    domain code, "QS" or "MI"); None when neither is a number."""
    value = to_number(row.get(f"{prefix}STRESN", ""))
    return value if value is not None else to_number(row.get(f"{prefix}ORRES", ""))


def _seq(text: str) -> int:
    number = to_number(text)
    return int(number) if number is not None else 0


@dataclass(frozen=True)
class TreatmentPeriod:
    """One subject's treatment period (an SE element with a treatment role)."""

    usubjid: str
    order: int
    epoch: str
    etcd: str
    role: Role
    start: Instant | None
    end: Instant | None
    first_dose: Instant | None

    def covers(self, when: Instant) -> bool:
        """Whether `when` falls in the period: after its first dose, on or before its end."""
        return (
            self.first_dose is not None
            and self.end is not None
            and when.after(self.first_dose)
            and when.on_or_before(self.end)
        )


@dataclass(frozen=True)
class ScoreReading:
    """One numeric score of a subject, with its date and sequence number."""

    when: Instant
    value: float
    seq: int


@dataclass(frozen=True)
class PeriodChange:
    """Baseline and end readings of one period for one score, and their difference."""

    period: TreatmentPeriod
    baseline: ScoreReading
    end: ScoreReading

    @property
    def change(self) -> float:
        """End minus baseline."""
        return self.end.value - self.baseline.value


def treatment_periods(
    trial: Trial, definition: StudyDefinition
) -> dict[str, list[TreatmentPeriod]]:
    """Each subject's treatment periods in order (by SESTDTC, then the definition's epoch order).

    Needs SE (USUBJID, ETCD, EPOCH, SESTDTC, SEENDTC); EX (USUBJID, EPOCH, EXSTDTC) when present gives
    the first doses. Elements that are screening or have no treatment role are not periods.
    """
    se = domain_rows(trial, "SE", ("USUBJID", "ETCD", "EPOCH", "SESTDTC", "SEENDTC"))
    first_doses: dict[tuple[str, str], Instant] = {}
    ex_columns = ("USUBJID", "EPOCH", "EXSTDTC")
    if has_columns(trial, "EX", ex_columns):
        for row in domain_rows(trial, "EX", ex_columns):
            when = parse_instant(row["EXSTDTC"])
            if when is None:
                continue
            subject_epoch = (row["USUBJID"], row["EPOCH"])
            current = first_doses.get(subject_epoch)
            if current is None or when.sort_key() < current.sort_key():
                first_doses[subject_epoch] = when
    epoch_rank = {name: i for i, name in enumerate(definition.treatment_epochs)}
    raw: dict[str, list[tuple[_PeriodKey, dict[str, str]]]] = {}
    for record in se:
        etcd = record["ETCD"]
        if etcd in definition.screening_elements or definition.role_of_element(etcd) is None:
            continue
        start = parse_instant(record["SESTDTC"])
        key: _PeriodKey = (
            start.sort_key() if start is not None else (date.max, time.min),
            epoch_rank.get(record["EPOCH"], len(epoch_rank)),
            _seq(record.get("SESEQ", "")),
        )
        raw.setdefault(record["USUBJID"], []).append((key, record))
    periods: dict[str, list[TreatmentPeriod]] = {}
    for usubjid in sorted(raw):
        rows = [record for _, record in sorted(raw[usubjid], key=lambda item: item[0])]
        periods[usubjid] = [
            TreatmentPeriod(
                usubjid=usubjid,
                order=i + 1,
                epoch=record["EPOCH"],
                etcd=record["ETCD"],
                role=definition.element_roles[record["ETCD"]],
                start=parse_instant(record["SESTDTC"]),
                end=parse_instant(record["SEENDTC"]),
                first_dose=first_doses.get((usubjid, record["EPOCH"])),
            )
            for i, record in enumerate(rows)
        ]
    return periods


def score_readings(trial: Trial, testcd: str) -> dict[str, list[ScoreReading]]:
    """Every dated numeric QS result of one test code, per subject, in chronological order.

    The value is QSSTRESN, or QSORRES when QSSTRESN is empty and QSORRES is numeric. Undated or
    non-numeric rows are not readings.
    """
    qs = domain_rows(trial, "QS", ("USUBJID", "QSTESTCD", "QSDTC"))
    out: dict[str, list[ScoreReading]] = {}
    for record in qs:
        if record["QSTESTCD"] != testcd:
            continue
        when = parse_instant(record["QSDTC"])
        value = result_number(record, "QS")
        if when is None or value is None:
            continue
        out.setdefault(record["USUBJID"], []).append(
            ScoreReading(when, value, _seq(record.get("QSSEQ", "")))
        )
    for readings in out.values():
        readings.sort(key=lambda r: (r.when.sort_key(), r.seq))
    return out


def change_over_period(
    readings: list[ScoreReading], period: TreatmentPeriod, testcd: str
) -> PeriodChange | str:
    """Baseline, end and change of one period, or the reason they cannot be determined."""
    label = f"{period.epoch}"
    if period.first_dose is None:
        return f"{label}: no dated study-drug administration (EX) in this epoch"
    if period.end is None:
        return f"{label}: period end date (SEENDTC) missing"
    before = [r for r in readings if r.when.on_or_before(period.first_dose)]
    after = [r for r in readings if period.covers(r.when)]
    if not before:
        return f"{label}: no {testcd} score on or before the first dose"
    if not after:
        return f"{label}: no {testcd} score after the first dose and on or before the period end"
    return PeriodChange(period, before[-1], after[-1])
