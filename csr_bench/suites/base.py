"""The Suite contract.

A suite turns its official files into `Item`s, scores one model output into a `Scored` (per-item scores,
the item's contribution to its unit's statistics vector, and details), and declares its metrics as functions
of the column sums of per-unit statistics (see ../shared/DESIGN.md, "Metrics as sums of per-unit statistics").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

MetricFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """A metric as a function of summed statistics.

    `fn` maps an array of column sums of shape (..., k) to values of shape (...); it is called once on all
    bootstrap resamples at the same time. Division by zero must give NaN (reported as null), never raise.
    """

    name: str
    fn: MetricFn
    higher_is_better: bool | None = True  # None: no better direction (e.g. POPE's yes_ratio, ideal 0.5)
    description: str = ""

    def __call__(self, sums: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(self.fn(np.asarray(sums, dtype=float)), dtype=float)


@dataclass
class Scored:
    scores: dict[str, Any]
    stats: list[float]
    details: dict[str, Any] = field(default_factory=dict)


def ratio(num: int | Sequence[int], den: int | Sequence[int], scale: float = 1.0) -> MetricFn:
    """Metric fn: scale * sum(columns num) / sum(columns den); NaN where the denominator is 0."""
    num_idx = [num] if isinstance(num, int) else list(num)
    den_idx = [den] if isinstance(den, int) else list(den)

    def fn(s: np.ndarray) -> np.ndarray:
        n = s[..., num_idx].sum(axis=-1)
        d = s[..., den_idx].sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d != 0, scale * n / np.where(d != 0, d, 1), np.nan)

    return fn


def group_ratios(stat_names: Sequence[str], groups: Sequence[str], value: str, count: str, *, name: str,
                 description: str, scale: float = 100.0) -> list["Metric"]:
    """One ratio metric per group: column f"{value}_{group}" over f"{count}_{group}" of `stat_names`, found by
    name. `name` and `description` are formatted with the group (e.g. "acc_{}")."""
    return [Metric(name.format(g), ratio(stat_names.index(f"{value}_{g}"), stat_names.index(f"{count}_{g}"), scale),
                   description=description.format(g))
            for g in groups]


class Suite:
    """Base class of every suite. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    stat_names: ClassVar[tuple[str, ...]] = ()
    # Metrics shown in leaderboards (None: all); compare and metrics.json always carry every metric.
    headline: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def for_scoring(cls, config: dict[str, Any]) -> "Suite":
        """An instance that computes metrics and unit statistics of stored samples without the data files.

        The default sets the manifest's `suite_config` entries as attributes; suites whose metrics depend on
        more than that override it.
        """
        obj = cls.__new__(cls)
        for key, value in config.items():
            setattr(obj, key, value)
        return obj

    def config_dict(self) -> dict[str, Any]:
        """The options that change scores; recorded in the manifest and checked on resume."""
        return {}

    def metrics(self) -> list[Metric]:
        raise NotImplementedError

    def data_fingerprint(self) -> str:
        """A hash of the data files, recorded in the manifest and checked on resume."""
        return ""

    def items(self) -> Iterable[Any]:
        raise NotImplementedError

    def score(self, item: Any, output: str | None) -> Scored:
        raise NotImplementedError

    def unit_stats(self, item_stats: np.ndarray) -> np.ndarray:
        """Statistics of one unit from its items' rows (n_items, k). Sum unless a metric needs more."""
        return item_stats.sum(axis=0)

    def headline_metrics(self) -> list[Metric]:
        ms = self.metrics()
        if self.headline is None:
            return ms
        return [m for m in ms if m.name in self.headline]

    def metric_values(self, sums: np.ndarray) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for m in self.metrics():
            v = float(m(sums))
            out[m.name] = None if not np.isfinite(v) else v
        return out
