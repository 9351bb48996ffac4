"""Preference tuning for CSR: TRL's DPOTrainer with a peft LoRA adapter on the language model only.

The reference model is the same model with the adapter disabled (TRL does this when given a `peft_config` and
no reference model). After training the adapter is merged and the merged model is saved as safetensors with
its processor, so `hf:<folder>` loads it and the next iteration searches with it.

Data: TRL's vision collator tokenises the prompt and the two responses separately with
`add_special_tokens=False` and adds no end of sequence, so the prompt is the chat template's text with the
tokenizer's BOS at its start, and each response is what the template writes after the generation prompt for
that answer (for LLaVA-1.5: " answer</s>"), ending with the EOS token.

LoRA targets: module names under the language model only (a regular expression matched against full module
names), so the CLIP tower's q/k/v projections and the projector are never adapted.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from csr_bench.core.files import atomic_write_json, is_atomic_write_temporary
from csr_bench.errors import UserError
from csr_bench.improvers.base import NullProgress, Progress
from csr_bench.improvers.csr.config import CSRConfig, LoraConfig, TrainConfig
from csr_bench.improvers.csr.pairs import PreferencePair

LANGUAGE_MODEL_MARKERS = ("language_model",)
NEVER_ADAPTED = ("vision_tower", "vision_model", "multi_modal_projector", "mm_projector", "visual")


def lora_target_pattern(targets: Sequence[str]) -> str:
    """A peft `target_modules` regex: the named linear layers inside the language model, nothing else."""
    names = "|".join(sorted(set(targets)))
    excluded = "|".join(NEVER_ADAPTED)
    return rf"^(?!.*(?:{excluded})).*language_model\..*\.(?:{names})$"


def _conversation(prompt: str, answer: str | None = None) -> list[dict[str, Any]]:
    conv: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    if answer is not None:
        conv.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return conv


def format_pair(processor, pair: PreferencePair) -> dict[str, str]:
    """Prompt text (with BOS) and chosen / rejected completions (ending with EOS) as the chat template writes them."""
    tok = processor.tokenizer
    if not getattr(processor, "chat_template", None):
        raise UserError("the model's processor has no chat template (expected chat_template.jinja or .json)")
    prompt = processor.apply_chat_template(_conversation(pair.prompt), add_generation_prompt=True, tokenize=False)

    def completion(answer: str) -> str:
        full = processor.apply_chat_template(_conversation(pair.prompt, answer), tokenize=False)
        if full.startswith(prompt):
            text = full[len(prompt):]
        else:  # a template that writes the generation prompt differently inside a conversation
            text = " " + answer
        # Templates end the assistant turn with EOS and sometimes a newline; keep everything up to EOS.
        if tok.eos_token and tok.eos_token in text:
            text = text[: text.index(tok.eos_token)]
        return text.rstrip() + (tok.eos_token or "")

    if tok.bos_token and not prompt.startswith(tok.bos_token):
        prompt = tok.bos_token + prompt
    return {"prompt": prompt, "chosen": completion(pair.chosen), "rejected": completion(pair.rejected)}


def build_dataset(processor, pairs: Sequence[PreferencePair]):
    """A datasets.Dataset of {"images", "prompt", "chosen", "rejected"} in TRL's vision format."""
    from datasets import Dataset, Features, Image, Sequence as HFSequence, Value

    if not pairs:
        raise UserError("no preference pairs to train on (every search gave identical chosen and rejected responses)")
    rows = []
    for p in pairs:
        if not Path(p.image).is_file():
            raise UserError(f"{p.image}: image of preference pair {p.id!r} not found")
        rows.append({"images": [p.image], **format_pair(processor, p)})
    features = Features({"images": HFSequence(Image()), "prompt": Value("string"), "chosen": Value("string"),
                         "rejected": Value("string")})
    return Dataset.from_list(rows, features=features)


def _lora_config(lora: LoraConfig):
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora_target_pattern(lora.targets),
        bias="none", task_type="CAUSAL_LM",
    )


def _dpo_args(train: TrainConfig, output_dir: str, *, seed: int, device, model_dtype):
    import torch
    from trl import DPOConfig

    on_cpu = device.type != "cuda"
    bf16 = (not on_cpu) and model_dtype == torch.bfloat16
    fp16 = (not on_cpu) and model_dtype == torch.float16
    # transformers 5 folded warmup_ratio into warmup_steps (a float below 1 is a ratio of the total steps).
    fields = getattr(DPOConfig, "__dataclass_fields__", {})
    warmup = {"warmup_ratio": train.warmup_ratio} if "warmup_ratio" in fields else {"warmup_steps": train.warmup_ratio}
    # ... and renamed gradient_checkpointing to activation_checkpointing.
    checkpointing = ({"activation_checkpointing": train.gradient_checkpointing} if "activation_checkpointing" in fields
                     else {"gradient_checkpointing": train.gradient_checkpointing})
    return DPOConfig(
        **warmup,
        **checkpointing,
        output_dir=output_dir,
        beta=train.beta,
        loss_type=list(train.loss),
        loss_weights=list(train.loss_weights) or None,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps if train.max_steps > 0 else -1,
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        weight_decay=train.weight_decay,
        max_length=train.max_length or None,
        seed=seed,
        data_seed=seed,
        use_cpu=on_cpu,
        bf16=bf16,
        fp16=fp16,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
        remove_unused_columns=False,
    )


class _ProgressCallback:
    """Forwards the trainer's steps to our progress display (a transformers TrainerCallback)."""

    def __new__(cls, progress: Progress):
        from transformers import TrainerCallback

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                progress.advance(1)

        return Callback()


def build_trainer(model, processor, pairs: Sequence[PreferencePair], config: CSRConfig, *, output_dir: str, seed: int,
                  progress: Progress | None = None):
    """A DPOTrainer over `pairs`, with the LoRA adapter of `config.lora` on the language model of `model`."""
    from trl import DPOTrainer

    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    dataset = build_dataset(processor, pairs)
    args = _dpo_args(config.train, output_dir, seed=seed, device=next(model.parameters()).device, model_dtype=model.dtype)
    callbacks = [_ProgressCallback(progress)] if progress is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 renames TRL and peft still use
        trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=processor,
                             peft_config=_lora_config(config.lora), callbacks=callbacks)
    # Without tqdm the Trainer prints every log line; our progress display replaces both.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def planned_steps(n_pairs: int, train: TrainConfig) -> int:
    if train.max_steps > 0:
        return train.max_steps
    per_epoch = math.ceil(math.ceil(n_pairs / train.batch_size) / train.grad_accum)
    return max(1, math.ceil(per_epoch * train.epochs))


def train_and_merge(model, processor, pairs: Sequence[PreferencePair], config: CSRConfig, *, out_dir: str | os.PathLike,
                    seed: int, progress: Progress | None = None, iteration: int = 1,
                    log_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train the LoRA adapter with DPO, merge it, save the merged checkpoint to `out_dir` (atomically).

    Returns the training log: TRL's per-step log history plus a summary. With `log_file`, the log is written
    there (atomically) before the checkpoint folder is renamed into place, so a checkpoint on disk always has
    its log beside it. The trainer's scratch folder is a hidden sibling of `out_dir` (".trainer-*"), which
    `remove_stale_temporaries` clears after a kill.
    """
    progress = progress or NullProgress()
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".trainer-", dir=out.parent) as scratch, warnings.catch_warnings():
        # transformers 5 renamed arguments that TRL and peft still read (gradient_checkpointing and kin).
        warnings.simplefilter("ignore", FutureWarning)
        progress.phase(iteration, "training", planned_steps(len(pairs), config.train))
        trainer = build_trainer(model, processor, pairs, config, output_dir=scratch, seed=seed, progress=progress)
        result = trainer.train()
        train_seconds = time.perf_counter() - started
        progress.phase(iteration, "merge", 1)
        merged = trainer.model.merge_and_unload()
        log = _training_log(trainer, result, pairs, config, train_seconds)
        save_checkpoint(merged, processor, out,
                        before_publish=(lambda: write_training_log(log_file, log)) if log_file is not None else None)
        progress.advance(1)
    return log


def _training_log(trainer, result, pairs: Sequence[PreferencePair], config: CSRConfig, train_seconds: float) -> dict[str, Any]:
    history = [dict(h) for h in trainer.state.log_history]
    steps = [h for h in history if "loss" in h]

    def last(key: str) -> float | None:
        values = [h[key] for h in steps if key in h]
        return float(values[-1]) if values else None

    def mean(key: str) -> float | None:
        values = [h[key] for h in steps if key in h]
        return float(sum(values) / len(values)) if values else None

    return {
        "pairs": len(pairs),
        "steps": int(trainer.state.global_step),
        "train_loss": float(result.training_loss),
        "final_loss": last("loss"),
        "mean_reward_margin": mean("rewards/margins"),
        "mean_reward_accuracy": mean("rewards/accuracies"),
        "train_seconds": round(train_seconds, 1),
        "lora_target_modules": lora_target_pattern(config.lora.targets),
        "log_history": history,
    }


def save_checkpoint(model, processor, out_dir: str | os.PathLike, *, before_publish: Callable[[], None] | None = None) -> None:
    """Save model (safetensors) and processor into a temporary sibling folder, then rename it into place.

    `before_publish` runs once the folder is complete and before the rename (the improver writes the
    training log there, so the checkpoint's appearance is the last step of an iteration's training).
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no per-shard bars under our own progress display
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        _plain_permissions(tmp)
        if before_publish is not None:
            before_publish()
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _plain_permissions(folder: Path) -> None:
    """mkdtemp makes the folder 0700 (and some writers make files 0600): give it what mkdir / open would."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.rglob("*"):
        f.chmod((0o777 if f.is_dir() else 0o666) & ~umask)


TEMPORARY_PREFIXES = (".trainer-", ".model.")


def remove_stale_temporaries(work_dir: str | os.PathLike) -> list[Path]:
    """Delete what a killed iteration left half-made in `work_dir`: the trainer's scratch folder, an unfinished
    checkpoint folder (".model.*") and the temporary files of atomic writes (".NAME.*.tmp"). Returns them."""
    removed = []
    for p in Path(work_dir).iterdir():
        name = p.name
        if name.startswith(TEMPORARY_PREFIXES) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif is_atomic_write_temporary(p):
            p.unlink(missing_ok=True)
        else:
            continue
        removed.append(p)
    return removed


def _finite(value: Any) -> Any:
    """JSON-safe: non-finite floats (a NaN loss) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_training_log(path: str | os.PathLike, log: dict[str, Any]) -> None:
    atomic_write_json(path, _finite(log))
