"""Speed of csr_bench.stats.paired_bootstrap against scipy.stats.bootstrap on POPE-style F1.

9,000 items with a yes/no label, two models' answers, per-item one-hot (TP, FP, FN, TN) statistics; a paired
bootstrap of delta F1 = F1(b) - F1(a) with 10,000 resamples and the percentile interval, both in one process on
the same data. scipy gets its fastest layout we found (boolean one-hot, `batch=100`; float arrays and larger
batches were 2-4x slower on a 2-core machine) so the ratio is not flattered.

Run: python benchmarks/speed/bootstrap.py [--items 9000] [--resamples 10000] [--repeats 5] [--scipy-batch 100]
     [--json FILE]   (also write the result as JSON, for run_all.py)
"""

from __future__ import annotations

import os

# Single-threaded BLAS for both sides, so the comparison does not depend on the machine's core count.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402

from csr_bench.stats import paired_bootstrap  # noqa: E402

TP, FP, FN, TN = range(4)


def pope_items(n_items: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One-hot (TP, FP, FN, TN) per item for a baseline (85% correct) and a candidate (88%) on the same items."""
    label_yes = rng.random(n_items) < 0.5

    def one_hot(accuracy: float) -> np.ndarray:
        says_yes = np.where(rng.random(n_items) < accuracy, label_yes, ~label_yes)
        outcome = np.where(says_yes, np.where(label_yes, TP, FP), np.where(label_yes, FN, TN))
        return np.eye(4)[outcome]

    return one_hot(0.85), one_hot(0.88)


def f1(sums: np.ndarray) -> np.ndarray:
    tp, fp, fn = sums[..., TP], sums[..., FP], sums[..., FN]
    denominator = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def scipy_delta_f1(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """scipy's statistic: items lie along `axis`, the 4 one-hot columns along the first axis."""
    sums_a = np.moveaxis(a.sum(axis=axis), 0, -1)
    sums_b = np.moveaxis(b.sum(axis=axis), 0, -1)
    return f1(sums_b) - f1(sums_a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=9000)
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=5, help="runs of ours; the median is reported")
    parser.add_argument("--scipy-batch", type=int, default=100)
    parser.add_argument("--json", help="also write the result here as JSON (read by run_all.py)")
    args = parser.parse_args()

    a_items, b_items = pope_items(args.items, np.random.default_rng(2024))

    ours_times = []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        ours = paired_bootstrap(a_items, b_items, f1, n_resamples=args.resamples, seed=repeat)
        ours_times.append(time.perf_counter() - start)
    ours_time = statistics.median(ours_times)

    start = time.perf_counter()
    reference = scipy.stats.bootstrap(
        (a_items.astype(bool), b_items.astype(bool)),
        scipy_delta_f1,
        paired=True,
        vectorized=True,
        n_resamples=args.resamples,
        method="percentile",
        batch=args.scipy_batch,
        rng=np.random.default_rng(0),
    )
    scipy_time = time.perf_counter() - start

    print(f"paired bootstrap of delta F1, {args.items} items, {args.resamples} resamples")
    print(f"  delta F1 = {ours.delta:.5f}")
    print(
        f"  ours : [{ours.low:.5f}, {ours.high:.5f}]  se {ours.se:.5f}   {ours_time * 1e3:9.1f} ms"
        f" (median of {args.repeats})"
    )
    ci = reference.confidence_interval
    print(
        f"  scipy: [{ci.low:.5f}, {ci.high:.5f}]  se {reference.standard_error:.5f}   {scipy_time * 1e3:9.1f} ms"
    )
    print(f"  speed-up: {scipy_time / ours_time:.0f}x")
    if args.json:
        row = {
            "benchmark": "bootstrap.py",
            "what": f"paired bootstrap of delta F1, {args.items:,} POPE-style items, {args.resamples:,} resamples, "
                    "percentile interval",
            "baseline": "scipy.stats.bootstrap(paired=True, vectorized=True)",
            "ours_s": ours_time, "baseline_s": scipy_time, "ratio": scipy_time / ours_time,
            "same_result": None, "note": f"ours: median of {args.repeats} runs; scipy: one run, batch {args.scipy_batch}",
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": [row]}, f, indent=2)


if __name__ == "__main__":
    main()
