"""Multiple-comparison corrections: Holm (family-wise error) and Benjamini-Hochberg (false discovery rate).

Both return adjusted p-values in the input order, equal to statsmodels' `multipletests(method="holm")` and
`multipletests(method="fdr_bh")`. NaN entries (tests that could not be computed) stay NaN and do not count
towards the number of tests m.
"""

from __future__ import annotations

import numpy as np


def _split(p_values: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p_values must be a 1-D sequence, got shape {p.shape}")
    defined = ~np.isnan(p)
    values = p[defined]
    if np.any((values < 0) | (values > 1)):
        raise ValueError("p_values must lie in [0, 1] (NaN for a missing test)")
    return p, defined, values


def holm(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Holm step-down adjusted p-values: the i-th smallest becomes max_{j<=i} min(1, (m - j + 1) p_(j))."""
    p, defined, values = _split(p_values)
    out = np.full(p.shape, np.nan)
    m = values.size
    if m == 0:
        return out
    order = np.argsort(values, kind="stable")
    scaled = (m - np.arange(m)) * values[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    result = np.empty(m)
    result[order] = adjusted
    out[defined] = result
    return out


def benjamini_hochberg(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values: the i-th smallest becomes min_{j>=i} min(1, m p_(j) / j)."""
    p, defined, values = _split(p_values)
    out = np.full(p.shape, np.nan)
    m = values.size
    if m == 0:
        return out
    order = np.argsort(values, kind="stable")
    scaled = values[order] / (np.arange(1, m + 1) / m)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    result = np.empty(m)
    result[order] = adjusted
    out[defined] = result
    return out
