"""The CSR improver's config: one frozen dataclass per TOML table, each field documented once here.

Shipped configs (csr_bench/improvers/configs/): `csr-paper.toml` (the paper's recipe for LLaVA-1.5) and
`csr-tiny.toml` (the embedded world's tiny LLaVA, a few minutes on two CPU cores).

Two calibrations of the sentence reward (see csr_bench.improvers.csr.rewards for the arithmetic):

- `paper`: the reward of a sentence is R = λ·R_I + (1−λ)·R_T, with R_T the product of the sentence's token
  probabilities under the model and R_I = max(100·cos(CLIP image, CLIP sentence), 0); a response's reward is
  the sum over its sentences; the search keeps the `keep_best` highest and `keep_worst` lowest partial
  responses by cumulative R at each step.
- `official`: as the authors' released code (github.com/YiyangZhou/CSR, inference_csr/): R_T is the
  length-normalised beam score of a sentence and R_I the CLIP logit (no clamp); both become ranks among
  siblings, (position+1)/n with the best first; a path scores Σ (1−λ)·rank_T + λ·rank_I over its sentences
  divided by its length (counting the root); the search prunes by the model's cumulative beam score alone,
  keeping the best 1 and worst 2; chosen = lowest path score, rejected = highest.

In both, λ (`image_weight`) weights the image term R_I, as the paper's R = λ·R_I + (1−λ)·R_T and the
authors' `clip_alpha` (construct.py: (1 − clip_alpha)·rank + clip_alpha·clip_rank, default 0.9): λ = 0 is
self-rewarding alone (the model's own likelihood, no visual calibration), λ = 1 is CLIP alone. (Reading
"λ = 1" as the self-rewarding ablation would need λ to weight R_T, which neither the paper's formula nor the
released code does.)

A candidate that is the end of sequence alone has no text: it ends its parent's response and scores 0 in
both calibrations, and the official length filter (min_sentence_chars) does not drop it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from csr_bench.errors import UserError

Calibration = Literal["paper", "official"]
Decoding = Literal["diverse_beam", "sample", "greedy"]


@dataclass(frozen=True)
class SearchConfig:
    """Sentence-level search: how candidates are made, scored and pruned."""

    calibration: Calibration = "paper"
    # λ: weight of the image-relevance reward R_I; 1 − λ weights the model's own reward R_T.
    image_weight: float = 0.9
    # Token-level decoding of each candidate sentence: group (diverse) beam search as the authors' code,
    # sampling, or greedy (one candidate per partial response).
    decoding: Decoding = "diverse_beam"
    candidates: int = 5  # candidate sentences per partial response (beams returned, or samples)
    beam_groups: int = 5  # diverse beam search: groups (candidates must be a multiple)
    diversity_penalty: float = 3.0  # diverse beam search: Hamming penalty between groups
    temperature: float = 1.0  # sampling temperature
    max_new_tokens: int = 70  # tokens per sentence before it is cut
    sentence_end: str = "."  # a sentence ends with a token that decodes to this (or the model's end of sequence)
    keep_best: int = 1  # partial responses kept per prompt and step: the best ...
    keep_worst: int = 2  # ... and the worst
    max_sentences: int = 12  # a response ends after this many sentences
    max_response_chars: int = 1024  # a response ends once it is this long (characters)
    min_sentence_chars: int = 4  # shorter sentences are dropped with their continuations (official); 0 keeps all
    prompt_batch: int = 8  # prompts searched together
    prefix_cache: bool = True  # reuse the key-value cache of the shared prefix (False: re-encode every step)
    clip_batch: int = 64  # sentences per CLIP forward pass

    def __post_init__(self) -> None:
        if not 0.0 <= self.image_weight <= 1.0:
            raise UserError(f"search.image_weight={self.image_weight}: expected a number in [0, 1]")
        positive = ("candidates", "beam_groups", "max_new_tokens", "max_sentences", "max_response_chars", "prompt_batch",
                    "clip_batch")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"search.{name}={getattr(self, name)}: expected at least 1")
        if self.keep_best < 0 or self.keep_worst < 0 or self.keep_best + self.keep_worst < 1:
            raise UserError("search.keep_best and search.keep_worst: expected non-negative counts, at least one positive")
        if self.decoding == "diverse_beam" and self.candidates % self.beam_groups:
            raise UserError(f"search.candidates={self.candidates} must be a multiple of search.beam_groups={self.beam_groups}")
        if self.decoding == "greedy" and self.candidates != 1:
            raise UserError(f"search.candidates={self.candidates}: greedy decoding makes one candidate; set it to 1")
        if self.temperature <= 0:
            raise UserError(f"search.temperature={self.temperature}: expected a positive number")
        if self.diversity_penalty < 0:
            raise UserError(f"search.diversity_penalty={self.diversity_penalty}: expected a non-negative number")
        if not self.sentence_end:
            raise UserError("search.sentence_end: expected a non-empty string such as \".\"")
        if self.min_sentence_chars < 0:
            raise UserError(f"search.min_sentence_chars={self.min_sentence_chars}: expected 0 or more")


@dataclass(frozen=True)
class TrainConfig:
    """Preference tuning with TRL's DPOTrainer (reference = the same model with the LoRA adapter disabled)."""

    beta: float = 0.1
    loss: tuple[str, ...] = ("sigmoid",)  # TRL loss types; ["sigmoid", "sft"] adds an SFT term on chosen
    loss_weights: tuple[float, ...] = ()  # one weight per loss type; empty: all 1
    learning_rate: float = 1e-7
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int = 0  # > 0 overrides epochs
    batch_size: int = 1  # pairs per device step
    grad_accum: int = 1
    weight_decay: float = 0.0
    gradient_checkpointing: bool = False
    max_length: int = 0  # truncate prompt + response to this many tokens; 0: no truncation

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise UserError(f"train.beta={self.beta}: expected a positive number")
        if not self.loss:
            raise UserError("train.loss: expected at least one TRL loss type, e.g. [\"sigmoid\"]")
        if self.loss_weights and len(self.loss_weights) != len(self.loss):
            raise UserError(f"train.loss_weights: {len(self.loss_weights)} weights for {len(self.loss)} loss types")
        if self.learning_rate <= 0 or self.batch_size < 1 or self.grad_accum < 1 or self.epochs <= 0:
            raise UserError("train: learning_rate and epochs must be positive, batch_size and grad_accum at least 1")
        if not 0 <= self.warmup_ratio < 1:
            raise UserError(f"train.warmup_ratio={self.warmup_ratio}: expected a number in [0, 1)")


@dataclass(frozen=True)
class LoraConfig:
    """The LoRA adapter, on the language model's linear layers only (never the vision tower or projector)."""

    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    # Module names (last part) inside the language model; the default is every linear layer of a Llama block.
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1 or not self.targets:
            raise UserError("lora: expected r >= 1, alpha > 0, 0 <= dropout < 1 and at least one target module")


@dataclass(frozen=True)
class CSRConfig:
    """Calibrated Self-Rewarding (arXiv 2405.14622): search, reward, DPO with LoRA, repeated."""

    iterations: int = 3
    # The CLIP that scores image relevance: "tiny" (the shipped one), an open_clip folder, or a transformers
    # CLIP folder / cached hub id (the paper: openai/clip-vit-large-patch14-336).
    clip: str = "openai/clip-vit-large-patch14-336"
    prompts: str = ""  # JSON Lines of {"image", "prompt"}, the authors' JSON prompt file, or a world folder
    image_root: str = ""  # folder the prompt file's image paths are relative to (default: the file's folder)
    max_prompts: int = 0  # use the first N prompts; 0: all
    dtype: str = "auto"  # model dtype: auto, float32, bfloat16, float16
    device: str = "auto"  # auto, cpu, cuda
    search: SearchConfig = field(default_factory=SearchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise UserError(f"iterations={self.iterations}: expected at least 1")
        if self.max_prompts < 0:
            raise UserError(f"max_prompts={self.max_prompts}: expected 0 (all) or a positive number")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise UserError(f"dtype '{self.dtype}': expected auto, float32, bfloat16 or float16")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"device '{self.device}': expected auto, cpu or cuda")
