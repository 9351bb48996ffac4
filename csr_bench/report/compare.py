"""Paired comparison of runs over the same units, across seeds, with Holm-adjusted p-values."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from csr_bench.errors import UserError
from csr_bench.runner.store import Run
from csr_bench.suites.base import Metric, Suite

ALPHA = 0.05
# Suite settings that name which official scorer a number follows; shown next to the task in reports.
VARIANT_KEYS = ("variant", "parser", "matcher", "prompt", "judge")


@dataclass
class RunGroup:
    """Runs of one model on one suite (same scorer configuration), one per seed, aligned on units."""

    label: str
    suite_name: str  # the task label (suite name, or e.g. "pope_adversarial")
    suite_config: dict[str, Any]
    runs: list[Run]
    units: list[str] = field(default_factory=list)
    stats: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # (n_seeds, n_units, k)
    suite: Suite | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.suite_name, json.dumps(self.suite_config, sort_keys=True)

    @property
    def n_seeds(self) -> int:
        return len(self.runs)

    @property
    def n_items(self) -> int:
        return len(self.runs[0].samples)

    @property
    def variant(self) -> str:
        """The scorer choice a reader needs to see (full settings stay in the manifests)."""
        shown = [(k, v) for k, v in sorted(self.suite_config.items()) if k in VARIANT_KEYS and isinstance(v, (str, int))]
        return ", ".join(f"{k}={v}" for k, v in shown)

    def aligned(self, units: Sequence[str]) -> np.ndarray:
        index = {u: i for i, u in enumerate(self.units)}
        return self.stats[:, [index[u] for u in units], :]


def group_runs(runs: Sequence[Run]) -> list[RunGroup]:
    groups: dict[tuple[str, str, str], RunGroup] = {}
    for run in runs:
        m = run.manifest
        key = (run.label, m.task_name, json.dumps(m.suite_config, sort_keys=True))
        g = groups.get(key)
        if g is None:
            g = groups[key] = RunGroup(run.label, m.task_name, dict(m.suite_config), [])
        elif g.runs[0].manifest.data_fingerprint != m.data_fingerprint:
            raise UserError(f"{run.path} and {g.runs[0].path}: runs of '{run.label}' on {m.task_name} read different data")
        if any(r.manifest.seed == m.seed for r in g.runs):
            other = next(r for r in g.runs if r.manifest.seed == m.seed)
            raise UserError(f"{run.path} and {other.path}: two runs of model '{run.label}' on {m.suite} with the same seed {m.seed}")
        g.runs.append(run)
    for g in groups.values():
        g.runs.sort(key=lambda r: r.manifest.seed)
        g.suite = g.runs[0].suite_object()
        first_units, first = g.runs[0].unit_matrix()
        mats = [first]
        for r in g.runs[1:]:
            units, mat = r.unit_matrix()
            if set(units) != set(first_units):
                raise UserError(f"{r.path} and {g.runs[0].path}: seeds of '{g.label}' on {g.suite_name} cover different units")
            index = {u: i for i, u in enumerate(units)}
            mats.append(mat[[index[u] for u in first_units]])
        g.units = first_units
        g.stats = np.stack(mats)
    return list(groups.values())


def check_same_units(base: RunGroup, cand: RunGroup) -> None:
    a, b = set(base.units), set(cand.units)
    if a != b:
        only_a, only_b = sorted(a - b)[:3], sorted(b - a)[:3]
        raise UserError(
            f"{base.runs[0].path} and {cand.runs[0].path}: runs cover different units "
            f"({len(a)} vs {len(b)}; only in baseline: {only_a}, only in candidate: {only_b})"
        )


def compare_groups(
    base: RunGroup,
    cand: RunGroup,
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    metrics: Sequence[Metric] | None = None,
    resample_seeds: bool | None = None,
) -> list[dict[str, Any]]:
    """One row per metric: values, delta (candidate - baseline), its interval and raw p-value."""
    from csr_bench.stats import minimum_detectable_effect, paired_bootstrap

    if base.key != cand.key:
        raise UserError(
            f"{base.runs[0].path} and {cand.runs[0].path}: different suites or scorer settings "
            f"({base.suite_name}: {base.variant or 'default'} vs {cand.suite_name}: {cand.variant or 'default'})"
        )
    if base.runs[0].manifest.data_fingerprint != cand.runs[0].manifest.data_fingerprint:
        raise UserError(f"{base.runs[0].path} and {cand.runs[0].path}: runs of {base.suite_name} read different data files")
    check_same_units(base, cand)
    units = base.units
    a = base.aligned(units)
    b = cand.aligned(units)
    if resample_seeds is None:
        resample_seeds = max(base.n_seeds, cand.n_seeds) > 1
    rows = []
    for m in metrics if metrics is not None else base.suite.metrics():
        r = paired_bootstrap(
            _squeeze(a), _squeeze(b), m, n_resamples=n_resamples, seed=seed, resample_seeds=resample_seeds
        )
        rows.append(
            {
                "suite": base.suite_name,
                "metric": m.name,
                "baseline": _num(r.a),
                "candidate": _num(r.b),
                "delta": _num(r.delta),
                "low": _num(r.low),
                "high": _num(r.high),
                "p_value": _num(r.p_value),
                "p_adjusted": None,
                "significant": None,
                "n_units": len(units),
                "mde": _num(minimum_detectable_effect(r.se)) if np.isfinite(r.se) else None,
                "higher_is_better": m.higher_is_better,
            }
        )
    return rows


def adjust(rows: list[dict[str, Any]], alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Holm across every row with a p-value (the family is the whole comparison)."""
    from csr_bench.stats import holm

    p = np.array([np.nan if r["p_value"] is None else r["p_value"] for r in rows], dtype=float)
    adjusted = holm(p) if len(p) else p
    for r, q in zip(rows, adjusted):
        r["p_adjusted"] = _num(q)
        r["significant"] = None if r["p_adjusted"] is None else bool(r["p_adjusted"] < alpha)
    return rows


def compare_runs(
    baseline: Sequence[Run], candidate: Sequence[Run], *, n_resamples: int = 10_000, seed: int = 0
) -> list[dict[str, Any]]:
    """Compare every suite present on both sides; each side may hold several seeds of one model."""
    base_groups = {g.key: g for g in _one_model(group_runs(baseline), "baseline")}
    cand_groups = {g.key: g for g in _one_model(group_runs(candidate), "candidate")}
    common = [k for k in base_groups if k in cand_groups]
    if not common:
        raise UserError(
            "baseline and candidate share no suite with the same scorer settings "
            f"(baseline: {sorted(k[0] for k in base_groups)}, candidate: {sorted(k[0] for k in cand_groups)})"
        )
    rows: list[dict[str, Any]] = []
    for k in common:
        rows += compare_groups(base_groups[k], cand_groups[k], n_resamples=n_resamples, seed=seed)
    return adjust(rows)


def _one_model(groups: list[RunGroup], side: str) -> list[RunGroup]:
    labels = sorted({g.label for g in groups})
    if len(labels) > 1:
        raise UserError(f"the {side} holds runs of several models ({', '.join(labels)}); give one model per side")
    keys = [g.key for g in groups]
    if len(keys) != len(set(keys)):
        raise UserError(f"the {side} holds two groups of runs of the same suite")
    return groups


def _squeeze(x: np.ndarray) -> np.ndarray:
    return x[0] if x.shape[0] == 1 else x


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None
