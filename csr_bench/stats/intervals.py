"""Closed-form intervals for proportions."""

from __future__ import annotations

import math

from csr_bench.stats.normal import normal_ppf


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927).

    The set of p with |p_hat - p| <= z sqrt(p (1 - p) / n); unlike the Wald interval it stays inside [0, 1]
    and does not collapse at 0 or n successes. (nan, nan) when n = 0.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n, got successes={successes}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if n == 0:
        return float("nan"), float("nan")
    z = normal_ppf(0.5 + confidence / 2.0)
    p_hat = successes / n
    z2_n = z * z / n
    centre = (p_hat + z2_n / 2.0) / (1.0 + z2_n)
    half_width = z / (1.0 + z2_n) * math.sqrt(p_hat * (1.0 - p_hat) / n + z2_n / (4.0 * n))
    # 0 (or n) successes give a bound of exactly 0 (or 1) in exact arithmetic; do not leave rounding there.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == n else min(1.0, centre + half_width)
    return low, high
