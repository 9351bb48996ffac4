"""Preference tuning: the TRL data format, LoRA on the language model only, one DPO step's effect, merging."""

import pytest

from csr_bench.improvers.csr.config import CSRConfig, LoraConfig, TrainConfig
from csr_bench.improvers.csr.pairs import PreferencePair


def _pairs(prompts):
    return [PreferencePair(p.id, p.image, p.prompt, "A picture of a red square.", "A picture of a knife and a fork.", 1.0, 0.0)
            for p in prompts]


ONE_STEP = CSRConfig(train=TrainConfig(learning_rate=1e-2, max_steps=1, batch_size=2, warmup_ratio=0.0,
                                       lr_scheduler="constant"),
                     lora=LoraConfig(r=4, alpha=8, dropout=0.0))


def test_pair_format_has_bos_and_eos(loaded):
    from csr_bench.improvers.csr.dpo import format_pair

    _, processor, _, prompts = loaded
    row = format_pair(processor, _pairs(prompts)[0])
    tok = processor.tokenizer
    assert row["prompt"].startswith(tok.bos_token) and not row["prompt"].startswith(tok.bos_token * 2)
    assert "<image>" in row["prompt"] and row["prompt"].rstrip().endswith("ASSISTANT:")
    assert row["chosen"].endswith(tok.eos_token) and row["rejected"].endswith(tok.eos_token)
    assert row["chosen"].strip().startswith("A picture of a red square.")


def test_one_dpo_step_moves_lora_only(loaded, tmp_path):
    import torch

    from csr_bench.improvers.csr.dpo import build_trainer

    model, processor, _, prompts = loaded
    trainer = build_trainer(model, processor, _pairs(prompts), ONE_STEP, output_dir=str(tmp_path), seed=0)
    peft_model = trainer.model
    lora = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" in n}
    frozen = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" not in n}
    # LoRA sits on every linear layer of the language model and nowhere else (not the CLIP tower, not the projector).
    assert lora and all(".language_model." in n for n in lora)
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora}
    assert adapted == set(ONE_STEP.lora.targets)
    assert all(not p.requires_grad for n, p in peft_model.named_parameters() if "lora_" not in n)
    trainer.train()
    assert trainer.state.global_step == 1
    after = dict(peft_model.named_parameters())
    # B starts at zero, so the first step moves every B matrix (A gets no gradient while B is zero).
    moved_b = [n for n in lora if "lora_B" in n and not torch.equal(after[n], lora[n])]
    assert moved_b and len(moved_b) == sum("lora_B" in n for n in lora)
    assert all(torch.equal(after[n], frozen[n]) for n in frozen)


def test_train_and_merge_writes_a_loadable_checkpoint(loaded, tmp_path):
    import torch

    from csr_bench.improvers.csr.dpo import train_and_merge
    from csr_bench.models.base import load_adapter

    model, processor, _, prompts = loaded
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log = train_and_merge(model, processor, _pairs(prompts), ONE_STEP, out_dir=tmp_path / "merged", seed=0)
    assert log["steps"] == 1 and log["pairs"] == len(prompts)
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    merged = load_adapter(f"hf:{tmp_path / 'merged'}", dtype="float32", device="cpu")
    params = dict(merged.model.named_parameters())
    changed = {n for n in before if not torch.equal(params[n], before[n])}
    # Merging changed language-model weights only.
    assert changed and all(".language_model." in n for n in changed)
    assert merged.processor.chat_template


def test_no_pairs_is_a_user_error(loaded):
    from csr_bench.errors import UserError
    from csr_bench.improvers.csr.dpo import build_dataset

    _, processor, _, _ = loaded
    with pytest.raises(UserError, match="no preference pairs"):
        build_dataset(processor, [])
