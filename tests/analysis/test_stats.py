"""Each test wrapper against an answer computed independently (by hand or by enumeration)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
from scipy import stats as scipy_stats

from adapter.analysis import stats


def _signed_rank_exact_p(differences: list[float]) -> float:
    """Two-sided exact Wilcoxon P by enumerating all 2^n sign patterns (no ties, no zeros)."""
    n = len(differences)
    rank = {abs(d): i + 1 for i, d in enumerate(sorted(differences, key=abs))}
    total = n * (n + 1) // 2
    observed = sum(rank[abs(d)] for d in differences if d > 0)
    w = min(observed, total - observed)
    count = 0
    for signs in itertools.product((False, True), repeat=n):
        positive = sum(r for r, on in zip(range(1, n + 1), signs, strict=True) if on)
        if min(positive, total - positive) <= w:
            count += 1
    return min(1.0, count / float(2**n))


def test_wilcoxon_exact_five_positive_pairs_is_one_in_sixteen() -> None:
    result = stats.wilcoxon_signed_rank([1.0, 2.5, 3.0, 4.0, 7.0])
    assert result.p == pytest.approx(2 / 32)
    assert result.p == pytest.approx(0.0625)
    assert result.method == "wilcoxon signed-rank, exact"


def test_wilcoxon_exact_with_five_pairs_cannot_go_below_0_0625() -> None:
    magnitudes = [1.0, 2.0, 3.0, 4.0, 5.0]
    smallest = min(
        stats.wilcoxon_signed_rank([m * s for m, s in zip(magnitudes, signs, strict=True)]).p or 1.0
        for signs in itertools.product((-1, 1), repeat=5)
    )
    assert smallest == pytest.approx(0.0625)


def test_wilcoxon_exact_matches_enumeration() -> None:
    differences = [3.0, -1.0, 4.5, 2.0, -6.0, 8.0, 7.0]
    result = stats.wilcoxon_signed_rank(differences)
    assert result.p == pytest.approx(_signed_rank_exact_p(differences))
    assert "exact" in result.method


def test_wilcoxon_with_ties_says_so_and_equals_scipy_default() -> None:
    differences = [1.0, 2.0, 2.0, 4.0, 0.0]
    result = stats.wilcoxon_signed_rank(differences)
    assert "ties or zero differences" in result.method
    assert "permutation" in result.method
    assert result.p == pytest.approx(scipy_stats.wilcoxon(differences).pvalue)


def test_wilcoxon_with_ties_beyond_13_pairs_uses_the_normal_approximation_like_scipy() -> None:
    differences = [float(v) for v in range(1, 14)] + [1.0]
    result = stats.wilcoxon_signed_rank(differences)
    assert "normal approximation" in result.method
    assert result.p == pytest.approx(scipy_stats.wilcoxon(differences).pvalue)


def test_wilcoxon_all_zero_differences_gives_no_p_and_a_reason() -> None:
    result = stats.wilcoxon_signed_rank([0.0, 0.0, 0.0])
    assert result.p is None
    assert result.reason == "all differences are zero"
    assert stats.wilcoxon_signed_rank([]).reason == "no paired differences"


def test_mann_whitney_exact_matches_enumeration_of_all_splits() -> None:
    first, second = [2.0, 4.0, 6.0, 8.0, 10.0], [-1.0, 3.0, -5.0, 7.0]
    pooled = first + second

    def u_of(group: tuple[float, ...], other: list[float]) -> int:
        return sum(1 for a in group for b in other if a > b)

    observed = u_of(tuple(first), second)
    mean_u = len(first) * len(second) / 2
    splits = list(itertools.combinations(range(len(pooled)), len(first)))
    extreme = 0
    for chosen in splits:
        group = tuple(pooled[i] for i in chosen)
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        if abs(u_of(group, rest) - mean_u) >= abs(observed - mean_u):
            extreme += 1
    result = stats.mann_whitney_u(first, second)
    assert result.method == "Mann-Whitney U, exact"
    assert result.p == pytest.approx(extreme / len(splits))


def test_mann_whitney_with_ties_reports_the_approximation() -> None:
    result = stats.mann_whitney_u([1.0, 2.0, 2.0], [2.0, 3.0, 4.0])
    assert "ties present" in result.method
    assert result.p is not None and 0 < result.p <= 1


def test_welch_t_against_a_hand_computation() -> None:
    x, y = [7.0, 9.0, 6.0, 11.0, 8.0], [1.0, 4.0, -2.0, 3.0]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    vx = sum((v - mx) ** 2 for v in x) / (len(x) - 1)
    vy = sum((v - my) ** 2 for v in y) / (len(y) - 1)
    se2 = vx / len(x) + vy / len(y)
    t = (mx - my) / math.sqrt(se2)
    df = se2**2 / ((vx / len(x)) ** 2 / (len(x) - 1) + (vy / len(y)) ** 2 / (len(y) - 1))
    expected = 2 * scipy_stats.t.sf(abs(t), df)
    result = stats.welch_t(x, y)
    assert result.method == "Welch t-test"
    assert result.statistic == pytest.approx(t)
    assert result.p == pytest.approx(expected)


def test_paired_t_against_a_hand_computation() -> None:
    d = [5.9, 6.8, 4.8, 5.8, 6.2]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (len(d) - 1))
    t = mean / (sd / math.sqrt(len(d)))
    result = stats.paired_t(d)
    assert result.statistic == pytest.approx(t)
    assert result.p == pytest.approx(2 * scipy_stats.t.sf(t, len(d) - 1))
    assert result.method == "paired t-test"


def test_paired_t_needs_two_pairs_and_some_variance() -> None:
    assert stats.paired_t([1.0]).reason == "fewer than 2 pairs"
    assert stats.paired_t([2.0, 2.0, 2.0]).reason == "differences have no variance"


def _hypergeometric(a: int, b: int, c: int, d: int) -> Fraction:
    n = a + b + c + d
    return Fraction(math.comb(a + b, a) * math.comb(c + d, c), math.comb(n, a + c))


def test_fisher_exact_on_the_tea_tasting_table() -> None:
    # Fisher's lady tasting tea: 3 of 4 right; two-sided P = 34/70.
    result = stats.fisher_exact_2x2([[3, 1], [1, 3]])
    assert result.p == pytest.approx(34 / 70)


def test_fisher_exact_against_summed_hypergeometric_probabilities() -> None:
    # 9 of 12 IVIG courses major vs 0 of 11 placebo courses: sum every table with the same margins
    # that is no more probable than the observed one.
    a, b, c, d = 9, 3, 0, 11
    row1, col1, n = a + b, a + c, a + b + c + d
    observed = _hypergeometric(a, b, c, d)
    total = Fraction(0)
    for k in range(max(0, row1 + col1 - n), min(row1, col1) + 1):
        p = _hypergeometric(k, row1 - k, col1 - k, n - row1 - col1 + k)
        if p <= observed:
            total += p
    result = stats.fisher_exact_2x2([[a, b], [c, d]])
    assert result.method == "Fisher exact"
    assert result.p == pytest.approx(float(total))


def test_fisher_exact_with_an_empty_row_gives_a_reason() -> None:
    result = stats.fisher_exact_2x2([[0, 0], [2, 3]])
    assert result.p is None and result.reason == "a row of the table is empty"


def test_the_definition_picks_the_test_by_name() -> None:
    assert stats.run_paired("paired_t", [1.0, 2.0, 3.5]).method == "paired t-test"
    assert stats.run_between("student_t", [1.0, 2.0], [3.0, 5.0]).method.startswith("Student")
    assert stats.run_table("chi2", [[5, 1], [1, 5]]).method.startswith("chi-square")
    with pytest.raises(ValueError, match="unknown"):
        stats.run_paired("sign", [1.0])
