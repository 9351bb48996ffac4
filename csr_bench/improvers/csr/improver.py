"""The CSR improver: per iteration, sentence-level search -> preference pairs -> DPO with LoRA -> merged checkpoint.

Files of one iteration (under OUT/iter<k>/), in the order they are finished:

    search.jsonl     one search tree per prompt (every sentence with its scores; chosen and rejected node ids and
                     scores), appended and fsynced batch by batch as the search goes
    pairs.jsonl      the preference pairs trained on ({"id", "image", "prompt", "chosen", "rejected", scores}),
                     written atomically once every prompt is searched: its presence means the search is done
    train_log.json   TRL's log history and a summary, written atomically just before model/ appears
    model/           the merged checkpoint (safetensors + processor): `hf:OUT/iter<k>/model`, renamed into place

A killed iteration resumes from its own files, exactly: with model/ present nothing is run again; with
pairs.jsonl present training starts again from the pairs (training is seeded and deterministic, so the
checkpoint is the one an uninterrupted run makes); otherwise the search continues after the last batch of
prompts whose trees are all in search.jsonl (a torn last line is dropped; a half-logged batch is searched
again with its own seed and only its missing trees are appended). Hidden temporaries of a killed write
(".model.*", ".trainer-*", ".NAME.*.tmp") are deleted first.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any, Sequence

from csr_bench.core.registry import improver
from csr_bench.errors import UserError
from csr_bench.improvers.base import (
    IterationOutput,
    Progress,
    PromptRecord,
    load_config_file,
)
from csr_bench.improvers.csr.config import CSRConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
SHIPPED = {"paper": "csr-paper.toml", "tiny": "csr-tiny.toml"}


def _resolve_relative(config: CSRConfig, base: Path) -> CSRConfig:
    """Paths in a config file are relative to the file's folder."""
    from dataclasses import replace

    changes: dict[str, Any] = {}
    for key in ("prompts", "image_root"):
        value = getattr(config, key)
        if value and not Path(value).expanduser().is_absolute():
            changes[key] = str((base / value).resolve())
    clip = config.clip
    if clip and clip != "tiny" and (clip.startswith(".") or (base / clip).exists()):
        changes["clip"] = str((base / clip).resolve())
    return replace(config, **changes) if changes else config


def _select_device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda': no CUDA device is available; use 'cpu' or 'auto'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(spec: str, *, dtype: str = "auto", device: str = "auto", trust_remote_code: bool = False):
    """(model, processor) of a model spec, through the `hf` adapter's checks (safetensors, chat template).

    Without `trust_remote_code` a checkpoint that ships its own Python code (auto_map in config.json) is a
    UserError that names --trust-remote-code, and its code never runs.
    """
    from csr_bench.models.base import load_adapter, resolve_model_spec

    parsed = resolve_model_spec(spec)
    if parsed.adapter != "hf":
        raise UserError(f"model spec '{spec}': CSR trains transformers checkpoints; expected 'tiny', 'hf:PATH' or a folder")
    adapter = load_adapter(parsed, dtype=dtype, device="cuda" if _select_device(device).type == "cuda" else "cpu",
                           trust_remote_code=trust_remote_code)
    return adapter.model, adapter.processor


@improver("csr")
class CSRImprover:
    """Calibrated Self-Rewarding (Zhou et al., 2024; arXiv 2405.14622)."""

    name = "csr"
    description = ("Calibrated Self-Rewarding: sentence-level search rewarded by the model's likelihood and CLIP "
                   "relevance, then DPO with LoRA, repeated; one merged checkpoint per iteration.")

    def __init__(self) -> None:
        self._clip = None
        self._clip_key: tuple[str, str] | None = None

    @staticmethod
    def shipped_configs() -> dict[str, Path]:
        return {name: CONFIG_DIR / file for name, file in SHIPPED.items()}

    def load_config(self, source: str | os.PathLike | None) -> CSRConfig:
        """A TOML file, a shipped config name ("paper", "tiny"), or None for the paper's defaults."""
        if source is None:
            return CSRConfig()
        text = str(source)
        if text in SHIPPED:
            path = CONFIG_DIR / SHIPPED[text]
        else:
            path = Path(text).expanduser()
            if not path.exists():
                raise UserError(f"{path}: config file not found; expected a TOML file or one of: {', '.join(SHIPPED)}")
        return _resolve_relative(load_config_file(CSRConfig, path), path.resolve().parent)

    def _clip_scorer(self, config: CSRConfig, device):
        from csr_bench.improvers.csr.clip import load_clip_scorer

        key = (config.clip, str(device))
        if self._clip is None or self._clip_key != key:
            self._clip = load_clip_scorer(config.clip, device=str(device))
            self._clip_key = key
        return self._clip

    def run_iteration(
        self,
        parent: str,
        *,
        iteration: int,
        work_dir: Path,
        config: CSRConfig,
        prompts: Sequence[PromptRecord],
        seed: int,
        progress: Progress,
        trust_remote_code: bool = False,
    ) -> IterationOutput:
        """One CSR iteration on `parent`; `trust_remote_code` lets the parent checkpoint's own code run."""
        import torch

        from csr_bench.core.files import read_json
        from csr_bench.improvers.csr.dpo import remove_stale_temporaries, train_and_merge
        from csr_bench.improvers.csr.pairs import read_pairs, write_pairs

        work_dir = Path(work_dir)
        pairs_file, trees_file, log_file = work_dir / "pairs.jsonl", work_dir / "search.jsonl", work_dir / "train_log.json"
        checkpoint = work_dir / "model"
        remove_stale_temporaries(work_dir)
        # Different iterations and seeds draw different random numbers (sampling, LoRA init, data order).
        iteration_seed = seed * 1_000 + iteration
        stats: dict[str, Any] = {}
        if (checkpoint / "config.json").is_file() and log_file.is_file() and pairs_file.is_file():
            # Killed after training finished but before lineage.json recorded it: nothing to redo.
            progress.note(f"iteration {iteration}: reusing the finished checkpoint {checkpoint}")
            stats.update(search_stats(trees_file, read_pairs(pairs_file)))
            stats.update(_log_summary(read_json(log_file, "training log")))
            return IterationOutput(checkpoint=checkpoint.name, preference_data=pairs_file.name,
                                   training_log=log_file.name, stats=stats)
        model, processor = load_model(parent, dtype=config.dtype, device=config.device,
                                      trust_remote_code=trust_remote_code)
        if not getattr(processor, "chat_template", None):
            raise UserError(f"{parent}: the processor has no chat template (expected chat_template.jinja or .json)")
        clip = self._clip_scorer(config, next(model.parameters()).device)
        if pairs_file.is_file():
            pairs = read_pairs(pairs_file)
            progress.note(f"iteration {iteration}: reusing {len(pairs)} preference pairs from {pairs_file}")
            stats.update(search_stats(trees_file, pairs))
        else:
            started = time.perf_counter()
            pairs, found = self.search(model, processor, clip, prompts, config, seed=iteration_seed,
                                       trees_file=trees_file, progress=progress, iteration=iteration)
            write_pairs(pairs_file, pairs)
            stats.update(found, search_seconds=round(time.perf_counter() - started, 1))
        if not pairs:
            raise UserError(f"iteration {iteration}: the search produced no preference pairs (chosen == rejected for "
                            "every prompt); use more candidates or another decoding")
        torch.manual_seed(iteration_seed)
        train_and_merge(model, processor, pairs, config, out_dir=checkpoint, seed=iteration_seed, progress=progress,
                        iteration=iteration, log_file=log_file)
        del model  # the next iteration loads the merged checkpoint from disk
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        # From the file, as a resumed iteration reads it (non-finite numbers are null there).
        stats.update(_log_summary(read_json(log_file, "training log")))
        return IterationOutput(checkpoint=checkpoint.name, preference_data=pairs_file.name, training_log=log_file.name,
                               stats=stats)

    def search(self, model, processor, clip, prompts: Sequence[PromptRecord], config: CSRConfig, *, seed: int,
               trees_file: Path | None = None, progress: Progress | None = None, iteration: int = 1):
        """Run the sentence-level search and turn its trees into preference pairs.

        With `trees_file`, each batch's trees are appended to it (fsynced) as soon as they exist, and trees
        already there (a killed search) are reused: the search goes on after them. Returns (pairs, stats);
        pairs are in prompt order and built from the tree records alone (`pair_from_tree`).
        """
        from csr_bench.improvers.csr.pairs import append_trees, pair_from_tree, read_search_log, tree_to_json
        from csr_bench.improvers.csr.search import SentenceSearch

        wanted = {p.id for p in prompts}
        trees = read_search_log(trees_file) if trees_file is not None else {}
        stray = [pid for pid in trees if pid not in wanted]
        if stray:
            raise UserError(f"{trees_file}: holds the search of prompt {stray[0]!r}, which is not among this run's "
                            "prompts; delete the file to search this iteration again")
        if progress is not None:
            progress.phase(iteration, "search", len(prompts))
            if trees:
                progress.advance(len(trees))

        def keep(results) -> None:
            new = [tree_to_json(r.prompt.id, r.prompt.image, r.prompt.prompt, r.nodes, r.selection)
                   for r in results if r.prompt.id not in trees]
            if trees_file is not None:
                append_trees(trees_file, new)
            trees.update((t["id"], t) for t in new)

        if len(trees) < len(wanted):
            model.eval()
            searcher = SentenceSearch(model, processor, config.search, clip, seed=seed)
            searcher.run(prompts, progress, done=set(trees), on_batch=keep)
        ordered = [trees[p.id] for p in prompts]
        pairs = [pair for pair in map(pair_from_tree, ordered) if pair is not None]
        return pairs, _tree_stats(ordered, pairs)


def _tree_stats(trees: Sequence[dict[str, Any]], pairs: Sequence[Any]) -> dict[str, Any]:
    return {"prompts": len(trees), "pairs": len(pairs), "sentences_scored": sum(len(t["nodes"]) - 1 for t in trees)}


def search_stats(trees_file: Path, pairs: Sequence[Any]) -> dict[str, Any]:
    """The search's summary from its log, for an iteration resumed after its search finished (its time is
    then unknown: `search_seconds` is null). Only the pair count without a log."""
    from csr_bench.improvers.csr.pairs import read_search_log

    if not trees_file.is_file():
        return {"pairs": len(pairs)}
    return {**_tree_stats(list(read_search_log(trees_file).values()), pairs), "search_seconds": None}


def _log_summary(log: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a training log that go into lineage (not the per-step history, not strings)."""
    return {k: v for k, v in log.items() if k != "log_history" and not isinstance(v, str)}
