"""Standard normal cdf and quantile without scipy (stdlib `statistics.NormalDist`)."""

from __future__ import annotations

from statistics import NormalDist

_STANDARD_NORMAL = NormalDist(0.0, 1.0)


def normal_cdf(x: float) -> float:
    """P(Z <= x) for a standard normal Z."""
    return _STANDARD_NORMAL.cdf(float(x))


def normal_ppf(q: float) -> float:
    """The q-quantile of the standard normal (inverse of `normal_cdf`); q must lie strictly in (0, 1)."""
    q = float(q)
    if not 0.0 < q < 1.0:
        raise ValueError(f"normal_ppf needs a probability strictly between 0 and 1, got {q}")
    return _STANDARD_NORMAL.inv_cdf(q)
