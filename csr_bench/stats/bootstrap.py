"""Bootstrap confidence intervals of metrics of summed per-unit statistics, single and paired.

A metric is `value = metric(S)` with S the column sums over resampling units of the per-unit statistics. A
bootstrap replicate only changes how often each unit is counted, so all replicates are evaluated in one call
of the metric on an array of resampled sums (see `resampling.py` for how the sums are drawn).

Seeds. With statistics of shape (n_seeds, n_units, k) the per-unit statistics are averaged over seeds and
units are resampled. With `resample_seeds=True` each replicate also draws seeds with replacement: by
linearity its sums are sum_s v_s * (per-seed resampled sums) with v the seed counts divided by n_seeds, so the
per-seed sums of all seeds are drawn at once with the same unit weights. In a paired comparison the unit
weights are shared by a and b; seeds are drawn independently for a and b (their seeds are separate runs and
their number may differ).

Undefined replicates. A metric may be NaN on some resamples (F1 with no positive prediction and no positive
label). Such replicates are left out of quantiles, standard errors and p-values; `n_nan` says how many there
were, so a caller can tell a solid interval from one resting on a fraction of the resamples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from csr_bench.stats.inputs import (
    MetricFn,
    as_seed_unit_stats,
    check_confidence,
    check_count,
    evaluate_metric,
)
from csr_bench.stats.normal import normal_cdf, normal_ppf
from csr_bench.stats.resampling import resampled_sums

Method = Literal["percentile", "bca"]
Seed = int | np.random.Generator | None

# Relative tolerance when comparing replicate deltas with the observed one: sums are accumulated in another
# order in the replicates, and for discrete metrics exact ties must count as ties.
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class BootstrapCI:
    """A metric's value on all units with its bootstrap confidence interval."""

    value: float
    low: float
    high: float
    se: float  # standard deviation of the defined bootstrap replicates (ddof=1)
    n_units: int
    n_seeds: int
    n_resamples: int
    n_nan: int  # replicates where the metric was undefined; excluded from low, high and se
    confidence: float
    method: str
    resample_seeds: bool
    replicates: np.ndarray = field(repr=False, compare=False)  # (n_resamples,), NaN where undefined


@dataclass(frozen=True)
class PairedBootstrap:
    """Candidate b against baseline a on the same units: delta = metric(b) - metric(a)."""

    a: float
    b: float
    delta: float
    low: float  # interval of delta
    high: float
    p_value: float  # two-sided, H0: delta = 0 (see `paired_bootstrap`)
    se: float  # bootstrap standard error of delta
    a_low: float
    a_high: float
    b_low: float
    b_high: float
    n_units: int
    n_seeds_a: int
    n_seeds_b: int
    n_resamples: int
    n_nan: int  # replicates where delta was undefined; excluded from the interval, se and p-value
    confidence: float
    method: str
    resample_seeds: bool
    replicates: np.ndarray = field(repr=False, compare=False)  # bootstrap deltas, NaN where undefined


def bootstrap_ci(
    stats: np.ndarray,
    metric: MetricFn,
    *,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    method: Method = "percentile",
    seed: Seed = 0,
    resample_seeds: bool = False,
) -> BootstrapCI:
    """Bootstrap interval of `metric` over resampled units.

    stats: per-unit statistics, (n_units, k) or (n_seeds, n_units, k). metric: maps column sums (..., k) to
    values (...). method: "percentile", or "bca" (bias-corrected and accelerated; the acceleration comes
    from the leave-one-unit-out values metric(total - row), computed from the sums without refitting).
    seed: an int or a `numpy.random.Generator`; the same seed gives the same interval.
    """
    block = as_seed_unit_stats(stats, "stats")
    n_resamples = check_count(n_resamples, "n_resamples")
    confidence = check_confidence(confidence)
    _check_method(method, block.shape[1])
    rng = np.random.default_rng(seed)

    unit_means = block.mean(axis=0)
    total = unit_means.sum(axis=0)
    value = float(evaluate_metric(metric, total))
    (sums,) = _replicate_sums([block], n_resamples, rng, resample_seeds)
    replicates = evaluate_metric(metric, sums)
    jackknife = evaluate_metric(metric, total - unit_means) if method == "bca" else None
    low, high, se, n_nan = _interval(replicates, value, confidence, method, jackknife)
    return BootstrapCI(
        value=value,
        low=low,
        high=high,
        se=se,
        n_units=block.shape[1],
        n_seeds=block.shape[0],
        n_resamples=n_resamples,
        n_nan=n_nan,
        confidence=confidence,
        method=method,
        resample_seeds=resample_seeds,
        replicates=replicates,
    )


def paired_bootstrap(
    stats_a: np.ndarray,
    stats_b: np.ndarray,
    metric: MetricFn,
    *,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: Seed = 0,
    resample_seeds: bool = False,
    method: Method = "percentile",
) -> PairedBootstrap:
    """Paired bootstrap of delta = metric(b) - metric(a), b being the candidate and a the baseline.

    stats_a and stats_b hold the same units in the same row order ((n_units, k) or (n_seeds, n_units, k); the
    numbers of seeds may differ). Every replicate uses the same unit weights for a and b, so what the two
    models share (easy and hard items) cancels in delta.

    p_value: two-sided test of delta = 0 by the shifted bootstrap distribution (Efron & Tibshirani 1993,
    sec. 16.4): delta* - delta approximates the distribution of the estimate under the null, and
    p = (1 + #{|delta*_i - delta| >= |delta|}) / (B + 1) over the B defined replicates. The +1 terms keep
    p > 0 (a Monte-Carlo p-value can not be smaller than 1 / (B + 1)); p = 1 when delta = 0.
    """
    block_a = as_seed_unit_stats(stats_a, "stats_a")
    block_b = as_seed_unit_stats(stats_b, "stats_b")
    if block_a.shape[1] != block_b.shape[1]:
        raise ValueError(
            f"stats_a has {block_a.shape[1]} units but stats_b has {block_b.shape[1]}; a paired comparison "
            "needs the same units, in the same row order, for both models"
        )
    if block_a.shape[2] != block_b.shape[2]:
        raise ValueError(
            f"stats_a has {block_a.shape[2]} statistics per unit but stats_b has {block_b.shape[2]}; both must "
            "be the statistics vector of the same metric"
        )
    n_resamples = check_count(n_resamples, "n_resamples")
    confidence = check_confidence(confidence)
    _check_method(method, block_a.shape[1])
    rng = np.random.default_rng(seed)

    means_a, means_b = block_a.mean(axis=0), block_b.mean(axis=0)
    total_a, total_b = means_a.sum(axis=0), means_b.sum(axis=0)
    value_a = float(evaluate_metric(metric, total_a))
    value_b = float(evaluate_metric(metric, total_b))
    delta = value_b - value_a

    sums_a, sums_b = _replicate_sums([block_a, block_b], n_resamples, rng, resample_seeds)
    replicates_a = evaluate_metric(metric, sums_a)
    replicates_b = evaluate_metric(metric, sums_b)
    replicates = replicates_b - replicates_a

    jack_a = jack_b = None
    if method == "bca":
        jack_a = evaluate_metric(metric, total_a - means_a)
        jack_b = evaluate_metric(metric, total_b - means_b)
    low, high, se, n_nan = _interval(
        replicates, delta, confidence, method, None if jack_a is None else jack_b - jack_a
    )
    a_low, a_high, _, _ = _interval(replicates_a, value_a, confidence, method, jack_a)
    b_low, b_high, _, _ = _interval(replicates_b, value_b, confidence, method, jack_b)
    return PairedBootstrap(
        a=value_a,
        b=value_b,
        delta=delta,
        low=low,
        high=high,
        p_value=shifted_bootstrap_p_value(replicates, delta),
        se=se,
        a_low=a_low,
        a_high=a_high,
        b_low=b_low,
        b_high=b_high,
        n_units=block_a.shape[1],
        n_seeds_a=block_a.shape[0],
        n_seeds_b=block_b.shape[0],
        n_resamples=n_resamples,
        n_nan=n_nan,
        confidence=confidence,
        method=method,
        resample_seeds=resample_seeds,
        replicates=replicates,
    )


def shifted_bootstrap_p_value(replicates: np.ndarray, estimate: float) -> float:
    """Two-sided p of H0: true value 0, from replicates of the estimate: (1 + #{|r - est| >= |est|}) / (B + 1)."""
    if not np.isfinite(estimate):
        return float("nan")
    defined = replicates[np.isfinite(replicates)]
    if defined.size == 0:
        return float("nan")
    threshold = abs(estimate) * (1.0 - TIE_TOLERANCE)
    extreme = int(np.count_nonzero(np.abs(defined - estimate) >= threshold))
    return (1.0 + extreme) / (1.0 + defined.size)


def _check_method(method: str, n_units: int) -> None:
    if method not in ("percentile", "bca"):
        raise ValueError(f"method must be 'percentile' or 'bca', got {method!r}")
    if method == "bca" and n_units < 2:
        raise ValueError("method 'bca' needs at least 2 units (its acceleration is a leave-one-unit-out jackknife)")


def _replicate_sums(
    blocks: list[np.ndarray], n_resamples: int, rng: np.random.Generator, resample_seeds: bool
) -> list[np.ndarray]:
    """Resampled column sums (n_resamples, k) of each block (n_seeds, n_units, k), with shared unit weights."""
    n_units = blocks[0].shape[1]
    if not resample_seeds:
        matrix = np.concatenate([block.mean(axis=0) for block in blocks], axis=1)
        sums = resampled_sums(matrix, n_resamples, rng)
        return np.split(sums, np.cumsum([block.shape[2] for block in blocks])[:-1], axis=1)

    # One column group per (block, seed): resampling units once gives every seed's resampled sums.
    matrix = np.concatenate(
        [block.transpose(1, 0, 2).reshape(n_units, -1) for block in blocks], axis=1
    )
    sums = resampled_sums(matrix, n_resamples, rng)
    out = []
    offset = 0
    for block in blocks:
        n_seeds, _, k = block.shape
        per_seed = sums[:, offset : offset + n_seeds * k].reshape(n_resamples, n_seeds, k)
        offset += n_seeds * k
        seed_weights = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_resamples) / n_seeds
        out.append(np.einsum("bs,bsk->bk", seed_weights, per_seed))
    return out


def _interval(
    replicates: np.ndarray,
    estimate: float,
    confidence: float,
    method: str,
    jackknife: np.ndarray | None,
) -> tuple[float, float, float, int]:
    """(low, high, se, n_nan) from the replicates; NaN replicates are left out."""
    defined_mask = np.isfinite(replicates)
    n_nan = int(replicates.size - np.count_nonzero(defined_mask))
    defined = replicates[defined_mask]
    if defined.size == 0:
        return float("nan"), float("nan"), float("nan"), n_nan
    se = float(defined.std(ddof=1)) if defined.size > 1 else float("nan")
    alpha = (1.0 - confidence) / 2.0
    if method == "bca":
        if not np.isfinite(estimate):
            return float("nan"), float("nan"), se, n_nan
        levels = _bca_levels(defined, estimate, alpha, jackknife)
    else:
        levels = (alpha, 1.0 - alpha)
    low, high = np.quantile(defined, levels)
    return float(low), float(high), se, n_nan


def _bca_levels(
    defined: np.ndarray, estimate: float, alpha: float, jackknife: np.ndarray | None
) -> tuple[float, float]:
    """BCa quantile levels (Efron & Tibshirani 1993, eq. 14.10 and 14.15), as in scipy.stats.bootstrap."""
    b = defined.size
    # Bias correction: ties count half, like scipy; clipped so an all-one-sided distribution stays finite.
    below = (np.count_nonzero(defined < estimate) + np.count_nonzero(defined <= estimate)) / (2.0 * b)
    below = min(max(below, 0.5 / b), 1.0 - 0.5 / b)
    z0 = normal_ppf(below)

    acceleration = 0.0
    if jackknife is not None:
        values = jackknife[np.isfinite(jackknife)]
        if values.size > 1:
            d = values.mean() - values
            denominator = float(np.sum(d**2)) ** 1.5
            if denominator > 0:
                acceleration = float(np.sum(d**3)) / (6.0 * denominator)

    levels = []
    for z_alpha in (normal_ppf(alpha), normal_ppf(1.0 - alpha)):
        shifted = z0 + z_alpha
        levels.append(normal_cdf(z0 + shifted / (1.0 - acceleration * shifted)))
    return levels[0], levels[1]
