"""Statistical tests as the endpoints use them: each returns its P value and says which method ran.

Two-sided throughout. Exact where scipy offers it and the data has no ties (or zero differences);
otherwise the method scipy's own default ("auto") would pick, called explicitly so the label is true.
A test the data cannot support returns `p=None` with the reason instead of raising.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "TestResult",
    "chi2_2x2",
    "fisher_exact_2x2",
    "mann_whitney_u",
    "paired_t",
    "run_between",
    "run_paired",
    "run_table",
    "student_t",
    "welch_t",
    "wilcoxon_signed_rank",
]

# scipy's documented rule for wilcoxon(method="auto") with ties or zeros: exhaustive permutation
# distribution up to this many differences (zeros included), the normal approximation beyond.
_WILCOXON_PERMUTATION_MAX_N = 13


@dataclass(frozen=True)
class TestResult:
    """A P value (None when the data cannot give one), the method that produced it, and why if None."""

    p: float | None
    method: str
    n: int
    statistic: float | None = None
    reason: str | None = None

    __test__ = False  # not a pytest test class


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _has_ties(values: Sequence[float]) -> bool:
    return len(set(values)) < len(values)


def _p(value: float) -> float | None:
    return float(value) if math.isfinite(float(value)) else None


def wilcoxon_signed_rank(differences: Sequence[float]) -> TestResult:
    """Wilcoxon signed-rank test of paired differences against zero (zero differences dropped)."""
    d = _finite(differences)
    name = "wilcoxon signed-rank"
    if len(d) == 0:
        return TestResult(None, name, 0, reason="no paired differences")
    if all(v == 0 for v in d):
        return TestResult(None, name, len(d), reason="all differences are zero")
    magnitudes = [abs(v) for v in d if v != 0]
    if 0 not in d and not _has_ties(magnitudes):
        res = stats.wilcoxon(d, alternative="two-sided", method="exact")
        method = f"{name}, exact"
    elif len(d) <= _WILCOXON_PERMUTATION_MAX_N:
        res = stats.wilcoxon(d, alternative="two-sided", method=stats.PermutationMethod())
        method = f"{name}, exact permutation distribution (ties or zero differences present)"
    else:
        res = stats.wilcoxon(d, alternative="two-sided", method="asymptotic")
        method = f"{name}, normal approximation (ties or zero differences present)"
    return TestResult(_p(res.pvalue), method, len(d), float(res.statistic))


def paired_t(differences: Sequence[float]) -> TestResult:
    """Paired t-test (one-sample t-test of the differences against zero)."""
    d = _finite(differences)
    name = "paired t-test"
    if len(d) < 2:
        return TestResult(None, name, len(d), reason="fewer than 2 pairs")
    if float(np.std(d)) == 0.0:
        return TestResult(None, name, len(d), reason="differences have no variance")
    statistic, p = _quiet_t_test(d, None)
    return TestResult(_p(p), name, len(d), statistic)


def mann_whitney_u(first: Sequence[float], second: Sequence[float]) -> TestResult:
    """Mann-Whitney U test between two independent groups (exact without ties)."""
    x, y = _finite(first), _finite(second)
    name = "Mann-Whitney U"
    n = len(x) + len(y)
    if not x or not y:
        return TestResult(None, name, n, reason="a group is empty")
    if _has_ties(x + y):
        if len(set(x + y)) == 1:
            return TestResult(None, name, n, reason="all values are equal")
        res = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
        method = f"{name}, normal approximation with continuity correction (ties present)"
    else:
        res = stats.mannwhitneyu(x, y, alternative="two-sided", method="exact")
        method = f"{name}, exact"
    return TestResult(_p(res.pvalue), method, n, float(res.statistic))


def _quiet_t_test(
    x: list[float], y: list[float] | None, *, welch: bool = True
) -> tuple[float, float]:
    """scipy's t-tests without its precision-loss warning for near-constant groups."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if y is None:
            res = stats.ttest_1samp(x, 0.0, alternative="two-sided")
        else:
            res = stats.ttest_ind(x, y, equal_var=not welch, alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def _two_sample_t(first: Sequence[float], second: Sequence[float], *, welch: bool) -> TestResult:
    x, y = _finite(first), _finite(second)
    name = "Welch t-test" if welch else "Student t-test (pooled variance)"
    n = len(x) + len(y)
    if len(x) < 2 or len(y) < 2:
        return TestResult(None, name, n, reason="fewer than 2 values in a group")
    if float(np.var(x)) == 0.0 and float(np.var(y)) == 0.0:
        return TestResult(None, name, n, reason="no variance in either group")
    statistic, p = _quiet_t_test(x, y, welch=welch)
    return TestResult(_p(p), name, n, statistic)


def welch_t(first: Sequence[float], second: Sequence[float]) -> TestResult:
    """Welch's unequal-variance two-sample t-test."""
    return _two_sample_t(first, second, welch=True)


def student_t(first: Sequence[float], second: Sequence[float]) -> TestResult:
    """Two-sample t-test with pooled variance."""
    return _two_sample_t(first, second, welch=False)


def fisher_exact_2x2(table: Sequence[Sequence[int]]) -> TestResult:
    """Fisher's exact test on a 2x2 table [[a, b], [c, d]]."""
    n = int(sum(sum(row) for row in table))
    name = "Fisher exact"
    if any(sum(row) == 0 for row in table):
        return TestResult(None, name, n, reason="a row of the table is empty")
    res = stats.fisher_exact([list(row) for row in table], alternative="two-sided")
    return TestResult(_p(res.pvalue), name, n, float(res.statistic))


def chi2_2x2(table: Sequence[Sequence[int]]) -> TestResult:
    """Pearson chi-square test (Yates-corrected) on a 2x2 table."""
    n = int(sum(sum(row) for row in table))
    name = "chi-square with Yates correction"
    cols = [sum(col) for col in zip(*table, strict=True)]
    if any(sum(row) == 0 for row in table) or any(c == 0 for c in cols):
        return TestResult(None, name, n, reason="a row or column of the table is empty")
    res = stats.chi2_contingency([list(row) for row in table], correction=True)
    return TestResult(_p(res.pvalue), name, n, float(res.statistic))


def run_paired(test: str, differences: Sequence[float]) -> TestResult:
    """Run a paired/within-group test chosen by the study definition ("wilcoxon" or "paired_t")."""
    if test == "wilcoxon":
        return wilcoxon_signed_rank(differences)
    if test == "paired_t":
        return paired_t(differences)
    raise ValueError(f"unknown paired test {test!r}")


def run_between(test: str, first: Sequence[float], second: Sequence[float]) -> TestResult:
    """Run a two-group test chosen by the study definition."""
    if test == "mannwhitneyu":
        return mann_whitney_u(first, second)
    if test == "welch_t":
        return welch_t(first, second)
    if test == "student_t":
        return student_t(first, second)
    raise ValueError(f"unknown between-group test {test!r}")


def run_table(test: str, table: Sequence[Sequence[int]]) -> TestResult:
    """Run a 2x2 table test chosen by the study definition."""
    if test == "fisher_exact":
        return fisher_exact_2x2(table)
    if test == "chi2":
        return chi2_2x2(table)
    raise ValueError(f"unknown table test {test!r}")
