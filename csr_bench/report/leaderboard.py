"""Leaderboard markdown (tables built with pandas) and a forest plot of deltas against a baseline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from csr_bench.core.files import atomic_write_text
from csr_bench.errors import UserError
from csr_bench.report.compare import ALPHA, adjust, compare_groups, group_runs
from csr_bench.runner.store import Run


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def _fmt_signed(x: float | None, digits: int = 3) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x:+.1f}" if abs(x) >= 100 else f"{x:+.{digits}f}"


def build_leaderboard(
    runs: Sequence[Run],
    *,
    baseline: str | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    title: str = "Leaderboard",
) -> dict[str, Any]:
    """Values with intervals per (model, suite), and deltas of every model against the baseline."""
    from csr_bench.stats import bootstrap_ci

    groups = group_runs(runs)
    labels = list(dict.fromkeys(g.label for g in groups))
    if baseline is None:
        baseline = labels[0]
    elif baseline not in labels:
        raise UserError(f"baseline model '{baseline}' not among the runs (models: {', '.join(labels)})")

    values: list[dict[str, Any]] = []
    for g in groups:
        for m in g.suite.headline_metrics():
            stats = g.stats[0] if g.n_seeds == 1 else g.stats
            ci = bootstrap_ci(stats, m, n_resamples=n_resamples, seed=seed, resample_seeds=g.n_seeds > 1)
            values.append(
                {"model": g.label, "suite": g.suite_name, "variant": g.variant, "metric": m.name,
                 "value": _clean(ci.value), "low": _clean(ci.low), "high": _clean(ci.high),
                 "n": g.n_items, "n_units": len(g.units), "seeds": g.n_seeds}
            )

    deltas: list[dict[str, Any]] = []
    base_groups = {g.key: g for g in groups if g.label == baseline}
    for label in labels:
        if label == baseline:
            continue
        rows: list[dict[str, Any]] = []
        for g in groups:
            if g.label != label or g.key not in base_groups:
                continue
            base = base_groups[g.key]
            for r in compare_groups(base, g, n_resamples=n_resamples, seed=seed, metrics=base.suite.headline_metrics()):
                rows.append({"model": label, "variant": g.variant, **r})
        deltas += adjust(rows)  # Holm across all metrics of this model against the baseline
    return {"title": title, "baseline": baseline, "models": labels, "values": values, "deltas": deltas,
            "n_resamples": n_resamples, "seed": seed}


def _clean(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def render_markdown(board: dict[str, Any], plot_name: str | None = None) -> str:
    import pandas as pd

    lines = [f"# {board['title']}", ""]
    lines.append(
        f"Values: point estimate with a 95% percentile bootstrap interval over resampling units (and over seeds "
        f"where a model has several), {board['n_resamples']:,} resamples, seed {board['seed']}. "
        f"Deltas: candidate − baseline (**{board['baseline']}**), paired bootstrap with shared resampling weights; "
        f"p-values Holm-adjusted across the metrics of each model against the baseline; "
        f"`*` marks p_adj < {ALPHA}. MDE: minimum detectable effect at 80% power, two-sided α = {ALPHA}, from the "
        f"paired standard error (Miller 2024)."
    )
    lines.append("")
    values = pd.DataFrame(board["values"])
    deltas = pd.DataFrame(board["deltas"])
    if values.empty:
        lines.append("No runs.")
        return "\n".join(lines) + "\n"
    for (suite, variant), part in values.groupby(["suite", "variant"], sort=False):
        lines.append(f"## {suite}" + (f" ({variant})" if variant else ""))
        lines.append("")
        part = part.assign(cell=[f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]" for v, lo, hi in zip(part.value, part.low, part.high)])
        table = part.pivot_table(index="model", columns="metric", values="cell", aggfunc="first", sort=False)
        meta = part.groupby("model", sort=False)[["n", "seeds"]].first()
        table = meta.join(table).reset_index()
        lines.append(table.to_markdown(index=False))
        lines.append("")
        if not deltas.empty:
            d = deltas[(deltas.suite == suite) & (deltas.variant == variant)]
            if not d.empty:
                lines.append(f"Δ against {board['baseline']}:")
                lines.append("")
                dt = pd.DataFrame(
                    {
                        "model": d.model,
                        "metric": d.metric,
                        "Δ [95% CI]": [f"{_fmt_signed(x)} [{_fmt_signed(lo)}, {_fmt_signed(hi)}]" for x, lo, hi in zip(d.delta, d.low, d.high)],
                        "p (Holm)": [_fmt_p(p) for p in d.p_adjusted],
                        "sig": ["*" if s else "" for s in d.significant],
                        "MDE": [_fmt(x) for x in d.mde],
                    }
                )
                lines.append(dt.to_markdown(index=False))
                lines.append("")
    if plot_name and not deltas.empty:
        lines.append(f"![Forest plot of deltas against {board['baseline']}]({plot_name})")
        lines.append("")
    return "\n".join(lines)


def _fmt_p(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def forest_plot(board: dict[str, Any], path: str | os.PathLike) -> bool:
    """Deltas with their intervals, one row per (model, suite, metric). Returns False when there is nothing to plot."""
    rows = [r for r in board["deltas"] if r["delta"] is not None]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One panel per task: metrics of different tasks live on different scales (MME sums vs fractions).
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_suite.setdefault(r["suite"], []).append(r)
    heights = [len(v) + 1.2 for v in by_suite.values()]
    fig, axes = plt.subplots(
        len(by_suite), 1, figsize=(8, 0.3 * sum(heights) + 0.8), gridspec_kw={"height_ratios": heights}, squeeze=False
    )
    for ax, (suite_name, suite_rows) in zip(axes[:, 0], by_suite.items()):
        y = np.arange(len(suite_rows))[::-1]
        for yi, r in zip(y, suite_rows):
            lo = r["low"] if r["low"] is not None else r["delta"]
            hi = r["high"] if r["high"] is not None else r["delta"]
            direction = r.get("higher_is_better", True)
            if not r["significant"]:
                color = "tab:gray"
            elif direction is None:
                color = "tab:blue"
            else:
                color = "tab:green" if (r["delta"] > 0) == direction else "tab:red"
            ax.plot([lo, hi], [yi, yi], color=color, lw=2)
            ax.plot([r["delta"]], [yi], "o", color=color)
        ax.axvline(0.0, color="black", lw=0.8, ls="--")
        ax.set_yticks(y)
        ax.set_yticklabels([f"{r['model']} · {r['metric']}" for r in suite_rows], fontsize=8)
        ax.set_ylim(-0.7, len(suite_rows) - 0.3)
        ax.set_title(suite_name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel(
        f"Δ vs {board['baseline']} (95% paired bootstrap CI); colour: Holm-significant better / worse / neutral"
    )
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def write_leaderboard(board: dict[str, Any], out: str | os.PathLike, plot: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    out = Path(out)
    plot_path = Path(plot) if plot is not None else out.with_name(out.stem + "-forest.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    has_plot = forest_plot(board, plot_path)
    rel = os.path.relpath(plot_path, out.parent) if has_plot else None
    atomic_write_text(out, render_markdown(board, rel))
    return out, plot_path if has_plot else None
