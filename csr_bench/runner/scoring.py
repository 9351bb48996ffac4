"""Turn model outputs into samples, unit statistics and metrics (with bootstrap intervals)."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from csr_bench.core.registry import suites
from csr_bench.core.types import Item, RunManifest, Sample
from csr_bench.errors import UserError
from csr_bench.suites.base import Scored, Suite

CI_RESAMPLES = 10_000
CI_CONFIDENCE = 0.95


def suite_for_manifest(manifest: RunManifest) -> Suite:
    cls = suites.get(manifest.suite)
    return cls.for_scoring(dict(manifest.suite_config))


def make_sample(suite: Suite, item: Item, output: str | None) -> Sample:
    return to_sample(suite, item, output, suite.score(item, output))


def to_sample(suite: Suite, item: Item, output: str | None, scored: Scored) -> Sample:
    stats = [float(x) for x in scored.stats]
    if len(stats) != len(suite.stat_names):
        raise RuntimeError(f"suite {suite.name} returned {len(stats)} statistics, declared {len(suite.stat_names)}")
    return Sample(
        item_id=item.id,
        unit=item.unit,
        output=output,
        scores=scored.scores,
        stats=stats,
        details=scored.details,
        prompt_hash=item.prompt_hash(),
    )


def unit_matrix(suite: Suite, samples: Sequence[Sample]) -> tuple[list[str], np.ndarray]:
    by_unit: dict[str, list[list[float]]] = {}
    for s in samples:
        by_unit.setdefault(s.unit, []).append(s.stats)
    k = len(suite.stat_names)
    units = list(by_unit)
    matrix = np.zeros((len(units), k), dtype=float)
    for i, u in enumerate(units):
        matrix[i] = suite.unit_stats(np.asarray(by_unit[u], dtype=float).reshape(-1, k))
    return units, matrix


def summarize(suite: Suite, samples: Sequence[Sample], *, seed: int = 0, n_resamples: int = CI_RESAMPLES) -> dict[str, Any]:
    """metrics.json: point values (null where undefined), bootstrap intervals over units, counts."""
    from csr_bench.stats import bootstrap_ci

    units, matrix = unit_matrix(suite, samples)
    sums = matrix.sum(axis=0)
    metrics: dict[str, float | None] = {}
    intervals: dict[str, dict[str, float | None]] = {}
    notes: list[str] = []
    for m in suite.metrics():
        value = float(m(sums))
        if not np.isfinite(value):
            metrics[m.name] = None
            intervals[m.name] = {"low": None, "high": None}
            notes.append(f"{m.name} is undefined on these outputs (division by zero); reported as null")
            continue
        metrics[m.name] = value
        if len(units) < 2:
            intervals[m.name] = {"low": None, "high": None}
            continue
        ci = bootstrap_ci(matrix, m, n_resamples=n_resamples, confidence=CI_CONFIDENCE, seed=seed)
        intervals[m.name] = {"low": _finite_or_none(ci.low), "high": _finite_or_none(ci.high)}
    return {
        "suite": suite.name,
        "n_items": len(samples),
        "n_units": len(units),
        "metrics": metrics,
        "intervals": {"confidence": CI_CONFIDENCE, "n_resamples": n_resamples, "method": "percentile", "unit": "resampling unit", "values": intervals},
        "sums": dict(zip(suite.stat_names, (float(x) for x in sums))),
        "notes": notes,
    }


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def score_pairs(suite: Suite, pairs: Iterable[tuple[Item, str | None]]) -> list[Sample]:
    """Samples of (item, output) pairs, in order. Suites that score groups together (MMBench's circular
    rotations, which ask a judge only where the official code does) provide `score_predictions`."""
    pairs = list(pairs)
    seen: set[str] = set()
    for item, _ in pairs:
        if item.id in seen:
            raise UserError(f"item id '{item.id}' appears twice")
        seen.add(item.id)
    score_all = getattr(suite, "score_predictions", None)
    scored = score_all(pairs) if score_all is not None else [suite.score(item, output) for item, output in pairs]
    return [to_sample(suite, item, output, s) for (item, output), s in zip(pairs, scored)]


def offline_manifest(
    suite: Suite, *, model_name: str, n_items: int, predictions_file: str, seed: int = 0, task: str = ""
) -> RunManifest:
    from csr_bench.runner.store import package_versions

    return RunManifest(
        suite=suite.name,
        suite_config=suite.config_dict(),
        model={"name": model_name, "source": "predictions", "predictions": predictions_file, "fingerprint": model_name},
        seed=seed,
        stat_names=list(suite.stat_names),
        data_fingerprint=suite.data_fingerprint(),
        n_items=n_items,
        config={"mode": "score"},
        task=task or suite.name,
        versions=package_versions(("csr-bench", "numpy")),
    )
