"""The CSR paper's aggregate score (arXiv 2405.14622): one average over its twelve benchmark columns.

The average takes the plain mean of the twelve columns after MME-P / 16 and MME-C / 4 (bringing the MME sums,
whose maxima are 2000 and 800, near a 0-100 range), CHAIR-S and CHAIR-I as 100 - value (they are lower-is-better
percentages), and the other eight as given (percentages). With the paper's LLaVA-1.5-7B row this gives 66.61 and
with its LLaVA-1.5-13B row 68.08, the numbers the paper prints (Table 2, "Base").

`paper_table(csv)` reads a CSV with a `model` column and the twelve columns `PAPER_COLUMNS`, and returns one dict per
row: model, average, and the change against the first row — `delta` (average points) and `relative` (percent of
the first row's average).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any, Sequence

from csr_bench.errors import UserError

PAPER_COLUMNS = ("MME-P", "MME-C", "SEED", "LLaVA-W", "MMB", "MM-Vet", "SQA-I", "VizWiz", "GQA", "POPE",
                 "CHAIR-S", "CHAIR-I")
LOWER_IS_BETTER = ("CHAIR-S", "CHAIR-I")
SCALE = {"MME-P": 1 / 16, "MME-C": 1 / 4}


def normalized(column: str, value: float) -> float:
    """A column's contribution to the average: 0-100, higher is better."""
    if column in LOWER_IS_BETTER:
        return 100.0 - value
    return value * SCALE.get(column, 1.0)


def paper_average(values: dict[str, float]) -> float:
    return sum(normalized(c, values[c]) for c in PAPER_COLUMNS) / len(PAPER_COLUMNS)


def read_paper_csv(path: str | os.PathLike) -> list[tuple[str, dict[str, float]]]:
    """(model, {column: value}) per row; a missing column or a non-numeric cell is a UserError."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: CSV file not found")
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        for column in ("model",) + PAPER_COLUMNS:
            if column not in header:
                raise UserError(f"{p}: missing column '{column}' (expected model, {', '.join(PAPER_COLUMNS)})")
        rows = []
        for lineno, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            values: dict[str, float] = {}
            for column in PAPER_COLUMNS:
                try:
                    values[column] = float(row[column])
                except ValueError:
                    raise UserError(f"{p}:{lineno}: column '{column}' must be a number, got {row[column]!r}") from None
                if not math.isfinite(values[column]):
                    raise UserError(f"{p}:{lineno}: column '{column}' must be finite, got {row[column]!r}")
            if not row["model"]:
                raise UserError(f"{p}:{lineno}: column 'model' is empty")
            rows.append((row["model"], values))
    if not rows:
        raise UserError(f"{p}: no rows")
    return rows


def aggregate(rows: Sequence[tuple[str, dict[str, float]]]) -> list[dict[str, Any]]:
    averages = [paper_average(v) for _, v in rows]
    base = averages[0]
    return [
        {"model": model, "average": avg, "delta": avg - base, "relative": 100.0 * (avg - base) / base}
        for (model, _), avg in zip(rows, averages)
    ]


def paper_table(csv_path: str | os.PathLike) -> list[dict[str, Any]]:
    """[{"model", "average", "delta", "relative"}] per CSV row; delta and relative (percent) against row one."""
    return aggregate(read_paper_csv(csv_path))


def paper_table_markdown(csv_path: str | os.PathLike) -> str:
    """A markdown table of the CSV's rows (cells as written) with their average and change against row one."""
    rows = read_paper_csv(csv_path)
    with Path(csv_path).open(newline="", encoding="utf-8") as f:
        texts = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f)]
    agg = aggregate(rows)
    lines = ["| Model | " + " | ".join(PAPER_COLUMNS) + " | Average | Δ | Relative |",
             "|---" * (len(PAPER_COLUMNS) + 4) + "|"]
    for i, (text, a) in enumerate(zip(texts, agg)):
        change = ("—", "—") if i == 0 else (f"{a['delta']:+.2f}", f"{a['relative']:+.2f}%")
        cells = " | ".join(text[c] for c in PAPER_COLUMNS)
        lines.append(f"| {a['model']} | {cells} | {a['average']:.2f} | {change[0]} | {change[1]} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# The same aggregate from run folders, with a bootstrap interval

# (suite, metric, factor to the paper's unit) feeding each column. POPE is the mean F1 over the POPE tasks
# present (the paper reports LLaVA-1.5's average F1 of random, popular and adversarial); CHAIR and MMBench are
# fractions in our runs and percentages in the paper.
RUN_SOURCES: dict[str, tuple[str, str, float]] = {
    "MME-P": ("mme", "perception", 1.0),
    "MME-C": ("mme", "cognition", 1.0),
    "SEED": ("seed_bench", "accuracy", 1.0),
    "LLaVA-W": ("llava_wild", "score", 1.0),
    "MMB": ("mmbench", "overall", 100.0),
    "MM-Vet": ("mmvet", "score", 1.0),
    "SQA-I": ("scienceqa", "accuracy", 1.0),
    "VizWiz": ("vizwiz", "accuracy", 1.0),
    "GQA": ("gqa", "accuracy", 1.0),
    "POPE": ("pope", "f1", 100.0),
    "CHAIR-S": ("chair", "CHAIR_s", 100.0),
    "CHAIR-I": ("chair", "CHAIR_i", 100.0),
}


def paper_table_from_runs(
    runs: Sequence[Any], *, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0, partial: bool = False
) -> list[dict[str, Any]]:
    """Per model: the twelve columns, the paper's average and its bootstrap interval.

    Each task is resampled over its own units (and seeds), independently of the others since the benchmarks
    are independent samples; each replicate's columns are averaged exactly like the point estimate. With
    `partial`, columns without runs are left out of the mean (then it is not the paper's aggregate: the output
    says which columns it used).
    """
    import numpy as np

    from csr_bench.report.compare import group_runs
    from csr_bench.stats import bootstrap_ci

    groups = group_runs(runs)
    labels = list(dict.fromkeys(g.label for g in groups))
    alpha = (1 - confidence) / 2
    out = []
    for k, label in enumerate(labels):
        columns: dict[str, float] = {}
        replicates: dict[str, np.ndarray] = {}
        for column, (suite_name, metric_name, factor) in RUN_SOURCES.items():
            found = [g for g in groups if g.label == label and g.runs[0].manifest.suite == suite_name]
            if not found:
                continue
            if len(found) > 1 and suite_name != "pope":
                tasks = ", ".join(g.suite_name for g in found)
                raise UserError(f"model '{label}' has several {suite_name} tasks ({tasks}); give the runs of one")
            values, reps = [], []
            for j, g in enumerate(found):
                metric = next((m for m in g.suite.metrics() if m.name == metric_name), None)
                if metric is None:  # e.g. MME-C from an MME run of the perception tasks only
                    if partial:
                        break
                    raise UserError(f"{g.runs[0].path}: {suite_name} runs have no metric '{metric_name}' "
                                    "(pass --partial to average the columns that exist)")
                stats = g.stats[0] if g.n_seeds == 1 else g.stats
                ci = bootstrap_ci(stats, metric, n_resamples=n_resamples, seed=seed + 1000 * k + j,
                                  resample_seeds=g.n_seeds > 1)
                values.append(ci.value * factor)
                reps.append(ci.replicates * factor)
            if len(values) < len(found):
                continue
            columns[column] = float(np.mean(values))
            replicates[column] = np.mean(reps, axis=0)
        missing = [c for c in PAPER_COLUMNS if c not in columns]
        if missing and not partial:
            raise UserError(f"model '{label}': no runs for {', '.join(missing)} (pass --partial to average the rest)")
        if not columns:
            continue
        used = [c for c in PAPER_COLUMNS if c in columns]
        average = sum(normalized(c, columns[c]) for c in used) / len(used)
        rep = sum(100.0 - replicates[c] if c in LOWER_IS_BETTER else replicates[c] * SCALE.get(c, 1.0) for c in used) / len(used)
        rep = rep[np.isfinite(rep)]
        low, high = (float(np.quantile(rep, alpha)), float(np.quantile(rep, 1 - alpha))) if len(rep) else (None, None)
        out.append({"model": label, "average": average, "low": low, "high": high, "columns": columns,
                    "used": used, "missing": missing})
    if not out:
        raise UserError("no runs of the paper's suites found")
    base = out[0]["average"]
    for row in out:
        row["delta"] = row["average"] - base
        row["relative"] = 100.0 * (row["average"] - base) / base
    return out


__all__ = ["PAPER_COLUMNS", "RUN_SOURCES", "aggregate", "normalized", "paper_average", "paper_table",
           "paper_table_from_runs", "paper_table_markdown", "read_paper_csv"]
