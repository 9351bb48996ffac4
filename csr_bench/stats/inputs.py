"""Validation of the inputs shared by the bootstrap and the tests: statistics arrays, metrics, options."""

from __future__ import annotations

from typing import Callable

import numpy as np

MetricFn = Callable[[np.ndarray], np.ndarray]


def as_seed_unit_stats(stats: np.ndarray, name: str = "stats") -> np.ndarray:
    """Statistics as a float array of shape (n_seeds, n_units, k); a 2-D (n_units, k) input is one seed."""
    arr = np.asarray(stats, dtype=float)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must have shape (n_units, k) or (n_seeds, n_units, k), got shape {arr.shape}; "
            "a single statistic per unit needs shape (n_units, 1)"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"{name} must have at least one seed, one unit and one statistic, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; per-unit statistics must be finite")
    return arr


def evaluate_metric(metric: MetricFn, sums: np.ndarray) -> np.ndarray:
    """metric(sums) as floats of shape sums.shape[:-1]; division by zero gives NaN silently."""
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(metric(sums), dtype=float)
    expected = sums.shape[:-1]
    if values.shape != expected:
        if values.size == int(np.prod(expected)):
            return values.reshape(expected)
        raise ValueError(
            f"metric must map column sums of shape {sums.shape} to values of shape {expected}, "
            f"got shape {values.shape}"
        )
    return values


def check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return confidence


def check_count(value: int, name: str) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
