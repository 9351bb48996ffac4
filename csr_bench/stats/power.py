"""Power analysis: the smallest true difference an evaluation can reliably detect.

Following Miller (2024), "Adding Error Bars to Evals" (arXiv 2411.00640), sec. "Power analysis": a two-sided
z-test at level alpha detects a true difference delta with probability `power` when
delta >= (z_{1-alpha/2} + z_{power}) * SE, where SE is the standard error of the estimated difference.

For comparing two models on the same questions the paper's guidance is to use the *paired* standard error,
sqrt(Var(s_a - s_b) / n) (plus the per-question sampling variance of each model divided by its number of
samples per question, when answers are resampled). Because scores of two models on one question are usually
positively correlated, this is smaller than sqrt(SE_a^2 + SE_b^2), often much smaller. Here that quantity is
`paired_bootstrap(...).se`: the bootstrap standard error of delta with shared unit weights (and with
`resample_seeds=True` it also carries the seed-to-seed variance).
"""

from __future__ import annotations

import math

from csr_bench.stats.normal import normal_ppf


def _check_levels(alpha: float, power: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must lie strictly between 0 and 1, got {power}")


def minimum_detectable_effect(se: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """(z_{1-alpha/2} + z_{power}) * se: the true effect a two-sided level-alpha test detects with `power`.

    se: standard error of the estimated difference; for a paired comparison the paired SE
    (`paired_bootstrap(...).se`), not sqrt(se_a**2 + se_b**2). With the defaults the factor is 2.80.
    """
    _check_levels(alpha, power)
    if not se >= 0:
        raise ValueError(f"se must be a non-negative number, got {se}")
    return (normal_ppf(1.0 - alpha / 2.0) + normal_ppf(power)) * float(se)


def units_needed(effect: float, se: float, n_units: int, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units needed to detect `effect`, given that `n_units` units gave standard error `se` (SE ~ 1/sqrt(n))."""
    if not effect > 0:
        raise ValueError(f"effect must be positive, got {effect}")
    if n_units < 1:
        raise ValueError(f"n_units must be positive, got {n_units}")
    mde = minimum_detectable_effect(se, alpha=alpha, power=power)
    return max(1, math.ceil(n_units * (mde / effect) ** 2))
