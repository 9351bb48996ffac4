"""Frequentist behaviour with a known truth: interval coverage and false-positive rates.

Items are drawn from a known joint distribution over (label, answer of a, answer of b); the true metric values
come from the population probabilities. Each simulation is one benchmark of N_ITEMS items.
"""

from __future__ import annotations

import numpy as np
import pytest

from csr_bench.stats import paired_bootstrap, paired_permutation_test
from tests.stats.metric_cases import f1, pope_one_hot, ratio_0_1

N_SIMULATIONS = 2000
N_RESAMPLES = 1000
N_ITEMS = 1000
# Monte-Carlo standard error of a rate near 5% over N_SIMULATIONS simulations.
RATE_SE = np.sqrt(0.05 * 0.95 / N_SIMULATIONS)


def _joint_pope(p_yes, correct_yes, correct_no):
    """Probabilities of the 8 cells (label, a says yes, b says yes).

    correct_*: for that label, probabilities of (both right, only a right, only b right, both wrong).
    """
    cells = {}
    for label, share, (both, only_a, only_b, neither) in ((1, p_yes, correct_yes), (0, 1 - p_yes, correct_no)):
        right, wrong = label, 1 - label
        cells[(label, right, right)] = share * both
        cells[(label, right, wrong)] = share * only_a
        cells[(label, wrong, right)] = share * only_b
        cells[(label, wrong, wrong)] = share * neither
    keys = sorted(cells)
    return np.array(keys), np.array([cells[k] for k in keys])


def _population_f1(keys, probabilities, model):
    label, says = keys[:, 0] == 1, keys[:, 1 + model] == 1
    expected = probabilities @ pope_one_hot(label, says)
    return float(f1(expected))


def _pope_benchmarks(keys, probabilities, rng):
    """Yield N_SIMULATIONS benchmarks: per-item one-hot statistics of a and b."""
    for _ in range(N_SIMULATIONS):
        cells = keys[rng.choice(len(keys), size=N_ITEMS, p=probabilities)]
        label, a_yes, b_yes = (cells[:, i] == 1 for i in range(3))
        yield pope_one_hot(label, a_yes), pope_one_hot(label, b_yes)


def _accuracy_benchmarks(p_both, p_only_a, p_only_b, rng):
    """Yield N_SIMULATIONS benchmarks: per-item (correct, 1) statistics of a and b."""
    ones = np.ones(N_ITEMS)
    for _ in range(N_SIMULATIONS):
        cell = rng.choice(4, size=N_ITEMS, p=[p_both, p_only_a, p_only_b, 1 - p_both - p_only_a - p_only_b])
        correct_a = ((cell == 0) | (cell == 1)).astype(float)
        correct_b = ((cell == 0) | (cell == 2)).astype(float)
        yield np.column_stack([correct_a, ones]), np.column_stack([correct_b, ones])


def _coverage(benchmarks, metric, truth):
    covered = 0
    for i, (a, b) in enumerate(benchmarks):
        r = paired_bootstrap(a, b, metric, n_resamples=N_RESAMPLES, seed=i)
        covered += r.low <= truth <= r.high
    return covered / N_SIMULATIONS


def test_f1_difference_interval_covers_the_truth_95_percent_of_the_time():
    keys, probabilities = _joint_pope(
        p_yes=0.5, correct_yes=(0.70, 0.06, 0.12, 0.12), correct_no=(0.80, 0.08, 0.05, 0.07)
    )
    truth = _population_f1(keys, probabilities, 1) - _population_f1(keys, probabilities, 0)
    assert truth > 0.02  # a real difference, not the trivial null
    coverage = _coverage(_pope_benchmarks(keys, probabilities, np.random.default_rng(101)), f1, truth)
    assert 0.93 <= coverage <= 0.97, coverage


def test_accuracy_difference_interval_covers_the_truth_95_percent_of_the_time():
    p_both, p_only_a, p_only_b = 0.62, 0.08, 0.13
    truth = p_only_b - p_only_a
    benchmarks = _accuracy_benchmarks(p_both, p_only_a, p_only_b, np.random.default_rng(102))
    coverage = _coverage(benchmarks, ratio_0_1, truth)
    assert 0.93 <= coverage <= 0.97, coverage


def test_a_a_comparison_has_at_most_5_percent_false_positives():
    # a and b exchangeable: same marginal accuracy, symmetric disagreement.
    keys, probabilities = _joint_pope(
        p_yes=0.5, correct_yes=(0.70, 0.09, 0.09, 0.12), correct_no=(0.78, 0.07, 0.07, 0.08)
    )
    assert _population_f1(keys, probabilities, 0) == pytest.approx(_population_f1(keys, probabilities, 1))
    p_bootstrap = np.empty(N_SIMULATIONS)
    p_permutation = np.empty(N_SIMULATIONS)
    interval_excludes_zero = 0
    for i, (a, b) in enumerate(_pope_benchmarks(keys, probabilities, np.random.default_rng(103))):
        r = paired_bootstrap(a, b, f1, n_resamples=N_RESAMPLES, seed=i)
        p_bootstrap[i] = r.p_value
        interval_excludes_zero += not (r.low <= 0 <= r.high)
        p_permutation[i] = paired_permutation_test(a, b, f1, n_permutations=N_RESAMPLES, seed=i).p_value
    # At most 5%, up to the Monte-Carlo error of the simulation itself (2 standard errors, about 1 point).
    assert np.mean(p_bootstrap < 0.05) <= 0.05 + 2 * RATE_SE
    assert interval_excludes_zero / N_SIMULATIONS <= 0.05 + 2 * RATE_SE
    assert np.mean(p_permutation < 0.05) <= 0.05 + 2 * RATE_SE
    # ...and not wildly conservative either: the tests keep their size.
    assert np.mean(p_bootstrap < 0.05) >= 0.05 - 3 * RATE_SE
    assert np.mean(p_permutation < 0.05) >= 0.05 - 3 * RATE_SE
