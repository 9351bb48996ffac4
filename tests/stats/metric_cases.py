"""Metrics and data builders shared by the statistics tests (imported as a plain module)."""

from __future__ import annotations

import numpy as np

TP, FP, FN, TN = range(4)


def f1(sums: np.ndarray) -> np.ndarray:
    """F1 from columns (TP, FP, FN, TN); NaN where there is no positive label and no positive prediction."""
    tp, fp, fn = sums[..., TP], sums[..., FP], sums[..., FN]
    denominator = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def ratio_0_1(sums: np.ndarray) -> np.ndarray:
    """Column 0 over column 1: accuracy from (correct, count), a mean from (value, 1), or any ratio."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return sums[..., 0] / sums[..., 1]


def pope_one_hot(label_yes: np.ndarray, says_yes: np.ndarray) -> np.ndarray:
    """Per-item one-hot (TP, FP, FN, TN) rows from labels and answers (any leading shape)."""
    outcome = np.where(says_yes, np.where(label_yes, TP, FP), np.where(label_yes, FN, TN))
    return np.eye(4)[outcome]
