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


def check_images(items: Sequence[Item]) -> None:
    """Every image a prompt names exists: a missing one stops the run before any folder is written."""
    from csr_bench.core.types import ImagePart
    from csr_bench.errors import UserError

    for item in items:
        for message in item.messages:
            for part in message.parts:
                if isinstance(part, ImagePart) and not os.path.isfile(part.path):
                    raise UserError(f"item {item.id}: image file not found: {part.path}")


def model_label(spec: str) -> str:
    from pathlib import Path

    p = Path(spec)
    return p.name if p.exists() else spec.replace("/", "_").replace(":", "_")


def evaluate(
    model: str,
    tasks: Sequence,
    *,
    out: str | os.PathLike,
    seeds: Sequence[int] = (0,),
    name: str | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    max_new_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    num_beams: int = 1,
    adapter=None,
    progress: bool = True,
) -> list[os.PathLike]:
    """Evaluate one model on tasks x seeds: one resumable run folder OUT/<name>/<task>/seed<k> each."""
    from pathlib import Path

    from csr_bench.models import GenRequest, load_adapter
    from csr_bench.runner.store import package_versions
    from csr_bench.runner.tasks import DEFAULT_MAX_NEW_TOKENS

    built = [(t, t.build()) for t in tasks]  # bad data fails here, before any model is loaded or folder written
    for _, suite in built:
        check_images(suite.items())
    label = name or model_label(model)
    if adapter is None:
        adapter = load_adapter(model)
    fingerprint = adapter.fingerprint()
    run_dirs = []
    for task, suite in built:
        items = list(suite.items())
        if limit is not None:
            items = items[:limit]
        tokens = max_new_tokens or getattr(suite, "max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        for seed in seeds:
            gen = {"max_new_tokens": tokens, "do_sample": do_sample, "temperature": temperature, "num_beams": num_beams}
            manifest = RunManifest(
                suite=suite.name,
                suite_config=suite.config_dict(),
                model={"name": label, "spec": model, "fingerprint": fingerprint},
                seed=seed,
                stat_names=list(suite.stat_names),
                data_fingerprint=suite.data_fingerprint(),
                n_items=len(items),
                config={"generation": gen, "limit": limit},
                task=task.name,
                versions=package_versions(),
            )

            def produce(batch, _seed=seed, _gen=gen):
                reqs = [GenRequest(messages=it.messages, id=it.id) for it in batch]
                return adapter.generate(reqs, seed=_seed, batch_size=len(reqs), **_gen)

            run_dir = Path(out) / label / task.name / f"seed{seed}"
            with _progress_bar(f"{label} · {task.name} · seed {seed}", enabled=progress) as update:
                run_items(suite, items, produce, run_dir, manifest, batch_size=batch_size, progress=update)
            run_dirs.append(run_dir)
    return run_dirs


class _progress_bar:
    """A rich progress bar with items/s and ETA; silent when disabled."""

    def __init__(self, description: str, enabled: bool = True):
        self.description, self.enabled = description, enabled

    def __enter__(self):
        if not self.enabled:
            return lambda done, total: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        class Rate(TextColumn):
            def __init__(self):
                super().__init__("")

            def render(self, task):
                from rich.text import Text

                speed = task.finished_speed or task.speed
                return Text(f"{speed:.1f} items/s" if speed else "")

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn(), transient=False)
        self._p.__enter__()
        self._task = None

        def update(done: int, total: int) -> None:
            if self._task is None:
                self._task = self._p.add_task(self.description, total=total, completed=done)
            else:
                self._p.update(self._task, completed=done)

        return update

    def __exit__(self, *exc):
        if self.enabled:
            self._p.__exit__(*exc)
        return False
