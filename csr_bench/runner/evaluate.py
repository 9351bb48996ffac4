"""The resumable evaluation loop: items -> outputs (in batches) -> samples appended to the run folder."""

from __future__ import annotations

import os
from typing import Callable, Sequence

from csr_bench.core.types import Item, RunManifest
from csr_bench.runner.scoring import make_sample, summarize
from csr_bench.runner.store import RunWriter
from csr_bench.suites.base import Suite

# Produces one output per item of a batch, in order.
OutputFn = Callable[[Sequence[Item]], Sequence[str | None]]


def run_items(
    suite: Suite,
    items: Sequence[Item],
    produce: OutputFn,
    run_dir: str | os.PathLike,
    manifest: RunManifest,
    *,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Evaluate the items not yet in `run_dir`, appending each sample as soon as it is scored.

    A killed run, rerun with the same manifest, continues after the last complete line: no item is lost,
    none is computed twice. Returns the metrics summary (also written to metrics.json).
    """
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"duplicate item id {dup!r}")
    writer = RunWriter(run_dir, manifest)
    try:
        todo = [it for it in items if it.id not in writer.done]
        done = len(items) - len(todo)
        if progress:
            progress(done, len(items))
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            outputs = produce(batch)
            if len(outputs) != len(batch):
                raise RuntimeError(f"model returned {len(outputs)} outputs for {len(batch)} items")
            for item, output in zip(batch, outputs):
                writer.append(make_sample(suite, item, output))
            done += len(batch)
            if progress:
                progress(done, len(items))
        order = {i: n for n, i in enumerate(ids)}
        samples = sorted((s for s in writer.done.values() if s.item_id in order), key=lambda s: order[s.item_id])
        summary = summarize(suite, samples, seed=manifest.seed)
        writer.finish(summary)
        return summary
    finally:
        writer.close()
