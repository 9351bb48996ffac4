"""The CSR improver: per iteration, sentence-level search -> preference pairs -> DPO with LoRA -> merged checkpoint.

Files of one iteration (under OUT/iter<k>/):

    search.jsonl     one search tree per prompt (every sentence with its scores; chosen and rejected node ids)
    pairs.jsonl      the preference pairs trained on ({"id", "image", "prompt", "chosen", "rejected", scores})
    train_log.json   TRL's log history and a summary
    model/           the merged checkpoint (safetensors + processor): `hf:OUT/iter<k>/model`

A killed iteration resumes from its own files: with pairs.jsonl present the search is not run again.
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


def load_model(spec: str, *, dtype: str = "auto", device: str = "auto"):
    """(model, processor) of a model spec, through the `hf` adapter's checks (safetensors, chat template)."""
    from csr_bench.models.base import load_adapter, resolve_model_spec

    parsed = resolve_model_spec(spec)
    if parsed.adapter != "hf":
        raise UserError(f"model spec '{spec}': CSR trains transformers checkpoints; expected 'tiny', 'hf:PATH' or a folder")
    adapter = load_adapter(parsed, dtype=dtype, device="cuda" if _select_device(device).type == "cuda" else "cpu")
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
    ) -> IterationOutput:
        import torch

        from csr_bench.improvers.csr.dpo import train_and_merge, write_training_log
        from csr_bench.improvers.csr.pairs import read_pairs

        work_dir = Path(work_dir)
        pairs_file, trees_file, log_file = work_dir / "pairs.jsonl", work_dir / "search.jsonl", work_dir / "train_log.json"
        # Different iterations and seeds draw different random numbers (sampling, LoRA init, data order).
        iteration_seed = seed * 1_000 + iteration
        model, processor = load_model(parent, dtype=config.dtype, device=config.device)
        if not getattr(processor, "chat_template", None):
            raise UserError(f"{parent}: the processor has no chat template (expected chat_template.jinja or .json)")
        clip = self._clip_scorer(config, next(model.parameters()).device)
        stats: dict[str, Any] = {}
        if pairs_file.is_file():
            pairs = read_pairs(pairs_file)
            progress.note(f"iteration {iteration}: reusing {len(pairs)} preference pairs from {pairs_file}")
        else:
            started = time.perf_counter()
            pairs, search_stats = self.search(model, processor, clip, prompts, config, seed=iteration_seed,
                                              trees_file=trees_file, progress=progress, iteration=iteration)
            from csr_bench.improvers.csr.pairs import write_pairs

            write_pairs(pairs_file, pairs)
            stats.update(search_stats, search_seconds=round(time.perf_counter() - started, 1))
        if not pairs:
            raise UserError(f"iteration {iteration}: the search produced no preference pairs (chosen == rejected for "
                            "every prompt); use more candidates or another decoding")
        torch.manual_seed(iteration_seed)
        log = train_and_merge(model, processor, pairs, config, out_dir=work_dir / "model", seed=iteration_seed,
                              progress=progress, iteration=iteration)
        write_training_log(log_file, log)
        del model  # the next iteration loads the merged checkpoint from disk
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        stats.update({k: v for k, v in log.items() if k != "log_history" and not isinstance(v, str)})
        return IterationOutput(checkpoint="model", preference_data=pairs_file.name, training_log=log_file.name,
                               stats=stats)

    def search(self, model, processor, clip, prompts: Sequence[PromptRecord], config: CSRConfig, *, seed: int,
               trees_file: Path | None = None, progress: Progress | None = None, iteration: int = 1):
        """Run the sentence-level search and turn its trees into preference pairs (and write the trees)."""
        from csr_bench.improvers.csr.pairs import PreferencePair, response_of, tree_to_json, write_trees
        from csr_bench.improvers.csr.search import SentenceSearch

        if progress is not None:
            progress.phase(iteration, "search", len(prompts))
        model.eval()
        searcher = SentenceSearch(model, processor, config.search, clip, seed=seed)
        results = searcher.run(prompts, progress)
        pairs: list[PreferencePair] = []
        trees = []
        for r in results:
            trees.append(tree_to_json(r.prompt.id, r.prompt.image, r.prompt.prompt, r.nodes, r.selection))
            if r.selection is None:
                continue
            chosen, rejected = response_of(r.nodes, r.selection.chosen), response_of(r.nodes, r.selection.rejected)
            if chosen == rejected or not chosen or not rejected:
                continue
            pairs.append(PreferencePair(r.prompt.id, r.prompt.image, r.prompt.prompt, chosen, rejected,
                                        r.selection.chosen_score, r.selection.rejected_score))
        if trees_file is not None:
            write_trees(trees_file, trees)
        n_nodes = sum(len(r.nodes) - 1 for r in results)
        return pairs, {"prompts": len(results), "pairs": len(pairs), "sentences_scored": n_nodes}
