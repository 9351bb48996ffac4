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


__all__ = ["PAPER_COLUMNS", "aggregate", "normalized", "paper_average", "paper_table", "paper_table_markdown",
           "read_paper_csv"]
