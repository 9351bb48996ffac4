"""Invariants of the statistics functions on small random datasets (hypothesis, derandomized).

What is tested, precisely:

- Percentile bootstrap: low <= high; both are quantiles of the defined replicates (so inside their [min, max]);
  the point value is the metric on the column sums; the same seed gives the same replicates.
  "The interval contains the estimate" is NOT a theorem for every metric: for a ratio of sums R = sum x / sum d,
  R* >= R_hat iff sum_i w_i (x_i - R_hat d_i) >= 0, a resampled sum of values that add up to zero, whose chance
  of being >= 0 is not bounded away from 0.025 in general; F1 has no such reduction at all. It is a theorem for
  accuracy with one 0/1 item per unit: n * R* ~ Binomial(n, k/n), whose median is exactly k, so at least half
  the bootstrap distribution lies on each side of k/n; with B = 1000 replicates the sample quantiles miss it with
  probability below 1e-200. That case is tested.
- Paired bootstrap: delta == b - a exactly, a and b equal the single-model values, swapping a and b negates
  delta exactly, p in (0, 1] and p == 1 when delta == 0.
- Invariance under a permutation of the units with the same seed: true by construction when the bootstrap or
  sign-flip draws go through distinct rows (the "multinomial" path: rows grouped by a sort, so row order never
  reaches the random draws), which `auto` takes when at most a quarter of the rows are distinct, as with one-hot
  statistics; tested there. The "indices" path draws per row position and is not permutation invariant.
- Holm and Benjamini-Hochberg: adjusted p in [0, 1], >= raw p, monotone in raw p, BH <= Holm (to an ulp), equivariant under
  permutation of the tests, NaN kept in place.
- Wilson: 0 <= low <= p_hat <= high <= 1, nested as confidence grows, mirror image for n - k successes.
- McNemar: p in [0, 1], symmetric in the two models, equal to scipy's binomtest.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from csr_bench.stats import (
    benjamini_hochberg,
    bootstrap_ci,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    paired_permutation_test,
    wilson_interval,
)
from csr_bench.suites.base import ratio
from csr_bench.suites.pope import POPE_METRICS

FUZZ = settings(max_examples=100, deadline=None, derandomize=True)
RESAMPLES = 300

accuracy = ratio(0, 1)
pope_f1 = next(m for m in POPE_METRICS if m.name == "f1")
pope_precision = next(m for m in POPE_METRICS if m.name == "precision")


def one_hot_pope(outcomes: list[int]) -> np.ndarray:
    """(tp, fp, fn, tn, unparsed) rows."""
    return np.eye(5)[outcomes]


# Datasets: (per-unit statistics (n_units, k), metric) as the suites produce them.
binary_units = st.lists(st.integers(0, 1), min_size=2, max_size=40).map(
    lambda xs: np.array([[x, 1] for x in xs], dtype=float))
clustered_units = st.lists(st.integers(1, 5).flatmap(lambda d: st.tuples(st.integers(0, d), st.just(d))),
                           min_size=2, max_size=30).map(lambda rows: np.array(rows, dtype=float))
graded_units = st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]), min_size=2, max_size=30).map(
    lambda xs: np.array([[x, 1] for x in xs], dtype=float))
pope_units = st.lists(st.integers(0, 4), min_size=2, max_size=40).map(one_hot_pope)

datasets = st.one_of(
    binary_units.map(lambda s: (s, accuracy)),
    clustered_units.map(lambda s: (s, accuracy)),
    graded_units.map(lambda s: (s, accuracy)),
    pope_units.map(lambda s: (s, pope_f1)),
    pope_units.map(lambda s: (s, pope_precision)),
)
seeds = st.integers(0, 2**32 - 1)
confidences = st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99])


def metric_value(metric, stats: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.asarray(metric(stats.sum(axis=0)), dtype=float))


# ---------------------------------------------------------------------------------------------------------
# Bootstrap intervals


@FUZZ
@given(data=datasets, seed=seeds, confidence=confidences, method=st.sampled_from(["percentile", "bca"]))
def test_bootstrap_interval_is_made_of_replicate_quantiles(data, seed, confidence, method):
    stats, metric = data
    ci = bootstrap_ci(stats, metric, n_resamples=RESAMPLES, confidence=confidence, method=method, seed=seed)
    value = metric_value(metric, stats)
    assert ci.value == value or (math.isnan(ci.value) and math.isnan(value))
    defined = ci.replicates[np.isfinite(ci.replicates)]
    assert ci.n_nan == RESAMPLES - defined.size
    if defined.size == 0 or (method == "bca" and not math.isfinite(value)):
        assert math.isnan(ci.low) and math.isnan(ci.high)
        return
    assert defined.min() <= ci.low <= ci.high <= defined.max()
    if method == "percentile":
        alpha = (1 - confidence) / 2
        assert (ci.low, ci.high) == tuple(np.quantile(defined, [alpha, 1 - alpha]))
    again = bootstrap_ci(stats, metric, n_resamples=RESAMPLES, confidence=confidence, method=method, seed=seed)
    np.testing.assert_array_equal(again.replicates, ci.replicates)


@FUZZ
@given(outcomes=st.lists(st.integers(0, 1), min_size=2, max_size=60), seed=seeds, confidence=confidences)
def test_percentile_interval_contains_accuracy_with_one_binary_item_per_unit(outcomes, seed, confidence):
    stats = np.array([[x, 1] for x in outcomes], dtype=float)
    ci = bootstrap_ci(stats, accuracy, n_resamples=1000, confidence=confidence, seed=seed)
    assert ci.value == sum(outcomes) / len(outcomes)
    assert ci.low <= ci.value <= ci.high


# ---------------------------------------------------------------------------------------------------------
# Paired comparisons


paired_datasets = st.integers(2, 30).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 4), min_size=n, max_size=n).map(one_hot_pope),
    st.lists(st.integers(0, 4), min_size=n, max_size=n).map(one_hot_pope),
    st.sampled_from([pope_f1, pope_precision, next(m for m in POPE_METRICS if m.name == "accuracy")]),
))


@FUZZ
@given(data=paired_datasets, seed=seeds)
def test_paired_delta_is_the_difference_of_the_two_estimates(data, seed):
    a, b, metric = data
    d = paired_bootstrap(a, b, metric, n_resamples=RESAMPLES, seed=seed)
    value_a, value_b = metric_value(metric, a), metric_value(metric, b)
    assert (d.a, d.b) == pytest.approx((value_a, value_b), nan_ok=True, rel=0, abs=0)
    assert d.delta == d.b - d.a or (math.isnan(d.delta) and not (math.isfinite(d.a) and math.isfinite(d.b)))
    swapped = paired_bootstrap(b, a, metric, n_resamples=RESAMPLES, seed=seed)
    assert swapped.delta == -d.delta or math.isnan(d.delta)
    if math.isfinite(d.delta) and math.isfinite(d.p_value):
        assert 0 < d.p_value <= 1
        if d.delta == 0:
            assert d.p_value == 1
        assert d.low <= d.high
    perm = paired_permutation_test(a, b, metric, n_permutations=RESAMPLES, seed=seed)
    assert (perm.a, perm.b, perm.delta) == (d.a, d.b, d.delta) or math.isnan(d.delta)
    assert math.isnan(perm.p_value) or 0 < perm.p_value <= 1


# Rows drawn from a palette of at most n/4 distinct (a, b) outcome pairs: the multinomial path (module docstring).
repeating_rows = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=4, unique=True).flatmap(
    lambda palette: st.integers(4 * len(palette), 60).flatmap(
        lambda n: st.lists(st.sampled_from(palette), min_size=n, max_size=n)))


@FUZZ
@given(rows=repeating_rows, order_seed=seeds, seed=seeds)
def test_results_do_not_depend_on_unit_order_when_rows_repeat(rows, order_seed, seed):
    a, b = one_hot_pope([r[0] for r in rows]), one_hot_pope([r[1] for r in rows])
    order = np.random.default_rng(order_seed).permutation(len(rows))
    for metric in (pope_f1, pope_precision):
        one = bootstrap_ci(a, metric, n_resamples=RESAMPLES, seed=seed)
        other = bootstrap_ci(a[order], metric, n_resamples=RESAMPLES, seed=seed)
        np.testing.assert_array_equal(one.replicates, other.replicates)
        p1 = paired_bootstrap(a, b, metric, n_resamples=RESAMPLES, seed=seed)
        p2 = paired_bootstrap(a[order], b[order], metric, n_resamples=RESAMPLES, seed=seed)
        np.testing.assert_array_equal(p1.replicates, p2.replicates)
        assert (p1.low, p1.high, p1.p_value) == pytest.approx((p2.low, p2.high, p2.p_value), nan_ok=True, rel=0, abs=0)
        t1 = paired_permutation_test(a, b, metric, n_permutations=RESAMPLES, seed=seed)
        t2 = paired_permutation_test(a[order], b[order], metric, n_permutations=RESAMPLES, seed=seed)
        np.testing.assert_array_equal(t1.null_deltas, t2.null_deltas)


# ---------------------------------------------------------------------------------------------------------
# Corrections, intervals for proportions, McNemar

p_values = st.lists(st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 0.05, 0.05, float("nan")])),
                    min_size=1, max_size=25)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(p=p_values, order_seed=seeds)
def test_holm_and_bh_adjusted_p_values(p, order_seed):
    raw = np.array(p)
    defined = ~np.isnan(raw)
    h, bh = holm(raw), benjamini_hochberg(raw)
    for adj in (h, bh):
        np.testing.assert_array_equal(np.isnan(adj), ~defined)
        r, x = raw[defined], adj[defined]
        assert np.all((0 <= x) & (x <= 1)) and np.all(x >= r)
        for i in range(r.size):  # monotone: a smaller raw p never gets a larger adjusted p
            assert np.all(x[r >= r[i]] >= x[i])
    # BH divides by j/m as statsmodels does, Holm multiplies by m - j + 1: equal bounds can differ by an ulp.
    assert np.all(bh[defined] <= h[defined] * (1 + 1e-15))
    order = np.random.default_rng(order_seed).permutation(raw.size)
    np.testing.assert_array_equal(holm(raw[order]), h[order])
    np.testing.assert_array_equal(benjamini_hochberg(raw[order]), bh[order])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(n=st.integers(1, 10_000), fraction=st.floats(0, 1), confidence=st.floats(0.01, 0.999))
def test_wilson_interval(n, fraction, confidence):
    k = round(fraction * n)
    low, high = wilson_interval(k, n, confidence)
    assert 0 <= low <= k / n <= high <= 1
    wider = wilson_interval(k, n, min(0.9999, confidence + 0.0005))
    assert wider[0] <= low + 1e-15 and high <= wider[1] + 1e-15
    mirror = wilson_interval(n - k, n, confidence)
    assert mirror == pytest.approx((1 - high, 1 - low), abs=1e-12)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(pairs=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=300))
def test_mcnemar_exact(pairs):
    a, b = np.array([x for x, _ in pairs]), np.array([y for _, y in pairs])
    result = mcnemar_exact(a, b)
    assert 0 <= result.p_value <= 1
    swapped = mcnemar_exact(b, a)
    assert swapped.p_value == result.p_value and (swapped.b, swapped.c) == (result.c, result.b)
    if result.n_discordant:
        expected = scipy.stats.binomtest(result.b, result.n_discordant, 0.5).pvalue
        assert result.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
    else:
        assert result.p_value == 1
