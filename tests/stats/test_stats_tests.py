"""McNemar, the paired permutation test, multiple-comparison corrections, Wilson, power, normal helpers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats

from csr_bench.stats import (
    benjamini_hochberg,
    holm,
    mcnemar_exact,
    minimum_detectable_effect,
    normal_cdf,
    normal_ppf,
    paired_bootstrap,
    paired_permutation_test,
    units_needed,
    wilson_interval,
)
from tests.stats.metric_cases import f1, pope_one_hot, ratio_0_1


def _paired_outcomes(b, c, both_right=7, both_wrong=3):
    """Per-item correctness of a and b with b items only a got right and c items only b got right."""
    correct_a = np.array([1] * b + [0] * c + [1] * both_right + [0] * both_wrong)
    correct_b = np.array([0] * b + [1] * c + [1] * both_right + [0] * both_wrong)
    order = np.random.default_rng(b * 1000 + c).permutation(len(correct_a))
    return correct_a[order], correct_b[order]


# --- McNemar -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "b, c",
    list(itertools.product(range(0, 26), range(0, 26)))
    + [(100, 130), (500, 560), (2000, 2100), (3, 400), (0, 1000), (9000, 9301), (40000, 40450)],
)
def test_mcnemar_agrees_with_scipy_binomtest(b, c):
    result = mcnemar_exact(*_paired_outcomes(b, c))
    assert (result.b, result.c, result.n_discordant) == (b, c, b + c)
    if b + c == 0:
        assert result.p_value == 1.0
    else:
        assert result.p_value == pytest.approx(scipy.stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9, abs=1e-300)


def test_mcnemar_accepts_booleans_and_rejects_bad_input():
    a, b = _paired_outcomes(4, 9)
    assert mcnemar_exact(a.astype(bool), b.astype(bool)) == mcnemar_exact(a, b)
    with pytest.raises(ValueError, match="same length"):
        mcnemar_exact(a, b[:-1])
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_exact(a * 2, b)


# --- paired permutation test ---------------------------------------------------------------------------------


def test_permutation_test_on_accuracy_is_the_exact_mcnemar_test():
    """Swapping a and b within items flips discordant pairs: the null of delta is the exact binomial one."""
    correct_a, correct_b = _paired_outcomes(14, 29, both_right=150, both_wrong=40)
    ones = np.ones(len(correct_a))
    result = paired_permutation_test(
        np.column_stack([correct_a, ones]), np.column_stack([correct_b, ones]), ratio_0_1,
        n_permutations=40000, seed=3,
    )
    exact = mcnemar_exact(correct_a, correct_b).p_value
    assert result.delta == pytest.approx((29 - 14) / len(correct_a))
    assert result.p_value == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 40000))


def test_permutation_test_works_for_f1_and_its_null_is_symmetric():
    rng = np.random.default_rng(4)
    label = rng.random(400) < 0.5
    a = pope_one_hot(label, np.where(rng.random(400) < 0.75, label, ~label))
    b = pope_one_hot(label, np.where(rng.random(400) < 0.88, label, ~label))
    result = paired_permutation_test(a, b, f1, n_permutations=5000, seed=1)
    assert result.delta == pytest.approx(f1(b.sum(0)) - f1(a.sum(0)))
    assert result.p_value < 0.001
    null = result.null_deltas
    assert abs(null.mean()) < 4 * null.std() / np.sqrt(null.size)
    # Same data, no difference: identical a and b give every permuted delta 0 and p = 1.
    same = paired_permutation_test(a, a.copy(), f1, n_permutations=200, seed=1)
    assert same.delta == 0 and same.p_value == 1.0


def test_permutation_p_value_is_the_documented_formula_and_deterministic():
    rng = np.random.default_rng(5)
    a = np.column_stack([rng.random(300) < 0.7, np.ones(300)]).astype(float)
    b = np.column_stack([rng.random(300) < 0.74, np.ones(300)]).astype(float)
    first = paired_permutation_test(a, b, ratio_0_1, n_permutations=3000, seed=9)
    again = paired_permutation_test(a, b, ratio_0_1, n_permutations=3000, seed=9)
    extreme = np.count_nonzero(np.abs(first.null_deltas) >= abs(first.delta) * (1 - 1e-9))
    assert first.p_value == pytest.approx((1 + extreme) / 3001)
    assert first.p_value == again.p_value


def test_permutation_and_bootstrap_agree_roughly():
    rng = np.random.default_rng(6)
    a = np.column_stack([rng.random(500) < 0.70, np.ones(500)]).astype(float)
    b = np.column_stack([np.where(rng.random(500) < 0.9, a[:, 0], 1 - a[:, 0]), np.ones(500)])
    perm = paired_permutation_test(a, b, ratio_0_1, n_permutations=20000, seed=0)
    boot = paired_bootstrap(a, b, ratio_0_1, n_resamples=20000, seed=0)
    assert perm.delta == boot.delta
    assert perm.p_value == pytest.approx(boot.p_value, abs=0.05)


# --- Holm and Benjamini-Hochberg ---------------------------------------------------------------------------


def test_holm_and_bh_on_a_hand_computed_case():
    # Sorted: 0.005, 0.01, 0.03, 0.04 (m = 4).
    # Holm:  4*0.005=0.02, 3*0.01=0.03, 2*0.03=0.06, max(0.06, 1*0.04)=0.06.
    # BH:    0.005*4/1=0.02, 0.01*4/2=0.02, 0.03*4/3=0.04, 0.04*4/4=0.04; running minimum from the top.
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])


def test_corrections_pass_nan_through_and_do_not_count_it():
    p = [0.01, np.nan, 0.04, 0.03, 0.005, np.nan]
    np.testing.assert_allclose(holm(p), [0.03, np.nan, 0.06, 0.06, 0.02, np.nan])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, np.nan, 0.04, 0.04, 0.02, np.nan])
    assert np.all(np.isnan(holm([np.nan, np.nan])))
    assert holm([]).shape == (0,) and benjamini_hochberg([]).shape == (0,)


def test_adjusted_values_are_capped_at_one_and_keep_ties():
    np.testing.assert_allclose(holm([0.5, 0.5, 0.9]), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(benjamini_hochberg([0.5, 0.5, 0.9]), [0.75, 0.75, 0.9])
    np.testing.assert_allclose(holm([0.01, 0.01]), [0.02, 0.02])


def _holm_rejections(p, alpha):
    """Textbook Holm: step down, reject while p_(j) <= alpha / (m - j + 1)."""
    order = np.argsort(p)
    reject = np.zeros(len(p), bool)
    for j, i in enumerate(order):
        if p[i] > alpha / (len(p) - j):
            break
        reject[i] = True
    return reject


def _bh_rejections(p, alpha):
    """Textbook BH: find the largest k with p_(k) <= k alpha / m and reject the k smallest."""
    order = np.argsort(p)
    m = len(p)
    passing = [k for k in range(1, m + 1) if p[order[k - 1]] <= k * alpha / m]
    reject = np.zeros(m, bool)
    if passing:
        reject[order[: max(passing)]] = True
    return reject


def test_adjusted_p_values_reproduce_the_textbook_rejections_at_every_level():
    rng = np.random.default_rng(7)
    for _ in range(50):
        m = int(rng.integers(1, 25))
        p = np.concatenate([rng.random(m) * rng.choice([1.0, 0.05, 0.01]), rng.random(3)])
        for alpha in (0.001, 0.01, 0.05, 0.1, 0.2):
            np.testing.assert_array_equal(holm(p) <= alpha, _holm_rejections(p, alpha))
            np.testing.assert_array_equal(benjamini_hochberg(p) <= alpha, _bh_rejections(p, alpha))


def test_corrections_reject_out_of_range_p_values():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.5])
    with pytest.raises(ValueError, match="1-D"):
        benjamini_hochberg([[0.1, 0.2]])


# --- Wilson ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("successes, n", [(0, 10), (1, 10), (5, 10), (10, 10), (81, 263), (3, 1000), (999, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_interval(successes, n, confidence):
    low, high = wilson_interval(successes, n, confidence)
    z = scipy.stats.norm.ppf(0.5 + confidence / 2)
    p_hat = successes / n
    # The endpoints are where the score statistic equals z: (p_hat - p)^2 = z^2 p (1 - p) / n.
    for p in (low, high):
        if 0 < p < 1 or p_hat not in (0.0, 1.0):
            assert (p_hat - p) ** 2 == pytest.approx(z**2 * p * (1 - p) / n, rel=1e-9, abs=1e-15)
    assert low <= p_hat <= high
    ref = scipy.stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert (low, high) == pytest.approx((ref.low, ref.high), rel=1e-9, abs=1e-12)


def test_wilson_closed_forms_at_the_edges():
    z2 = scipy.stats.norm.ppf(0.975) ** 2
    assert wilson_interval(0, 20) == pytest.approx((0.0, z2 / (20 + z2)))
    assert wilson_interval(20, 20) == pytest.approx((20 / (20 + z2), 1.0))
    low, high = wilson_interval(7, 30)
    mirror_low, mirror_high = wilson_interval(23, 30)
    assert (low, high) == pytest.approx((1 - mirror_high, 1 - mirror_low))
    assert all(np.isnan(wilson_interval(0, 0)))
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


# --- power and the normal helpers --------------------------------------------------------------------------


def test_minimum_detectable_effect_formula():
    se = 0.013
    expected = (scipy.stats.norm.ppf(0.975) + scipy.stats.norm.ppf(0.8)) * se
    assert minimum_detectable_effect(se) == pytest.approx(expected, rel=1e-12)
    assert minimum_detectable_effect(1.0) == pytest.approx(2.8016, abs=1e-4)
    assert minimum_detectable_effect(se, alpha=0.01, power=0.9) == pytest.approx(
        (scipy.stats.norm.ppf(0.995) + scipy.stats.norm.ppf(0.9)) * se, rel=1e-12
    )


def test_minimum_detectable_effect_has_the_stated_power():
    """A two-sided z-test at level alpha detects a true effect equal to the MDE with probability `power`."""
    se = 0.02
    for alpha, power in ((0.05, 0.8), (0.01, 0.9), (0.1, 0.5)):
        mde = minimum_detectable_effect(se, alpha=alpha, power=power)
        z = scipy.stats.norm.ppf(1 - alpha / 2)
        achieved = scipy.stats.norm.sf(z - mde / se) + scipy.stats.norm.cdf(-z - mde / se)
        assert achieved == pytest.approx(power, abs=1e-3)


def test_units_needed_scales_with_the_square_of_the_ratio():
    se, n = 0.02, 500
    mde = minimum_detectable_effect(se)
    assert units_needed(mde, se, n) == n
    assert units_needed(mde / 2, se, n) == 4 * n
    with pytest.raises(ValueError):
        units_needed(0.0, se, n)


def test_minimum_detectable_effect_rejects_bad_levels():
    with pytest.raises(ValueError, match="alpha"):
        minimum_detectable_effect(0.1, alpha=1.5)
    with pytest.raises(ValueError, match="power"):
        minimum_detectable_effect(0.1, power=1.0)


def test_normal_helpers_match_scipy():
    for x in (-6.0, -1.96, -0.3, 0.0, 0.7, 2.5):
        assert normal_cdf(x) == pytest.approx(scipy.stats.norm.cdf(x), rel=1e-12, abs=1e-15)
    for q in (1e-8, 0.025, 0.2, 0.5, 0.8, 0.975, 1 - 1e-8):
        assert normal_ppf(q) == pytest.approx(scipy.stats.norm.ppf(q), rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError):
        normal_ppf(1.0)
