"""The resumable evaluation loop: items -> outputs (in batches) -> samples appended to the run folder.

Batches are cut from the run's full item list and each is sampled with a seed of its own, `batch_seed(run seed,
batch index)`, so an item's output depends only on the run (items, batch size, seed), never on what a killed
earlier attempt finished: a resume skips the batches that are done and regenerates a partly done batch whole,
appending only its missing items.

Under `accelerate launch` or `torchrun` (WORLD_SIZE > 1) the same batches are dealt to the ranks round-robin by
batch index: each rank appends to its own shard file, and rank 0 merges them into a run folder identical to a
single-process run.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from csr_bench.core.types import Item, RunManifest, Sample
from csr_bench.runner.distributed import cut_batches, shard_batches
from csr_bench.runner.scoring import make_sample, summarize
from csr_bench.runner.store import SHARD_GLOB, SampleLog, RunWriter, consolidate_samples, finalize_run, prepare_run, shard_file_name
from csr_bench.suites.base import Suite

if TYPE_CHECKING:
    from csr_bench.runner.distributed import ProcessGroup


def batch_seed(seed: int, index: int) -> int:
    """The sampling seed of batch `index` (0-based, over the run's full item list) of a run with seed `seed`.

    Derivation: the first 4 bytes of SHA-256 of the ASCII text "<seed>:<index>" (e.g. "0:3"), read big-endian, with
    the top bit cleared: an int in [0, 2**31). It depends on nothing else (not on a resume, the rank or the world
    size); a hash so that neighbouring seeds and batches get unrelated streams; 31 bits so that an adapter may hand
    it to any library that takes a 32-bit seed.
    """
    digest = hashlib.sha256(f"{int(seed)}:{int(index)}".encode("ascii")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Batch:
    """One generation batch of a run: a sequence of its items that also knows its place and its sampling seed.

    `index` is its position among the run's batches (cut from the full item list), `seed` is
    `batch_seed(run seed, index)`: what a sampling model must be seeded with, once for the whole batch.
    """

    index: int
    seed: int
    items: tuple[Item, ...]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)


# Produces one output per item of a batch, in order (a sampling model seeds the batch with `batch.seed`).
OutputFn = Callable[[Batch], Sequence[str | None]]


def run_batches(items: Sequence[Item], batch_size: int, seed: int) -> list[Batch]:
    """The run's batches: the full item list cut into `batch_size` slices, each with its `batch_seed`."""
    return [Batch(index=b, seed=batch_seed(seed, b), items=tuple(chunk)) for b, chunk in enumerate(cut_batches(items, batch_size))]


def _generate(suite: Suite, produce: OutputFn, batch: Batch, done_outputs: dict[str, str | None],
              mismatched: list[str]) -> list[Sample]:
    """The samples of a batch's items not yet done. A partly done batch is regenerated whole (its composition and
    seed fix every output); its done items keep their logged samples, and any whose new output differs (a model
    that is not deterministic on this hardware) is noted in `mismatched`."""
    outputs = produce(batch)
    if len(outputs) != len(batch):
        raise RuntimeError(f"model returned {len(outputs)} outputs for {len(batch)} items")
    new = []
    for item, output in zip(batch, outputs):
        if item.id not in done_outputs:
            new.append(make_sample(suite, item, output))
        elif done_outputs[item.id] != output:
            mismatched.append(item.id)
    return new


def _warn_mismatched(mismatched: list[str]) -> None:
    if mismatched:
        warnings.warn(
            f"{len(mismatched)} item(s) already done (first: {mismatched[0]!r}) got a different output when their "
            "partly done batch was generated again; the samples logged first are kept (is the model deterministic?)",
            RuntimeWarning, stacklevel=3,
        )


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

    A killed run, rerun with the same manifest, continues where it stopped: batches all done are skipped, a partly
    done batch is generated again whole and only its missing items are appended, so the result is the uninterrupted
    run's, byte for byte, and no item is written twice. Returns the metrics summary (also written to metrics.json).
    """
    order = _item_order(items)
    batches = run_batches(items, batch_size, manifest.seed)
    writer = RunWriter(run_dir, manifest, order)
    mismatched: list[str] = []
    try:
        done = sum(it.id in writer.done for it in items)
        if progress:
            progress(done, len(items))
        for batch in batches:
            logged = {it.id: writer.done[it.id].output for it in batch if it.id in writer.done}
            if len(logged) == len(batch):
                continue
            for sample in _generate(suite, produce, batch, logged, mismatched):
                writer.append(sample)
            done += len(batch) - len(logged)
            if progress:
                progress(done, len(items))
        _warn_mismatched(mismatched)
        summary = summarize(suite, _run_samples(writer.done, order), seed=manifest.seed)
        writer.finish(summary)
        return summary
    finally:
        writer.close()


def run_items_sharded(
    suite: Suite,
    items: Sequence[Item],
    produce: OutputFn,
    run_dir: str | os.PathLike,
    manifest: RunManifest,
    group: "ProcessGroup",
    *,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """`run_items` over the ranks of `group`; every rank calls it with the same arguments.

    Rank 0 opens the folder (folding in the shards of a killed earlier run, so nothing done is lost, whatever the
    earlier world size). The run's batches (the ones `run_items` forms, with the same seeds) are dealt round-robin
    by batch index; a rank skips its batches that are all done, regenerates a partly done one whole, and appends the
    missing samples to its own shard file. After a barrier rank 0 merges the shards into samples.jsonl in item
    order and writes metrics.json and the manifest, exactly as `run_items` would. Returns the metrics summary on
    every rank.
    """
    order = _item_order(items)
    rank, world = group.env.rank, group.env.world_size
    batches = run_batches(items, batch_size, manifest.seed)

    def prepare() -> tuple[list[str], dict[str, str | None]]:
        done = prepare_run(run_dir, manifest, order)
        # The logged outputs of the done items of partly done batches (to compare when they are generated again).
        partial = {}
        for batch in batches:
            ids = [it.id for it in batch if it.id in done]
            if 0 < len(ids) < len(batch):
                partial.update((i, done[i].output) for i in ids)
        return list(done), partial

    done_ids, partial_outputs = group.on_main(prepare)  # every rank learns what is done; none reads a file rank 0 may rewrite
    done = set(done_ids)
    n_done = sum(it.id in done for it in items)
    if progress:
        progress(n_done, len(items))
    log = SampleLog(Path(run_dir) / shard_file_name(rank, world))
    mismatched: list[str] = []
    try:
        for batch in shard_batches(batches, rank, world):
            logged = {it.id: partial_outputs.get(it.id) for it in batch if it.id in done}
            if len(logged) == len(batch):
                continue
            for sample in _generate(suite, produce, batch, logged, mismatched):
                log.append(sample)
            if progress:
                progress(n_done + _lines_in_shards(run_dir), len(items))
    finally:
        log.close()
    _warn_mismatched(mismatched)
    group.barrier()  # every shard is complete and closed

    def merge() -> dict:
        merged = consolidate_samples(run_dir, order)
        summary = summarize(suite, _run_samples(merged, order), seed=manifest.seed)
        finalize_run(run_dir, manifest, summary)
        return summary

    summary = group.on_main(merge)
    if progress:
        progress(len(items), len(items))
    return summary


def _item_order(items: Sequence[Item]) -> dict[str, int]:
    order: dict[str, int] = {}
    for n, it in enumerate(items):
        if it.id in order:
            raise ValueError(f"duplicate item id {it.id!r}")
        order[it.id] = n
    return order


def _run_samples(done: dict, order: dict[str, int]) -> list:
    """The run's samples in item order (samples of items outside the run are kept on disk, not scored)."""
    return sorted((s for s in done.values() if s.item_id in order), key=lambda s: order[s.item_id])


def _lines_in_shards(run_dir: str | os.PathLike) -> int:
    """Samples written so far by all ranks (for rank 0's progress bar)."""
    total = 0
    for shard in Path(run_dir).glob(SHARD_GLOB):
        try:
            total += shard.read_bytes().count(b"\n")
        except FileNotFoundError:  # pragma: no cover - shards vanish only at the merge
            continue
    return total


def check_images(items: Sequence[Item]) -> None:
    """Every image a prompt names exists and opens as an image: a bad one stops the run before a model is loaded
    or a folder written. (PIL's verify reads the header, and a PNG's checksums; the model decodes the pixels.)"""
    from PIL import Image

    from csr_bench.core.types import ImagePart
    from csr_bench.errors import UserError

    seen: set[str] = set()
    for item in items:
        for message in item.messages:
            for part in message.parts:
                if not isinstance(part, ImagePart) or part.path in seen:
                    continue
                seen.add(part.path)
                if not os.path.isfile(part.path):
                    raise UserError(f"item {item.id}: image file not found: {part.path}")
                try:
                    with Image.open(part.path) as image:
                        image.verify()
                except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
                    raise UserError(f"item {item.id}: image file not readable: {part.path} ({e})") from None


def model_label(spec: str) -> str:
    p = Path(spec)
    return p.name if p.exists() else spec.replace("/", "_").replace(":", "_")


def run_folder(out: str | os.PathLike, label: str, task: str, seed: int) -> Path:
    """Where `evaluate` writes the run of model `label` on `task` with decoding seed `seed`: OUT/<label>/<task>/seed<k>."""
    return Path(out) / label / task / f"seed{seed}"


def run_config(suite: Suite, *, limit: int | None = None, max_new_tokens: int | None = None, do_sample: bool = False,
               temperature: float = 1.0, num_beams: int = 1) -> dict:
    """The `config` a run's manifest records (part of its identity): generation settings and the item limit.

    One place, so that planners (sweeps) predict exactly the identity `evaluate` will write.
    """
    from csr_bench.runner.tasks import DEFAULT_MAX_NEW_TOKENS

    tokens = max_new_tokens or getattr(suite, "max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    generation = {"max_new_tokens": tokens, "do_sample": do_sample, "temperature": temperature, "num_beams": num_beams}
    return {"generation": generation, "limit": limit}


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
    trust_remote_code: bool = False,
) -> list[os.PathLike]:
    """Evaluate one model on tasks x seeds: one resumable run folder OUT/<name>/<task>/seed<k> each.

    `trust_remote_code` lets the checkpoint's own Python code run while loading (off unless asked for).

    Started by `accelerate launch` or `torchrun` with several processes, the items are sharded over them (see
    `run_items_sharded`); the run folders are the same as one process writes. Every rank returns the run folders,
    complete, and only rank 0 shows progress.
    """
    import contextlib

    from csr_bench.models import load_adapter
    from csr_bench.runner.distributed import ProcessGroup, launch_env, rank_device

    env = launch_env()
    # Bad input fails here on every rank alike (one line, exit 2), before a model is loaded, a folder written
    # or the ranks joined, so no rank is left waiting for another.
    built = [(t, t.build()) for t in tasks]
    runs = []  # (task, suite, its items): items are read once
    for task, suite in built:
        items = list(suite.items())
        check_images(items)
        runs.append((task, suite, items))
    from csr_bench.runner.store import check_run_folder

    label = name or model_label(model)
    for task, _ in built:  # a folder that is not a run, or from a newer csr-bench, fails before the model loads
        for seed in seeds:
            check_run_folder(run_folder(out, label, task.name, seed))
    if adapter is None:
        options = {"trust_remote_code": True} if trust_remote_code else {}  # adapters without the option are unaffected
        adapter = load_adapter(model, device=rank_device(env), **options) if env.sharded else load_adapter(model, **options)
    group = ProcessGroup(env) if env.sharded else contextlib.nullcontext()
    with group:
        return _evaluate_runs(
            model, label, runs, adapter, out=out, seeds=seeds, batch_size=batch_size, limit=limit,
            max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, num_beams=num_beams,
            progress=progress and env.is_main, group=group if env.sharded else None,
        )


def _evaluate_runs(
    model: str, label: str, runs: list, adapter, *, out, seeds, batch_size, limit, max_new_tokens, do_sample, temperature,
    num_beams, progress: bool, group: "ProcessGroup | None",
) -> list[os.PathLike]:
    from csr_bench.models import GenRequest
    from csr_bench.runner.store import package_versions

    fingerprint = adapter.fingerprint()
    run_dirs = []
    for task, suite, items in runs:
        if limit is not None:
            items = items[:limit]
        config = run_config(suite, limit=limit, max_new_tokens=max_new_tokens, do_sample=do_sample,
                            temperature=temperature, num_beams=num_beams)
        gen = config["generation"]
        data_fingerprint = suite.data_fingerprint()  # hashes the data files: once per task, not per seed
        for seed in seeds:
            manifest = RunManifest(
                suite=suite.name,
                suite_config=suite.config_dict(),
                model={"name": label, "spec": model, "fingerprint": fingerprint},
                seed=seed,
                stat_names=list(suite.stat_names),
                data_fingerprint=data_fingerprint,
                n_items=len(items),
                config=config,
                task=task.name,
                versions=package_versions(),
            )

            def produce(batch, _gen=gen):
                # One generate call per batch, seeded with the batch's own seed (see `batch_seed`).
                reqs = [GenRequest(messages=it.messages, id=it.id) for it in batch]
                return adapter.generate(reqs, seed=batch.seed, batch_size=len(reqs), **_gen)

            run_dir = run_folder(out, label, task.name, seed)
            with _progress_bar(f"{label} · {task.name} · seed {seed}", enabled=progress) as update:
                if group is None:
                    run_items(suite, items, produce, run_dir, manifest, batch_size=batch_size, progress=update)
                else:
                    run_items_sharded(suite, items, produce, run_dir, manifest, group, batch_size=batch_size, progress=update)
            run_dirs.append(run_dir)
    return run_dirs


class _progress_bar:
    """A rich progress bar with items/s and ETA; silent when disabled."""

    def __init__(self, description: str, enabled: bool = True):
        self.description, self.enabled = description, enabled

    def __enter__(self):
        if not self.enabled:
            return None  # no callback: the runner skips progress work (a sharded run's count of shard lines)
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
