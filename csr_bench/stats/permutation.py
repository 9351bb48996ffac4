"""Paired permutation (swap) test of a metric difference between two models on the same units."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from csr_bench.stats.bootstrap import TIE_TOLERANCE, Seed
from csr_bench.stats.inputs import MetricFn, as_seed_unit_stats, check_count, evaluate_metric
from csr_bench.stats.resampling import sign_flip_shifts


@dataclass(frozen=True)
class PermutationTest:
    a: float
    b: float
    delta: float  # metric(b) - metric(a)
    p_value: float  # two-sided
    n_units: int
    n_permutations: int
    n_nan: int  # permutations where delta was undefined; left out of the p-value
    null_deltas: np.ndarray = field(repr=False, compare=False)


def paired_permutation_test(
    stats_a: np.ndarray,
    stats_b: np.ndarray,
    metric: MetricFn,
    *,
    n_permutations: int = 10000,
    seed: Seed = 0,
) -> PermutationTest:
    """Two-sided test of "a and b are exchangeable within each unit" by swapping them at random.

    Each permutation swaps the statistics of a and b in every unit independently with probability 1/2 and
    recomputes delta = metric(b) - metric(a); p = (1 + #{|delta*| >= |delta|}) / (P + 1) over the P defined
    permutations (a Monte-Carlo p-value that is valid at any P). For an additive metric such as accuracy
    this is the paired sign-flip test (for binary correctness: the exact McNemar test as P grows); it works
    unchanged for F1 or any other metric of summed statistics. With 3-D (seeds) input the per-unit
    statistics are averaged over seeds first; a and b may have different numbers of seeds.
    """
    block_a = as_seed_unit_stats(stats_a, "stats_a")
    block_b = as_seed_unit_stats(stats_b, "stats_b")
    if block_a.shape[1:] != block_b.shape[1:]:
        raise ValueError(
            f"stats_a has shape (units, stats) {block_a.shape[1:]} but stats_b has {block_b.shape[1:]}; a "
            "paired test needs the same units, in the same row order, and the same statistics for both models"
        )
    n_permutations = check_count(n_permutations, "n_permutations")
    rng = np.random.default_rng(seed)

    units_a, units_b = block_a.mean(axis=0), block_b.mean(axis=0)
    total_a, total_b = units_a.sum(axis=0), units_b.sum(axis=0)
    value_a = float(evaluate_metric(metric, total_a))
    value_b = float(evaluate_metric(metric, total_b))
    delta = value_b - value_a

    shifts = sign_flip_shifts(units_b - units_a, n_permutations, rng)
    null_deltas = evaluate_metric(metric, total_b - shifts) - evaluate_metric(metric, total_a + shifts)
    defined = null_deltas[np.isfinite(null_deltas)]
    if not np.isfinite(delta) or defined.size == 0:
        p_value = float("nan")
    else:
        threshold = abs(delta) * (1.0 - TIE_TOLERANCE)
        p_value = (1.0 + np.count_nonzero(np.abs(defined) >= threshold)) / (1.0 + defined.size)
    return PermutationTest(
        a=value_a,
        b=value_b,
        delta=delta,
        p_value=float(p_value),
        n_units=block_a.shape[1],
        n_permutations=n_permutations,
        n_nan=int(null_deltas.size - defined.size),
        null_deltas=null_deltas,
    )
