"""Exact McNemar test: a two-sided binomial test on the discordant pairs of two classifiers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Stop summing the binomial tail once a term is this small relative to the sum so far (terms only shrink).
_NEGLIGIBLE_TERM = 1e-17


@dataclass(frozen=True)
class McNemarResult:
    b: int  # items a got right and b got wrong
    c: int  # items a got wrong and b got right
    p_value: float

    @property
    def n_discordant(self) -> int:
        return self.b + self.c


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemarResult:
    """Exact McNemar test of equal accuracy for paired binary outcomes (1 = correct) of models a and b.

    Under H0 each discordant pair is equally likely to favour a or b, so b ~ Binomial(b + c, 1/2); the
    two-sided p-value is that of `scipy.stats.binomtest(b, b + c, 0.5)`, i.e. min(1, 2 P(X <= min(b, c))) for
    this symmetric distribution, and 1 when there is no discordant pair.
    """
    a = np.asarray(correct_a)
    b_arr = np.asarray(correct_b)
    if a.ndim != 1 or b_arr.ndim != 1 or a.shape != b_arr.shape:
        raise ValueError(
            f"correct_a and correct_b must be 1-D arrays of the same length (one entry per item), got shapes "
            f"{a.shape} and {b_arr.shape}"
        )
    for name, arr in (("correct_a", a), ("correct_b", b_arr)):
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{name} must hold only 0/1 (or False/True) per item")
    a_bool, b_bool = a.astype(bool), b_arr.astype(bool)
    b = int(np.count_nonzero(a_bool & ~b_bool))
    c = int(np.count_nonzero(~a_bool & b_bool))
    return McNemarResult(b=b, c=c, p_value=binomial_two_sided_half(min(b, c), b + c))


def binomial_two_sided_half(k: int, n: int) -> float:
    """Two-sided p-value of k successes in n trials under p = 1/2: min(1, 2 P(X <= min(k, n - k)))."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    if 2 * k >= n:  # the observed count is at the centre: nothing is more likely than it
        return 1.0
    return min(1.0, 2.0 * math.exp(_log_binomial_cdf_half(k, n)))


def _log_binomial_cdf_half(k: int, n: int) -> float:
    """log P(X <= k) for X ~ Binomial(n, 1/2) with k < n / 2, summed in log space from k downwards.

    Below the mode the terms fall monotonically, so the sum stops once they no longer change it; each term
    uses lgamma directly, so rounding does not accumulate over long tails.
    """
    log_norm = math.lgamma(n + 1) - n * math.log(2.0)

    def log_pmf(i: int) -> float:
        return log_norm - math.lgamma(i + 1) - math.lgamma(n - i + 1)

    log_top = log_pmf(k)
    relative_sum = 0.0  # sum of pmf(i) / pmf(k)
    for i in range(k, -1, -1):
        term = math.exp(log_pmf(i) - log_top)
        relative_sum += term
        if term < _NEGLIGIBLE_TERM * relative_sum:
            break
    return log_top + math.log(relative_sum)
