"""bootstrap_ci and paired_bootstrap: agreement with scipy, the resampling engine, seeds, NaN, errors."""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest
import scipy.stats
from tests.stats.metric_cases import f1, pope_one_hot, ratio_0_1

from csr_bench.stats import (
    bootstrap_ci,
    distinct_rows,
    paired_bootstrap,
    resampled_sums,
    sign_flip_shifts,
)

B = 10000


def _mean_stats(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, np.ones_like(x)])


# --- agreement with scipy.stats.bootstrap ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_mean_interval_matches_scipy(method):
    x = np.random.default_rng(11).lognormal(0.0, 1.0, size=40)  # skewed: BCa moves away from percentile
    ours = bootstrap_ci(_mean_stats(x), ratio_0_1, n_resamples=B, method=method, seed=1)
    ref = scipy.stats.bootstrap(
        (x,), np.mean, n_resamples=B, method=method, rng=np.random.default_rng(2), vectorized=True
    )
    assert ours.value == pytest.approx(x.mean())
    # Two independent Monte-Carlo estimates of the same quantiles: differences of a few % of the SE.
    tolerance = 0.12 * ref.standard_error
    assert abs(ours.low - ref.confidence_interval.low) < tolerance
    assert abs(ours.high - ref.confidence_interval.high) < tolerance
    assert ours.se == pytest.approx(ref.standard_error, rel=0.05)


def test_bca_differs_from_percentile_on_skewed_data_as_scipy_does():
    x = np.random.default_rng(11).lognormal(0.0, 1.0, size=40)
    ours_p = bootstrap_ci(_mean_stats(x), ratio_0_1, n_resamples=B, seed=1)
    ours_bca = bootstrap_ci(_mean_stats(x), ratio_0_1, n_resamples=B, method="bca", seed=1)
    ref_p = scipy.stats.bootstrap((x,), np.mean, n_resamples=B, method="percentile", rng=np.random.default_rng(2))
    ref_bca = scipy.stats.bootstrap((x,), np.mean, n_resamples=B, method="bca", rng=np.random.default_rng(2))
    shift_ours = ours_bca.high - ours_p.high
    shift_ref = ref_bca.confidence_interval.high - ref_p.confidence_interval.high
    assert shift_ref > 0.1 * ref_p.standard_error  # the check below has teeth
    assert shift_ours == pytest.approx(shift_ref, rel=0.35)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_ratio_interval_matches_scipy_paired(method):
    rng = np.random.default_rng(5)
    y = rng.gamma(2.0, 2.0, size=80)
    x = 0.6 * y + rng.normal(0, 1.0, size=80)
    ours = bootstrap_ci(np.column_stack([x, y]), ratio_0_1, n_resamples=B, method=method, seed=3)
    ref = scipy.stats.bootstrap(
        (x, y),
        lambda a, b, axis: a.sum(axis=axis) / b.sum(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=B,
        method=method,
        rng=np.random.default_rng(4),
    )
    assert ours.value == pytest.approx(x.sum() / y.sum())
    tolerance = 0.12 * ref.standard_error
    assert abs(ours.low - ref.confidence_interval.low) < tolerance
    assert abs(ours.high - ref.confidence_interval.high) < tolerance


def test_paired_f1_delta_matches_scipy():
    rng = np.random.default_rng(8)
    label = rng.random(600) < 0.5
    a = pope_one_hot(label, np.where(rng.random(600) < 0.8, label, ~label))
    b = pope_one_hot(label, np.where(rng.random(600) < 0.86, label, ~label))
    ours = paired_bootstrap(a, b, f1, n_resamples=B, seed=5)

    def delta_f1(xa, xb, axis):
        return f1(np.moveaxis(xb.sum(axis=axis), 0, -1)) - f1(np.moveaxis(xa.sum(axis=axis), 0, -1))

    ref = scipy.stats.bootstrap(
        (a, b), delta_f1, paired=True, vectorized=True, n_resamples=B, method="percentile",
        rng=np.random.default_rng(6), batch=1000,
    )
    assert ours.delta == pytest.approx(f1(b.sum(0)) - f1(a.sum(0)))
    tolerance = 0.12 * ref.standard_error
    assert abs(ours.low - ref.confidence_interval.low) < tolerance
    assert abs(ours.high - ref.confidence_interval.high) < tolerance
    assert ours.se == pytest.approx(ref.standard_error, rel=0.05)


def _scipy_interval_from(replicates, data, statistic, method, paired=False):
    """scipy's interval computed from *our* bootstrap distribution (its `bootstrap_result` argument)."""
    ref = scipy.stats.bootstrap(
        data, statistic, n_resamples=0, method=method, paired=paired, vectorized=True,
        bootstrap_result=types.SimpleNamespace(bootstrap_distribution=replicates),
    )
    return ref.confidence_interval.low, ref.confidence_interval.high


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_interval_from_the_same_replicates_is_exactly_scipys(method):
    """Given one bootstrap distribution, quantile rule, bias correction and jackknife acceleration (ours from
    sums minus one row, scipy's by recomputing the statistic) must give the same interval."""
    rng = np.random.default_rng(14)
    x = rng.lognormal(0.0, 1.0, size=40)
    ours = bootstrap_ci(_mean_stats(x), ratio_0_1, n_resamples=5000, method=method, seed=1)
    expected = _scipy_interval_from(ours.replicates, (x,), np.mean, method)
    assert (ours.low, ours.high) == pytest.approx(expected, rel=1e-12)

    y = rng.gamma(2.0, 2.0, size=60)
    z = 0.5 * y + rng.exponential(1.0, size=60)
    ours = bootstrap_ci(np.column_stack([z, y]), ratio_0_1, n_resamples=5000, method=method, seed=2)
    expected = _scipy_interval_from(
        ours.replicates, (z, y), lambda a, b, axis: a.sum(axis=axis) / b.sum(axis=axis), method, paired=True
    )
    assert (ours.low, ours.high) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_paired_delta_interval_from_the_same_replicates_is_exactly_scipys(method):
    a, b = _pope_pair(n=300, seed=3)
    ours = paired_bootstrap(a, b, f1, n_resamples=5000, method=method, seed=1)

    def delta_f1(xa, xb, axis):
        return f1(np.moveaxis(xb.sum(axis=axis), 0, -1)) - f1(np.moveaxis(xa.sum(axis=axis), 0, -1))

    expected = _scipy_interval_from(ours.replicates, (a, b), delta_f1, method, paired=True)
    assert (ours.low, ours.high) == pytest.approx(expected, rel=1e-12)


# --- the resampling engine ----------------------------------------------------------------------------


def test_distinct_rows_groups_identical_rows():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [1.0, 0.0]])
    groups = distinct_rows(x)
    assert groups.counts.sum() == len(x)
    np.testing.assert_array_equal(groups.rows[groups.inverse], x)
    assert sorted(groups.counts.tolist()) == [1, 2, 3]
    assert len({tuple(r) for r in groups.rows}) == len(groups.rows)


@pytest.mark.parametrize("strategy", ["multinomial", "indices"])
@pytest.mark.parametrize("kind", ["one_hot", "continuous"])
def test_resampled_sums_have_the_exact_bootstrap_moments(strategy, kind):
    """E[sums] = total and Cov[sums] = n * Cov_pop(rows) for either way of drawing the weights."""
    rng = np.random.default_rng(21)
    n = 300
    if kind == "one_hot":
        x = np.eye(4)[rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])]
    else:
        x = np.column_stack([rng.normal(size=n), rng.exponential(size=n)])
    sums = resampled_sums(x, 40000, np.random.default_rng(3), strategy=strategy)
    centred = x - x.mean(axis=0)
    expected_cov = centred.T @ centred  # n * population covariance
    scale = np.sqrt(np.diag(expected_cov))
    np.testing.assert_allclose(sums.mean(axis=0), x.sum(axis=0), atol=5 * scale.max() / np.sqrt(40000))
    np.testing.assert_allclose(np.cov(sums.T), expected_cov, atol=0.04 * scale.max() ** 2)


def test_resampled_sums_distribution_is_the_same_for_both_strategies():
    rng = np.random.default_rng(22)
    label = rng.random(500) < 0.5
    x = np.hstack([pope_one_hot(label, rng.random(500) < 0.6), pope_one_hot(label, rng.random(500) < 0.55)])
    via_groups = f1(resampled_sums(x, 20000, np.random.default_rng(1), strategy="multinomial")[:, :4])
    via_indices = f1(resampled_sums(x, 20000, np.random.default_rng(2), strategy="indices")[:, :4])
    np.testing.assert_allclose(
        np.quantile(via_groups, [0.025, 0.25, 0.5, 0.75, 0.975]),
        np.quantile(via_indices, [0.025, 0.25, 0.5, 0.75, 0.975]),
        atol=0.06 * via_indices.std(),
    )


@pytest.mark.parametrize("strategy", ["multinomial", "indices"])
def test_sign_flip_shifts_have_the_exact_moments(strategy):
    """Sum of f_u d_u with fair coins f_u: mean sum(d) / 2, covariance sum(d d^T) / 4."""
    rng = np.random.default_rng(23)
    d = rng.integers(-1, 2, size=(200, 2)).astype(float)
    shifts = sign_flip_shifts(d, 40000, np.random.default_rng(4), strategy=strategy)
    expected_cov = d.T @ d / 4
    scale = np.sqrt(np.diag(expected_cov)).max()
    np.testing.assert_allclose(shifts.mean(axis=0), d.sum(axis=0) / 2, atol=5 * scale / np.sqrt(40000))
    np.testing.assert_allclose(np.cov(shifts.T), expected_cov, atol=0.04 * scale**2)


def test_auto_strategy_uses_the_same_distribution_on_continuous_data():
    x = _mean_stats(np.random.default_rng(9).normal(size=400))
    result = bootstrap_ci(x, ratio_0_1, n_resamples=4000, seed=0)
    # SE of a mean is sd / sqrt(n) (population sd for the bootstrap).
    assert result.se == pytest.approx(x[:, 0].std() / np.sqrt(400), rel=0.05)


def test_same_seed_same_result_and_generator_accepted():
    x = _mean_stats(np.random.default_rng(1).normal(size=100))
    first = bootstrap_ci(x, ratio_0_1, n_resamples=500, seed=7)
    second = bootstrap_ci(x, ratio_0_1, n_resamples=500, seed=7)
    third = bootstrap_ci(x, ratio_0_1, n_resamples=500, seed=np.random.default_rng(7))
    assert (first.low, first.high) == (second.low, second.high) == (third.low, third.high)
    assert bootstrap_ci(x, ratio_0_1, n_resamples=500, seed=8).low != first.low


# --- paired comparisons --------------------------------------------------------------------------------


def _pope_pair(n=800, seed=0, acc_a=0.8, acc_b=0.85):
    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.5
    shared = rng.random(n)  # common item difficulty: the two models fail on the same hard items
    a = pope_one_hot(label, np.where(shared < acc_a, label, ~label))
    b = pope_one_hot(label, np.where(shared < acc_b, label, ~label))
    return a, b


def test_paired_delta_is_the_difference_of_separate_estimates():
    a, b = _pope_pair()
    paired = paired_bootstrap(a, b, f1, n_resamples=2000, seed=1)
    alone_a = bootstrap_ci(a, f1, n_resamples=2000, seed=1)
    alone_b = bootstrap_ci(b, f1, n_resamples=2000, seed=1)
    assert paired.a == alone_a.value and paired.b == alone_b.value
    assert paired.delta == pytest.approx(alone_b.value - alone_a.value, abs=1e-15)
    assert paired.a_low < paired.a < paired.a_high and paired.b_low < paired.b < paired.b_high
    assert paired.low < paired.delta < paired.high
    assert alone_a.low < alone_a.value < alone_a.high
    # Sharing the weights: for positively correlated models the paired SE is far below the unpaired one.
    assert paired.se < 0.7 * np.hypot(alone_a.se, alone_b.se)
    assert paired.p_value < 0.001


def test_paired_replicates_use_shared_weights():
    """Identical a and b give delta 0 in every replicate, only possible with shared weights."""
    a, _ = _pope_pair()
    result = paired_bootstrap(a, a.copy(), f1, n_resamples=1000, seed=0)
    assert result.delta == 0 and np.all(result.replicates == 0)
    assert result.low == result.high == 0 and result.p_value == 1.0


def test_p_value_is_the_documented_shift_formula():
    a, b = _pope_pair(n=200, acc_a=0.8, acc_b=0.83, seed=4)
    result = paired_bootstrap(a, b, f1, n_resamples=3000, seed=2)
    r = result.replicates
    expected = (1 + np.count_nonzero(np.abs(r - result.delta) >= abs(result.delta) * (1 - 1e-9))) / (r.size + 1)
    assert result.p_value == pytest.approx(expected)
    assert 0.0 < result.p_value <= 1.0


def test_mismatched_units_raise():
    a, b = _pope_pair()
    with pytest.raises(ValueError, match="800 units.*799"):
        paired_bootstrap(a, b[:-1], f1)
    with pytest.raises(ValueError, match="statistics per unit"):
        paired_bootstrap(a, b[:, :3], f1)
    with pytest.raises(ValueError, match="same units"):
        from csr_bench.stats import paired_permutation_test

        paired_permutation_test(a, b[:-1], f1)


def test_bad_inputs_raise():
    x = _mean_stats(np.arange(5.0))
    with pytest.raises(ValueError, match="shape"):
        bootstrap_ci(np.arange(5.0), ratio_0_1)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci(np.array([[1.0, np.nan]]), ratio_0_1)
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci(x, ratio_0_1, method="basic")
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(x, ratio_0_1, confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(x, ratio_0_1, n_resamples=0)
    with pytest.raises(ValueError, match="metric must map"):
        bootstrap_ci(x, lambda s: s, n_resamples=10)


# --- undefined replicates --------------------------------------------------------------------------------


def test_nan_replicates_are_counted_and_left_out_without_warnings():
    # One unit with a true positive among 10 true negatives: resamples without it have F1 = 0/0.
    stats = np.zeros((10, 4))
    stats[0, 0] = 1
    stats[1:, 3] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = bootstrap_ci(stats, f1, n_resamples=20000, seed=0, method="bca")
        paired = paired_bootstrap(stats, stats, f1, n_resamples=2000, seed=0)
    p_missing = 0.9**10
    assert result.n_nan == np.count_nonzero(np.isnan(result.replicates))
    assert result.n_nan / 20000 == pytest.approx(p_missing, abs=0.015)
    assert result.value == 1.0 and result.low == result.high == 1.0
    assert paired.n_nan > 0 and paired.p_value == 1.0


def test_percentile_interval_uses_only_defined_replicates():
    # 2 TP, 1 FP, 1 FN among 25 units: a resample of only true negatives (probability (21/25)^25) has no F1.
    stats = np.eye(4)[[0, 0, 1, 2] + [3] * 21]
    result = bootstrap_ci(stats, f1, n_resamples=5000, seed=1)
    defined = result.replicates[np.isfinite(result.replicates)]
    assert result.n_nan == 5000 - defined.size > 0
    assert (result.low, result.high) == tuple(np.quantile(defined, [0.025, 0.975]))
    assert result.se == pytest.approx(defined.std(ddof=1))


def test_metric_undefined_everywhere_gives_nan_interval_silently():
    stats = np.zeros((5, 4))
    stats[:, 3] = 1  # only true negatives
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = bootstrap_ci(stats, f1, n_resamples=100, method="bca")
    assert np.isnan(result.value) and np.isnan(result.low) and np.isnan(result.high)
    assert result.n_nan == 100


# --- seeds -------------------------------------------------------------------------------------------------


def test_seed_axis_is_averaged_before_resampling_units():
    rng = np.random.default_rng(12)
    stats = np.stack([_mean_stats(rng.normal(loc=s, size=50)) for s in range(3)])  # (3 seeds, 50 units, 2)
    three_d = bootstrap_ci(stats, ratio_0_1, n_resamples=2000, seed=4)
    averaged = bootstrap_ci(stats.mean(axis=0), ratio_0_1, n_resamples=2000, seed=4)
    assert three_d.n_seeds == 3 and three_d.n_units == 50
    assert (three_d.value, three_d.low, three_d.high) == (averaged.value, averaged.low, averaged.high)


def test_resampling_seeds_adds_the_seed_variance():
    """Units identical within a seed: only seed resampling varies the sums, with var_pop(seed means) / S."""
    seed_values = np.array([0.60, 0.64, 0.70, 0.58])
    stats = np.stack([_mean_stats(np.full(30, v)) for v in seed_values])
    fixed = bootstrap_ci(stats, ratio_0_1, n_resamples=2000, seed=0)
    resampled = bootstrap_ci(stats, ratio_0_1, n_resamples=40000, seed=0, resample_seeds=True)
    assert fixed.se == pytest.approx(0.0, abs=1e-12)
    assert resampled.se == pytest.approx(seed_values.std() / np.sqrt(len(seed_values)), rel=0.03)
    assert resampled.value == pytest.approx(seed_values.mean())


def test_paired_seeds_may_differ_in_number():
    rng = np.random.default_rng(13)
    label = rng.random(300) < 0.5
    a = np.stack([pope_one_hot(label, np.where(rng.random(300) < 0.75, label, ~label)) for _ in range(2)])
    b = np.stack([pope_one_hot(label, np.where(rng.random(300) < 0.85, label, ~label)) for _ in range(5)])
    for resample_seeds in (False, True):
        result = paired_bootstrap(a, b, f1, n_resamples=2000, seed=0, resample_seeds=resample_seeds)
        assert (result.n_seeds_a, result.n_seeds_b, result.n_units) == (2, 5, 300)
        assert result.delta == pytest.approx(f1(b.mean(0).sum(0)) - f1(a.mean(0).sum(0)))
        assert result.low < result.delta < result.high


def test_one_seed_resampled_equals_not_resampled():
    x = _mean_stats(np.random.default_rng(2).normal(size=60))
    plain = bootstrap_ci(x, ratio_0_1, n_resamples=1000, seed=3)
    with_seeds = bootstrap_ci(x[None], ratio_0_1, n_resamples=1000, seed=3, resample_seeds=True)
    np.testing.assert_allclose(with_seeds.replicates, plain.replicates, rtol=1e-12)


# --- clustering --------------------------------------------------------------------------------------------


def _clustered_items(n_units, per_unit, unit_p, rng):
    p = unit_p[:, None] * np.ones((n_units, per_unit))
    correct = (rng.random((n_units, per_unit)) < p).astype(float)
    return correct


def test_unit_resampling_widens_intervals_when_items_within_units_are_correlated():
    rng = np.random.default_rng(31)
    n_units, per_unit = 200, 5
    unit_p = np.where(rng.random(n_units) < 0.5, 0.95, 0.25)  # strongly unit-dependent difficulty
    correct = _clustered_items(n_units, per_unit, unit_p, rng)
    item_level = _mean_stats(correct.ravel())
    unit_level = np.column_stack([correct.sum(axis=1), np.full(n_units, per_unit)])
    by_item = bootstrap_ci(item_level, ratio_0_1, n_resamples=4000, seed=1)
    by_unit = bootstrap_ci(unit_level, ratio_0_1, n_resamples=4000, seed=1)
    assert by_item.value == by_unit.value
    # Design effect 1 + (m - 1) * ICC; here the ICC is about 0.5, so SEs differ by about sqrt(3).
    p_bar = correct.mean()
    icc = unit_p.var() / (p_bar * (1 - p_bar))
    expected_ratio = np.sqrt(1 + (per_unit - 1) * icc)
    width_ratio = (by_unit.high - by_unit.low) / (by_item.high - by_item.low)
    assert width_ratio > 1.4
    assert width_ratio == pytest.approx(expected_ratio, rel=0.15)


def test_unit_resampling_does_not_widen_intervals_of_independent_items():
    rng = np.random.default_rng(32)
    correct = _clustered_items(200, 5, np.full(200, 0.6), rng)
    by_item = bootstrap_ci(_mean_stats(correct.ravel()), ratio_0_1, n_resamples=4000, seed=1)
    by_unit = bootstrap_ci(
        np.column_stack([correct.sum(axis=1), np.full(200, 5)]), ratio_0_1, n_resamples=4000, seed=1
    )
    assert (by_unit.high - by_unit.low) / (by_item.high - by_item.low) == pytest.approx(1.0, abs=0.15)
